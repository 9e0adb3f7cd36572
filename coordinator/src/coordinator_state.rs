//! [`CoordinatorState`]: the scheduler behind a lock, the clock, the workers' session keys,
//! and the dispatch of the scheduler's actions to workers. Every change goes through
//! [`CoordinatorState::handle`]: it reads the clock under the lock (so events are handled in
//! time order), hands the event to [`Scheduler::handle`], announces the change to job
//! watchers, and carries out the actions outside the lock.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use quiver_net::{GrantKey, TokenDigest};
use quiver_plan::{JobId, ReadGrant, TaskAttempt, TaskDefinition, WorkerId};
use quiver_proto::v1 as pb;
use quiver_storage::ObjectStores;
use tokio::sync::{oneshot, watch};
use tracing::warn;

use crate::event::{Event, JobRecord, TaskOutcome, Timestamp};
use crate::job_log::{
    LogWriter, commit_started_record, finished_record, started_record, submitted_record,
};
use crate::job_output;
use crate::job_status::job_status;
use crate::scheduler::{Action, Reply, Scheduler};

/// Answers once an event's records are on disk (or could not be written).
pub type Durable = oneshot::Receiver<std::result::Result<(), String>>;
use crate::task_launcher::TaskLauncher;

/// The coordinator's clock: monotonic time since it started, with the wall-clock time for
/// display. The only place the coordinator reads the time for the scheduler.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
    origin_wall_ms: u64,
}

impl Clock {
    /// A clock starting now.
    pub fn start() -> Self {
        Clock {
            origin: Instant::now(),
            origin_wall_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// The time now.
    pub fn now(&self) -> Timestamp {
        Timestamp {
            monotonic: Duration::ZERO,
            wall_ms: self.origin_wall_ms,
        } + self.origin.elapsed()
    }
}

/// The digest of the session key each registered worker (alive or lost) registered with: its
/// later calls must carry the key. Authentication, checked before an event is made — not
/// scheduler state. A concurrent map, so that checking a heartbeat's key never waits on the
/// scheduler's lock.
#[derive(Default)]
pub struct SessionKeys {
    keys: DashMap<WorkerId, TokenDigest>,
}

impl SessionKeys {
    /// Whether `presented` is the session key worker `id` registered with. An unknown worker
    /// has no key to match: `None`.
    pub fn verify(&self, id: &WorkerId, presented: &str) -> Option<bool> {
        self.keys.get(id).map(|k| k.matches(presented))
    }
}

/// Shared state of a running coordinator.
pub struct CoordinatorState {
    // A std mutex: every critical section is short, synchronous bookkeeping; no await inside.
    scheduler: Mutex<Scheduler>,
    clock: Clock,
    pub session_keys: SessionKeys,
    pub launcher: Arc<dyn TaskLauncher>,
    /// Signs the read grants in tasks and result tickets; given to workers at registration.
    pub grant_key: GrantKey,
    /// Bumped on every change; job watchers wait on it.
    changes: watch::Sender<u64>,
    /// The job log, when the coordinator has a state directory.
    log: Option<LogWriter>,
    /// Jobs that finished under an earlier coordinator (read from the job log), oldest first,
    /// as their last status. Together with the scheduler's finished jobs, at most
    /// `job_history`.
    history: Mutex<VecDeque<pb::JobStatus>>,
    job_history: usize,
    /// Clients of the stores jobs write their output to (for the output commit).
    pub object_stores: ObjectStores,
}

/// How long a task's grant to read its inputs lasts: longer than any task runs.
pub const TASK_GRANT_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);

impl CoordinatorState {
    /// State around `scheduler`, reaching workers through `launcher`, that records jobs in
    /// `log` (if any) and lists `history` (jobs finished under an earlier coordinator, oldest
    /// first) among at most `job_history` finished jobs.
    pub fn with_log(
        scheduler: Scheduler,
        launcher: Arc<dyn TaskLauncher>,
        log: Option<LogWriter>,
        history: Vec<pb::JobStatus>,
        job_history: usize,
    ) -> Arc<Self> {
        Arc::new(CoordinatorState {
            scheduler: Mutex::new(scheduler),
            clock: Clock::start(),
            session_keys: SessionKeys::default(),
            launcher,
            grant_key: GrantKey::random(),
            changes: watch::channel(0).0,
            log,
            history: Mutex::new(history.into()),
            job_history: job_history.max(1),
            object_stores: ObjectStores::new(),
        })
    }

    /// The last status of a job that finished under an earlier coordinator.
    pub fn past_job(&self, id: &JobId) -> Option<pb::JobStatus> {
        self.past_jobs().iter().find(|s| s.job_id == id.0).cloned()
    }

    /// Jobs that finished under an earlier coordinator, oldest first.
    pub fn past_jobs(&self) -> MutexGuard<'_, VecDeque<pb::JobStatus>> {
        self.history.lock().unwrap_or_else(|p| p.into_inner())
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

    /// The time now, on the clock events are stamped with.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Hands `event` to the scheduler (stamped with the time now), carries out the resulting
    /// actions, and returns the scheduler's answer.
    pub fn handle(self: &Arc<Self>, event: Event) -> Reply {
        self.handle_with_key(event, None).0
    }

