//! Placement: which worker gets a task. [`FreeSlots`] counts the slots each alive worker has
//! free in one scheduling pass; [`FreeSlots::take`] picks one for a task and counts it used.
//! Pending tasks and speculative backups are both placed here.

use std::collections::{HashMap, HashSet};

use quiver_plan::WorkerId;

use crate::event::Timestamp;
use crate::worker_registry::WorkerRegistry;

/// Free task slots of one worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreeSlot {
    pub worker: WorkerId,
    pub address: String,
    pub free: u32,
}

/// Where a task goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub worker: WorkerId,
    pub address: String,
}

/// What a task needs of its worker.
#[derive(Clone, Copy, Debug)]
pub struct Constraints<'a> {
    /// Workers that may run it (they have its job's user functions).
    pub eligible: &'a HashSet<WorkerId>,
    /// Workers used only as a last resort (the task failed there before).
    pub avoid: &'a [WorkerId],
    /// A worker that must not run it (where its primary attempt runs, for a backup).
    pub not_on: Option<&'a WorkerId>,
}

/// The free slots of every alive worker during one scheduling pass.
#[derive(Clone, Debug, Default)]
pub struct FreeSlots {
    slots: Vec<FreeSlot>,
}

impl FreeSlots {
    /// The slots free at `now`: a worker's slots less the attempts running there (`running`),
    /// none on a draining worker or an excluded one — unless every worker is excluded: then
    /// waiting would only stall every job, so exclusion is ignored.
    pub fn of(workers: &WorkerRegistry, running: &HashMap<WorkerId, u32>, now: Timestamp) -> Self {
        let all_excluded = workers.alive().all(|(_, w)| w.is_excluded(now));
        let slots = workers
            .alive()
            .map(|(id, w)| {
                let used = running.get(id).copied().unwrap_or(0);
                let free = if w.draining || (!all_excluded && w.is_excluded(now)) {
                    0
                } else {
                    w.slots.saturating_sub(used)
                };
                FreeSlot {
                    worker: id.clone(),
                    address: w.address.clone(),
                    free,
                }
            })
            .collect();
        FreeSlots { slots }
    }

    /// Free slots as given (for tests and tools).
    #[cfg(any(test, feature = "internals"))]
    pub fn from_slots(slots: Vec<FreeSlot>) -> Self {
        FreeSlots { slots }
    }

    /// Takes a slot for a task: among the workers that meet `constraints` and have a free
    /// slot, one not to avoid if there is one, and of those the one with the most free slots.
    /// `None`: no slot fits.
    pub fn take(&mut self, constraints: Constraints<'_>) -> Option<Placement> {
        let slot = self
            .slots
            .iter_mut()
            .filter(|s| {
                s.free > 0
                    && constraints.eligible.contains(&s.worker)
                    && constraints.not_on != Some(&s.worker)
            })
            .max_by_key(|s| (!constraints.avoid.contains(&s.worker), s.free))?;
        slot.free -= 1;
        Some(Placement {
            worker: slot.worker.clone(),
            address: slot.address.clone(),
        })
    }

    /// Every worker's free slots.
    #[cfg(any(test, feature = "internals"))]
    pub fn slots(&self) -> &[FreeSlot] {
        &self.slots
    }
}
