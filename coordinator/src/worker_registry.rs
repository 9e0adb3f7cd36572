//! [`WorkerRegistry`]: every worker that registered, alive or lost — the one owner of worker
//! state: address, slots, liveness, draining, last heartbeat, the tasks and load it reported,
//! its recent failures and exclusion. The scheduler owns it and changes it only while handling
//! an event; everyone else reads it through the scheduler.
//!
//! Not here: a worker's session key, which authenticates its calls before any event is made
//! (see `coordinator_state::SessionKeys`).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use quiver_plan::WorkerId;
use tracing::warn;

use crate::event::Timestamp;

/// Whether a worker is believed to be up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// Declared lost: silent past the heartbeat timeout, or unreachable.
    Lost,
    /// Drained and released: it left on purpose, holding nothing anyone needs.
    Left,
}

/// What a worker said of its load in its last heartbeat: shown to people, never used to
/// decide anything (it is the worker's word).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerLoad {
    /// Bytes of operator memory its tasks hold.
    pub memory_reserved_bytes: Option<u64>,
    /// Map output bytes it served to other workers and drivers since it started.
    pub shuffle_bytes_served: Option<u64>,
}

/// What the coordinator knows of one worker.
#[derive(Clone, Debug)]
pub struct WorkerEntry {
    pub address: String,
    pub slots: u32,
    pub hostname: String,
    pub last_heartbeat: Timestamp,
    /// Tasks running there, as the worker last reported.
    pub running_tasks: u32,
    /// Its load, as it last reported.
    pub load: WorkerLoad,
    /// Task attempts it finished successfully that the coordinator expected.
    pub tasks_completed: u64,
    pub liveness: Liveness,
    /// When it was lost or left (`None` while alive).
    pub departed: Option<Timestamp>,
    /// Shutting down gracefully: no new tasks.
    pub draining: bool,
    /// The user functions it has, as it listed them.
    pub functions: Vec<String>,
    function_set: HashSet<String>,
    /// When recent task attempts failed here.
    pub recent_failures: Vec<Timestamp>,
    /// Gets no tasks until then: too many of its attempts failed.
    pub excluded_until: Option<Timestamp>,
}

impl WorkerEntry {
    /// Whether it is alive (draining or not).
    pub fn is_alive(&self) -> bool {
        self.liveness == Liveness::Alive
    }

    /// It stopped being alive at `now`: lost or left.
    fn depart(&mut self, how: Liveness, now: Timestamp) {
        self.liveness = how;
        self.departed = Some(now);
    }

    /// Whether it has every one of `functions`.
    pub fn has_functions(&self, functions: &[String]) -> bool {
        functions.iter().all(|f| self.function_set.contains(f))
    }

    /// Whether it is excluded from scheduling at `now`.
    pub fn is_excluded(&self, now: Timestamp) -> bool {
        self.excluded_until
            .is_some_and(|until| now.is_before(until))
    }
}

/// A registration refused because a live worker with another id holds its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressTaken {
    pub holder: WorkerId,
}

/// How failures exclude a worker.
#[derive(Clone, Copy, Debug)]
pub struct ExclusionPolicy {
    /// This many retryable failures within `window` exclude a worker for `period`; 0: never.
    pub after_failures: u32,
    pub window: Duration,
    pub period: Duration,
}

/// All workers, alive or lost, by id.
#[derive(Clone, Debug, Default)]
pub struct WorkerRegistry {
    workers: BTreeMap<WorkerId, WorkerEntry>,
}

/// A registration, as the registry records it.
pub struct Registration {
    pub id: WorkerId,
    pub address: String,
    pub slots: u32,
    pub hostname: String,
    pub functions: Vec<String>,
}

impl WorkerRegistry {
    /// Adds or refreshes a worker, alive as of `now` (an id names one session key: admission
    /// checked that the id follows from the key). An address is taken over only from a worker
    /// no longer alive. A worker registering again keeps its count of completed tasks and
    /// starts afresh otherwise (not draining, not excluded).
    pub fn register(&mut self, r: Registration, now: Timestamp) -> Result<(), AddressTaken> {
        if let Some((holder, _)) = self
            .workers
            .iter()
            .find(|(id, w)| **id != r.id && w.address == r.address && w.is_alive())
        {
            return Err(AddressTaken {
                holder: holder.clone(),
            });
        }
        let tasks_completed = self.workers.get(&r.id).map_or(0, |w| w.tasks_completed);
        self.workers.insert(
            r.id,
            WorkerEntry {
                address: r.address,
                slots: r.slots,
                hostname: r.hostname,
                last_heartbeat: now,
                running_tasks: 0,
                load: WorkerLoad::default(),
                tasks_completed,
                liveness: Liveness::Alive,
                departed: None,
                draining: false,
                function_set: r.functions.iter().cloned().collect(),
                functions: r.functions,
                recent_failures: vec![],
                excluded_until: None,
            },
        );
        Ok(())
    }