    /// [`CoordinatorState::handle`], with a receiver that answers once what the event changed
    /// in the job log is on disk (none: nothing to record, or no log). A submit or a cancel is
    /// acknowledged only then.
    pub fn handle_durably(self: &Arc<Self>, event: Event) -> (Reply, Option<Durable>) {
        self.handle_with_key(event, None)
    }

    /// [`CoordinatorState::handle`] for a worker's registration: once the scheduler accepts
    /// it, and before any task is launched there, the worker's session key is recorded (for
    /// its calls to us) and given to the launcher (for our calls to it).
    pub fn register_worker(self: &Arc<Self>, event: Event, session_key: &str) -> Reply {
        self.handle_with_key(event, Some(session_key)).0
    }

    fn handle_with_key(
        self: &Arc<Self>,
        event: Event,
        session_key: Option<&str>,
    ) -> (Reply, Option<Durable>) {
        let registering = match (&event, session_key) {
            (
                Event::WorkerRegistered {
                    worker, address, ..
                },
                Some(key),
            ) => Some((worker.clone(), address.clone(), key)),
            _ => None,
        };
        let (reply, actions, changed, durable) = {
            let mut scheduler = self.scheduler();
            let now = self.clock.now();
            let outcome = scheduler.handle(event, now);
            // Sent to the log's thread under the lock: records go to disk in event order.
            let durable = self.record(&scheduler, &outcome.records, now);
            if let (Some((worker, address, key)), Reply::Registered(Ok(()))) =
                (&registering, &outcome.reply)
            {
                self.session_keys
                    .keys
                    .insert(worker.clone(), TokenDigest::of(key));
                self.launcher.worker_registered(worker, address, key);
            }
            (outcome.reply, outcome.actions, outcome.changed, durable)
        };
        if changed {
            self.changes.send_modify(|v| *v += 1);
        }
        // An output commit moves files only once the log holds which files it keeps: it
        // takes the event's durability (nobody waits on a task report's).
        let mut durable = durable;
        for action in actions {
            match action {
                Action::CommitOutput { .. } => self.commit_output(action, durable.take()),
                other => self.dispatch(other),
            }
        }
        (reply, durable)
    }

    /// Carries out [`Action::CommitOutput`] once `logged` (the commit's log record) is on
    /// disk, then reports how it ended.
    fn commit_output(self: &Arc<Self>, action: Action, logged: Option<Durable>) {
        let Action::CommitOutput {
            job,
            directory,
            mode,
            files,
            resumed,
            storage,
            retry_after,
        } = action
        else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(retry_after).await;
            let error = match logged {
                Some(logged) => match logged.await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(format!("the job log could not record the commit: {e}")),
                    Err(_) => Some("the job log stopped before recording the commit".into()),
                },
                None => None,
            };
            let error = match error {
                Some(e) => Some(e),
                None => job_output::commit(
                    &this.object_stores,
                    &job,
                    &directory,
                    mode,
                    &files,
                    resumed,
                    &storage,
                )
                .await
                .err()
                .map(|e| e.to_string()),
            };
            this.handle(Event::OutputCommitted { job, error });
        });
    }

    /// Hands what the scheduler asked to record to the job log (if any), and keeps the past
    /// jobs within the history bound.
    fn record(
        &self,
        scheduler: &Scheduler,
        records: &[JobRecord],
        now: Timestamp,
    ) -> Option<Durable> {
        if records.is_empty() {
            return None;
        }
        if records.iter().any(|r| matches!(r, JobRecord::Finished(_))) {
            let mut past = self.past_jobs();
            let room = self.job_history.saturating_sub(scheduler.finished_jobs());
            while past.len() > room {
                past.pop_front();
            }
        }
        let log = self.log.as_ref()?;
        let encoded = records
            .iter()
            .filter_map(|r| match r {
                JobRecord::Submitted(id) => scheduler.job(id).map(submitted_record),
                JobRecord::Finished(id) => scheduler
                    .job(id)
                    .map(|job| finished_record(job_status(job, None, now), &job.sink)),
                JobRecord::CommitStarted(id) => scheduler.job(id).and_then(commit_started_record),
                JobRecord::Started(id) => scheduler.job(id).and_then(started_record),
            })
            .collect();
        Some(log.write(encoded))
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
                            this.handle(Event::WorkerUnreachable { worker });
                        } else {
                            let outcome = TaskOutcome::Failure {
                                message: format!(
                                    "could not launch on worker at {address}: {}",
                                    e.message
                                ),
                                retryable: true,
                                fetch_failure: None,
                            };
                            this.handle(Event::TaskFinished {
                                worker,
                                attempt,
                                outcome,
                            });
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
                Action::AbortOutput {
                    job,
                    directory,
                    delay,
                    storage,
                } => {
                    tokio::time::sleep(delay).await;
                    if let Err(e) =
                        job_output::abort(&this.object_stores, &job, &directory, &storage).await
                    {
                        warn!(job = %job, error = %e, "could not remove a failed job's temporary output");
                    }
                }
                // Carried out by `commit_output`, after the log recorded it.
                Action::CommitOutput { .. } => {}
            }
        });
    }
}
