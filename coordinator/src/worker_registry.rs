//! [`WorkerRegistry`]: every worker that registered, and when it was last heard from.
//!
//! A concurrent map, so that heartbeats (the most frequent RPC) never wait on the scheduler's
//! lock.

use std::time::{Duration, Instant};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use quiver_net::TokenDigest;
use quiver_plan::WorkerId;

/// Whether a worker is believed to be up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Lost,
}

/// What the coordinator knows of one worker.
#[derive(Clone, Debug)]
pub struct WorkerEntry {
    pub address: String,
    pub slots: u32,
    pub hostname: String,
    pub last_heartbeat: Instant,
    pub running_tasks: u32,
    pub tasks_completed: u64,
    pub liveness: Liveness,
    /// Shutting down gracefully: no new tasks.
    pub draining: bool,
    /// The user functions it has.
    pub functions: Vec<String>,
    /// The digest of the session key it registered with: its later calls must carry the key.
    pub session_key: TokenDigest,
}

/// A registration refused because a live worker with another id holds its address.
#[derive(Debug)]
pub struct AddressTaken {
    pub holder: WorkerId,
}

/// All workers, alive or lost.
#[derive(Default)]
pub struct WorkerRegistry {
    workers: DashMap<WorkerId, WorkerEntry>,
}

impl WorkerRegistry {
    /// Adds or refreshes a worker (an id names one session key: admission checked that the id
    /// follows from the key). An address is taken over only from a worker no longer alive.
    pub fn register(
        &self,
        id: WorkerId,
        address: String,
        slots: u32,
        hostname: String,
        functions: Vec<String>,
        session_key: &str,
    ) -> Result<(), AddressTaken> {
        if let Some(holder) = self
            .workers
            .iter()
            .find(|w| w.key() != &id && w.address == address && w.liveness == Liveness::Alive)
        {
            return Err(AddressTaken {
                holder: holder.key().clone(),
            });
        }
        let entry = WorkerEntry {
            address,
            slots,
            hostname,
            last_heartbeat: Instant::now(),
            running_tasks: 0,
            tasks_completed: 0,
            draining: false,
            functions,
            liveness: Liveness::Alive,
            session_key: TokenDigest::of(session_key),
        };
        match self.workers.entry(id) {
            // The same worker again (its id follows from its key, checked on admission).
            Entry::Occupied(mut known) => {
                let completed = known.get().tasks_completed;
                known.insert(WorkerEntry {
                    tasks_completed: completed,
                    ..entry
                });
            }
            Entry::Vacant(v) => {
                v.insert(entry);
            }
        }
        Ok(())
    }

    /// Whether `presented` is the session key worker `id` registered with. An unknown worker
    /// has no key to match: `None`.
    pub fn verify_key(&self, id: &WorkerId, presented: &str) -> Option<bool> {
        self.workers
            .get(id)
            .map(|w| w.session_key.matches(presented))
    }

    /// Records a heartbeat. False if the worker is unknown or was declared lost: it must
    /// register again.
    pub fn heartbeat(&self, id: &WorkerId, running_tasks: u32, draining: bool) -> bool {
        match self.workers.get_mut(id) {
            Some(mut w) if w.liveness == Liveness::Alive => {
                w.last_heartbeat = Instant::now();
                w.running_tasks = running_tasks;
                w.draining = draining;
                true
            }
            _ => false,
        }
    }

    /// Counts a task attempt the worker finished successfully.
    pub fn task_completed(&self, id: &WorkerId) {
        if let Some(mut w) = self.workers.get_mut(id) {
            w.tasks_completed += 1;
        }
    }

    /// Whether `id` is known and declared lost (not registered again since).
    pub fn is_lost(&self, id: &WorkerId) -> bool {
        self.workers
            .get(id)
            .is_some_and(|w| w.liveness == Liveness::Lost)
    }

    /// Declares one worker lost (it could not be reached); it must register again.
    pub fn mark_lost(&self, id: &WorkerId) {
        if let Some(mut w) = self.workers.get_mut(id) {
            w.liveness = Liveness::Lost;
        }
    }

    /// Marks every alive worker silent for longer than `timeout` as lost and returns them.
    pub fn expire(&self, timeout: Duration) -> Vec<WorkerId> {
        let now = Instant::now();
        let mut lost = Vec::new();
        for mut w in self.workers.iter_mut() {
            if w.liveness == Liveness::Alive && now.duration_since(w.last_heartbeat) > timeout {
                w.liveness = Liveness::Lost;
                lost.push(w.key().clone());
            }
        }
        lost
    }

    /// Every worker, sorted by address.
    pub fn snapshot(&self) -> Vec<(WorkerId, WorkerEntry)> {
        let mut all: Vec<_> = self
            .workers
            .iter()
            .map(|w| (w.key().clone(), w.value().clone()))
            .collect();
        all.sort_by(|a, b| a.1.address.cmp(&b.1.address));
        all
    }
}