    /// Records a heartbeat at `now`. False if the worker is unknown or was declared lost: it
    /// must register again.
    pub fn heartbeat(
        &mut self,
        id: &WorkerId,
        running_tasks: u32,
        load: WorkerLoad,
        draining: bool,
        now: Timestamp,
    ) -> bool {
        match self.workers.get_mut(id) {
            Some(w) if w.is_alive() => {
                w.last_heartbeat = now;
                w.running_tasks = running_tasks;
                w.load = load;
                w.draining = draining;
                true
            }
            _ => false,
        }
    }

    /// Counts a task attempt the worker finished successfully.
    pub fn task_completed(&mut self, id: &WorkerId) {
        if let Some(w) = self.workers.get_mut(id) {
            w.tasks_completed += 1;
        }
    }

    /// Declares `id` lost at `now`; false if it was not alive.
    pub fn mark_lost(&mut self, id: &WorkerId, now: Timestamp) -> bool {
        self.depart(id, Liveness::Lost, now)
    }

    /// Records that `id`, drained and released, left at `now`; false if it was not alive.
    pub fn mark_left(&mut self, id: &WorkerId, now: Timestamp) -> bool {
        self.depart(id, Liveness::Left, now)
    }

    fn depart(&mut self, id: &WorkerId, how: Liveness, now: Timestamp) -> bool {
        match self.workers.get_mut(id) {
            Some(w) if w.is_alive() => {
                w.depart(how, now);
                true
            }
            _ => false,
        }
    }

    /// Marks every alive worker silent for longer than `timeout` at `now` as lost and returns
    /// them.
    pub fn expire(&mut self, timeout: Duration, now: Timestamp) -> Vec<WorkerId> {
        let mut lost = Vec::new();
        for (id, w) in &mut self.workers {
            if w.is_alive() && now.since(w.last_heartbeat) > timeout {
                w.depart(Liveness::Lost, now);
                lost.push(id.clone());
            }
        }
        lost
    }

    /// Forgets workers that were lost or left more than `retention` before `now`.
    pub fn forget_departed(&mut self, retention: Duration, now: Timestamp) {
        self.workers
            .retain(|_, w| w.departed.is_none_or(|d| now.since(d) <= retention));
    }

    /// Counts every alive worker as heard from at `now` (after the coordinator's own pause).
    pub fn heard_from_all(&mut self, now: Timestamp) {
        for w in self.workers.values_mut().filter(|w| w.is_alive()) {
            if w.last_heartbeat.is_before(now) {
                w.last_heartbeat = now;
            }
        }
    }

    /// Counts a failed attempt against `id` at `now`, excluding it for a while when they pile
    /// up.
    pub fn note_failure(&mut self, id: &WorkerId, policy: &ExclusionPolicy, now: Timestamp) {
        let Some(w) = self.workers.get_mut(id) else {
            return;
        };
        w.recent_failures.retain(|t| now.since(*t) < policy.window);
        w.recent_failures.push(now);
        let limit = policy.after_failures as usize;
        if limit > 0 && w.recent_failures.len() >= limit {
            warn!(worker = %id, period = ?policy.period, "worker keeps failing tasks; excluding it");
            w.excluded_until = Some(now + policy.period);
            w.recent_failures.clear();
        }
    }

    /// One worker, alive or lost.
    #[cfg(any(test, feature = "internals"))]
    pub fn get(&self, id: &WorkerId) -> Option<&WorkerEntry> {
        self.workers.get(id)
    }

    /// The address of `id` if it is alive.
    pub fn alive_address(&self, id: &WorkerId) -> Option<&str> {
        self.workers
            .get(id)
            .filter(|w| w.is_alive())
            .map(|w| w.address.as_str())
    }

    /// Every alive worker (draining ones too), by id.
    pub fn alive(&self) -> impl Iterator<Item = (&WorkerId, &WorkerEntry)> {
        self.workers.iter().filter(|(_, w)| w.is_alive())
    }

    /// Whether no worker is alive.
    pub fn none_alive(&self) -> bool {
        self.alive().next().is_none()
    }

    /// The slots of every alive worker.
    pub fn total_slots(&self) -> u32 {
        self.alive()
            .fold(0u32, |n, (_, w)| n.saturating_add(w.slots))
    }

    /// The alive workers that have every one of `functions`.
    pub fn eligible(&self, functions: &[String]) -> HashSet<WorkerId> {
        self.alive()
            .filter(|(_, w)| w.has_functions(functions))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The functions of every alive worker, sorted, without duplicates.
    pub fn available_functions(&self) -> Vec<String> {
        let mut available: Vec<String> = self
            .alive()
            .flat_map(|(_, w)| w.functions.iter().cloned())
            .collect();
        available.sort();
        available.dedup();
        available
    }

    /// Every worker, alive or lost, sorted by address.
    pub fn snapshot(&self) -> Vec<(WorkerId, WorkerEntry)> {
        let mut all: Vec<_> = self
            .workers
            .iter()
            .map(|(id, w)| (id.clone(), w.clone()))
            .collect();
        all.sort_by(|a, b| a.1.address.cmp(&b.1.address));
        all
    }
}
