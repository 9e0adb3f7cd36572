//! [`CoordinatorState`]: the scheduler behind a lock, the worker registry, and the dispatch of
//! the scheduler's actions to workers. Every change goes through [`CoordinatorState::apply`],
//! which also schedules, announces the change to job watchers, and carries out the actions
//! outside the lock.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use quiver_net::GrantKey;
use quiver_plan::{ReadGrant, TaskAttempt, TaskDefinition, WorkerId};
use tokio::sync::watch;
use tracing::warn;

use crate::scheduler::{Action, Scheduler, TaskOutcome};
use crate::task_launcher::TaskLauncher;
use crate::worker_registry::WorkerRegistry;

/// Shared state of a running coordinator.
pub struct CoordinatorState {
    // A std mutex: every critical section is short, synchronous bookkeeping; no await inside.
    scheduler: Mutex<Scheduler>,
    pub registry: WorkerRegistry,
    pub launcher: Arc<dyn TaskLauncher>,
    /// Signs the read grants in tasks and result tickets; given to workers at registration.
    pub grant_key: GrantKey,
    /// Bumped on every change; job watchers wait on it.
    changes: watch::Sender<u64>,
}

/// How long a task's grant to read its inputs lasts: longer than any task runs.
pub const TASK_GRANT_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);

impl CoordinatorState {
    /// State around `scheduler`, reaching workers through `launcher`.
    pub fn new(scheduler: Scheduler, launcher: Arc<dyn TaskLauncher>) -> Arc<Self> {
        Arc::new(CoordinatorState {
            scheduler: Mutex::new(scheduler),
            registry: WorkerRegistry::default(),
            launcher,
            grant_key: GrantKey::random(),
            changes: watch::channel(0).0,
        })
    }

    /// `task` with a grant to read each of its inputs.
    fn with_grants(&self, mut task: TaskDefinition) -> TaskDefinition {
        let job = task.attempt.job.0.clone();
        for input in &mut task.inputs {
            let grant = self
                .grant_key
                .sign(&job, input.stage.0, TASK_GRANT_VALIDITY);
            input.grant = Some(ReadGrant::from(&grant));
        }
        task
    }

    /// Read access to the scheduler.
    pub fn scheduler(&self) -> MutexGuard<'_, Scheduler> {
        self.scheduler.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver that changes whenever any job changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Applies an event to the scheduler, schedules, and carries out the resulting actions.
    pub fn apply<R>(self: &Arc<Self>, event: impl FnOnce(&mut Scheduler) -> (R, Vec<Action>)) -> R {
        let (result, actions) = {
            let mut scheduler = self.scheduler();
            let (result, mut actions) = event(&mut scheduler);
            actions.extend(scheduler.schedule());
            // A succeeded job's output is marked complete before anyone can see it succeeded
            // (the lock is still held): a driver told "succeeded" finds `_SUCCESS` in place.
            actions.retain(|a| match a {
                Action::CommitOutput { directory, job } => {
                    commit_output(directory, job);
                    false
                }
                _ => true,
            });
            (result, actions)
        };
        self.changes.send_modify(|v| *v += 1);
        for action in actions {
            self.dispatch(action);
        }
        result
    }

    /// Tells the scheduler that `worker`, which the registry declared lost, is gone — unless it
    /// registered again in the meantime: the check and the event happen under the scheduler's
    /// lock, which a registration also takes, so the two never end up disagreeing.
    pub fn worker_lost(self: &Arc<Self>, worker: &WorkerId) {
        self.apply(|s| {
            if self.registry.is_lost(worker) {
                ((), s.worker_lost(worker))
            } else {
                ((), vec![])
            }
        });
    }

    /// Re-runs the scheduler with no event: time-based decisions (a job that waited too long
    /// for a worker) happen here. Called by the heartbeat monitor's timer.
    pub fn tick(self: &Arc<Self>) {
        self.apply(|_| ((), vec![]));
    }

    fn dispatch(self: &Arc<Self>, action: Action) {
        let this = self.clone();
        tokio::spawn(async move {
            match action {
                Action::Launch {
                    worker,
                    address,
                    task,
                } => {
                    let task = this.with_grants(*task);
                    if let Err(e) = this.launcher.launch(&worker, &address, &task).await {
                        let attempt: TaskAttempt = task.attempt.clone();
                        warn!(task = %attempt, %address, error = %e.message, unreachable = e.unreachable, "could not launch task");
                        if e.unreachable {
                            // Nothing answers there: the worker is gone. Waiting for its
                            // heartbeats to time out would only burn this task's attempts.
                            // The attempt counts as lost with it: whether the launch never
                            // arrived or the task brought the worker down before it could
                            // answer cannot be told apart here.
                            this.registry.mark_lost(&worker);
                            this.worker_lost(&worker);
                        } else {
                            let outcome = TaskOutcome::Failure {
                                message: format!(
                                    "could not launch on worker at {address}: {}",
                                    e.message
                                ),
                                retryable: true,
                                fetch_failure: None,
                            };
                            this.apply(|s| ((), s.task_finished(&attempt, &worker, outcome)));
                        }
                    }
                }
                Action::Cancel {
                    worker,
                    address,
                    attempts,
                } => {
                    if let Err(e) = this.launcher.cancel(&worker, &address, &attempts).await {
                        warn!(%address, error = %e, "could not cancel tasks");
                    }
                }
                Action::RemoveJobData {
                    worker,
                    address,
                    job,
                    keep,
                    delay,
                } => {
                    tokio::time::sleep(delay).await;
                    if let Err(e) = this
                        .launcher
                        .remove_job_data(&worker, &address, &job, &keep)
                        .await
                    {
                        warn!(%address, job = %job, error = %e, "could not remove job data");
                    }
                }
                Action::CommitOutput { directory, job } => commit_output(&directory, &job),
            }
        });
    }
}

/// Marks a Parquet sink's directory complete: removes the job's temporary files and writes
/// `_SUCCESS`. A few small file operations, done where the job's success is decided.
fn commit_output(directory: &str, job: &quiver_plan::JobId) {
    let dir = std::path::Path::new(directory);
    let _ = std::fs::remove_dir_all(dir.join("_temporary").join(&job.0));
    // Only removes `_temporary` when no other job is writing there.
    let _ = std::fs::remove_dir(dir.join("_temporary"));
    if let Err(e) = std::fs::write(dir.join("_SUCCESS"), b"") {
        warn!(directory = %directory, error = %e, "could not write _SUCCESS");
    }
}
