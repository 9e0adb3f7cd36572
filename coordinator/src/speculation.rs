//! Speculation: a backup attempt, on another worker, for a task that runs far longer than the
//! finished tasks of its stage. The first of the two attempts to succeed wins; the scheduler
//! cancels the other.

use std::collections::HashSet;
use std::time::Duration;

use quiver_plan::{TaskDefinition, WorkerId};
use tracing::info;

use crate::event::Timestamp;
use crate::job::{BackupAttempt, Job, JobState, Stage, TaskState};
use crate::placement::{Constraints, FreeSlots};
use crate::scheduler::Action;

/// When a running task counts as slow.
#[derive(Clone, Copy, Debug)]
pub struct SpeculationPolicy {
    /// It has run this many times the median of its stage's finished tasks ...
    pub multiplier: f64,
    /// ... and at least this long ...
    pub min_runtime: Duration,
    /// ... once this fraction of the stage's tasks has finished.
    pub quantile: f64,
}

/// How long a running task of `stage` may run before it gets a backup; `None` while too few
/// of the stage's tasks finished (or all of them did). Only tasks run by this incarnation of
/// the job count (attempts from `first_attempt` on): outputs adopted after a coordinator
/// restart have no run time here, and would make every task look slow.
pub fn slow_after(
    stage: &Stage,
    first_attempt: u32,
    policy: &SpeculationPolicy,
) -> Option<Duration> {
    let this_run = |t: &&crate::job::Task| !matches!(t.state, TaskState::Done { attempt, .. } if attempt < first_attempt);
    let mut finished: Vec<u64> = stage
        .tasks
        .iter()
        .filter(this_run)
        .filter(|t| t.is_done())
        .map(|t| t.elapsed_ms)
        .collect();
    let total = stage.tasks.iter().filter(this_run).count();
    if finished.is_empty()
        || finished.len() == total
        || (finished.len() as f64) < policy.quantile * total as f64
    {
        return None;
    }
    finished.sort_unstable();
    let median = Duration::from_millis(finished[finished.len() / 2]);
    // Reported run times are a worker's word: no overflow, however large.
    Some(
        Duration::try_from_secs_f64(median.as_secs_f64() * policy.multiplier)
            .unwrap_or(Duration::MAX)
            .max(policy.min_runtime),
    )
}

/// Launches backup attempts of `job`'s slow tasks at `now` on the slots in `free` (left over
/// after pending work), on workers in `eligible` other than the primary's.
pub fn speculate(
    job: &mut Job,
    eligible: &HashSet<WorkerId>,
    free: &mut FreeSlots,
    policy: &SpeculationPolicy,
    now: Timestamp,
) -> Vec<Action> {
    let mut actions = Vec::new();
    if job.state != JobState::Running {
        return actions;
    }
    let batch_size = job.options.batch_size;
    for s in 0..job.stages.len() {
        let Some(threshold) = slow_after(&job.stages[s], job.first_attempt(), policy) else {
            continue;
        };
        let inputs = job.shuffle_inputs(s);
        let stage = &mut job.stages[s];
        let mut placed = Vec::new();
        for (p, task) in stage.tasks.iter_mut().enumerate() {
            let TaskState::Running { worker, since, .. } = &task.state else {
                continue;
            };
            // A task that already lost a worker gets no backup: if it is what kills workers, a
            // backup would kill one more before the loss is noticed.
            if task.backup.is_some() || task.worker_losses > 0 || now.since(*since) <= threshold {
                continue;
            }
            let primary = worker.clone();
            let Some(slot) = free.take(Constraints {
                eligible,
                avoid: &[],
                not_on: Some(&primary),
            }) else {
                break;
            };
            let attempt = task.attempts;
            task.attempts += 1;
            task.backup = Some(BackupAttempt {
                worker: slot.worker.clone(),
                attempt,
                since: now,
            });
            task.history.started(attempt, &slot.worker, true, now);
            placed.push((p, attempt, slot));
        }
        for (p, attempt, slot) in placed {
            info!(job = %job.id, stage = %stage.id, partition = p, attempt, "speculating: backup attempt for a slow task");
            actions.push(Action::Launch {
                worker: slot.worker,
                address: slot.address,
                task: Box::new(TaskDefinition {
                    storage_options: job.storage_options.clone(),
                    ..stage.task_definition(&job.id, p, attempt, &inputs, batch_size)
                }),
            });
        }
    }
    actions
}
