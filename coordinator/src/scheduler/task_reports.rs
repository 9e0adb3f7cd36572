//! How the [`Scheduler`] takes a task attempt's end as its worker reported it: a success
//! completes the task (and maybe its stage and job), a failure retries it, re-runs the lost
//! map output a fetch failure names, or fails the job when attempts run out.
//!
//! A child of `scheduler` so that it can work on the scheduler's state directly; like its
//! parent it does no I/O and reads no clock.

use super::*;
use crate::attempt_history::AttemptFigures;
use crate::scheduler_metrics::SucceededAttempt;

impl Scheduler {
    /// A task attempt ended on `worker` (reachable at `address`).
    pub(super) fn task_finished(
        &mut self,
        attempt: &TaskAttempt,
        worker: &WorkerId,
        outcome: TaskOutcome,
        now: Timestamp,
    ) -> Vec<Action> {
        let max_attempts = self.config.max_task_attempts;
        let Some(job) = self.jobs.get_mut(&attempt.job) else {
            return vec![];
        };
        if job.state != JobState::Running {
            return vec![];
        }
        let address = self
            .workers
            .alive_address(worker)
            .unwrap_or_default()
            .to_string();
        let stage_index = attempt.stage.0 as usize;
        if stage_index >= job.stages.len() {
            return vec![];
        }
        // For the attempt's record: what a current, successful attempt read (computed before
        // the task is borrowed; as the map outputs are now).
        let current_success = matches!(outcome, TaskOutcome::Success { .. })
            && job.stages[stage_index]
                .tasks
                .get(attempt.partition as usize)
                .is_some_and(|t| t.is_running_attempt(worker, attempt.attempt));
        let (shuffle_bytes_read, shuffle_bytes_fetched) = if current_success {
            job.shuffle_input_bytes(stage_index, attempt.partition as usize, worker)
        } else {
            (0, 0)
        };
        // An attempt from before a coordinator restart, adopted as running.
        let inherited = attempt.attempt < job.first_attempt();
        let stage = &mut job.stages[stage_index];
        let expected_buckets = stage.output.buckets() as usize;
        let writes_shuffle = matches!(
            stage.output,
            StageOutput::HashShuffle { .. } | StageOutput::RangeShuffle { .. }
        );
        let Some(task) = stage.tasks.get_mut(attempt.partition as usize) else {
            return vec![];
        };
        if !task.is_running_attempt(worker, attempt.attempt) {
            info!(task = %attempt, worker = %worker, "ignoring result of a stale attempt");
            return vec![];
        }
        let outcome = match outcome {
            TaskOutcome::Success { bucket_bytes, .. } if bucket_bytes.len() != expected_buckets => {
                TaskOutcome::Failure {
                    message: format!(
                        "worker reported {} output buckets; the stage writes {expected_buckets}",
                        bucket_bytes.len()
                    ),
                    retryable: true,
                    fetch_failure: None,
                }
            }
            other => other,
        };
        match outcome {
            TaskOutcome::Success {
                bucket_bytes,
                rows_out,
                bytes_out,
                elapsed_ms,
                spilled_bytes,
            } => {
                // The other attempt of a speculated task lost the race: stop it.
                let mut actions = Vec::new();
                for (other_worker, other) in task.running_attempts() {
                    if other != attempt.attempt
                        && let Some(address) = self.workers.alive_address(&other_worker)
                    {
                        task.history.ended(other, AttemptOutcome::Cancelled, now);
                        self.metrics.cancelled(CancelReason::LostRace, 1);
                        actions.push(Action::Cancel {
                            worker: other_worker.clone(),
                            address: address.to_string(),
                            attempts: vec![TaskAttempt {
                                attempt: other,
                                ..attempt.clone()
                            }],
                        });
                    }
                }
                task.backup = None;
                task.state = TaskState::Done {
                    worker: worker.clone(),
                    address,
                    attempt: attempt.attempt,
                    bucket_bytes,
                };
                task.rows_out = rows_out;
                task.bytes_out = bytes_out;
                task.spilled_bytes = spilled_bytes;
                task.elapsed_ms = elapsed_ms;
                task.history.succeeded(
                    attempt.attempt,
                    AttemptFigures {
                        rows_out,
                        bytes_out,
                        spilled_bytes,
                        shuffle_bytes_read,
                        shuffle_bytes_fetched,
                    },
                    now,
                );
                self.metrics.succeeded(SucceededAttempt {
                    duration: task.history.duration(attempt.attempt),
                    shuffle_bytes_written: if writes_shuffle { bytes_out } else { 0 },
                    shuffle_bytes_read,
                    shuffle_bytes_fetched,
                    spilled_bytes,
                });
                let stage = &mut job.stages[attempt.stage.0 as usize];
                if stage.is_complete() {
                    stage.finished = Some(now);
                }
                actions.extend(self.complete_if_done(&attempt.job, now));
                actions
            }
            TaskOutcome::Failure {
                message,
                retryable,
                fetch_failure,
            } => {
                task.history.ended(
                    attempt.attempt,
                    AttemptOutcome::Failed(message.clone()),
                    now,
                );
                if inherited {
                    // Launched by the coordinator before the restart, maybe cancelled by it:
                    // this run tries the task afresh, counting nothing against it.
                    info!(task = %attempt, %message, "an attempt from before the restart failed; running the task again");
                    task.drop_attempt(attempt.attempt);
                    return vec![];
                }
                if let Some(FetchFailure {
                    worker: lost_worker,
                    stage,
                    map_partition,
                }) = fetch_failure
                {
                    task.fetch_failures += 1;
                    let limit = max_attempts.saturating_mul(FETCH_FAILURES_PER_ATTEMPT);
                    self.metrics
                        .failed(FailureReason::FetchFailed, task.fetch_failures < limit);
                    if task.fetch_failures >= limit {
                        let error = format!(
                            "stage {} partition {} could not fetch its input {} times; last: {message}",
                            attempt.stage, attempt.partition, task.fetch_failures
                        );
                        task.drop_attempt(attempt.attempt);
                        return self.finish_job(&attempt.job, JobState::Failed, Some(error), now);
                    }
                    // The input is gone, not this task's fault. Whatever else that worker held
                    // is likely gone too (as Spark assumes): recompute all of its outputs this
                    // job still needs now, not one fetch failure at a time.
                    task.drop_attempt(attempt.attempt);
                    warn!(task = %attempt, %message, worker = %lost_worker, stage = %stage, map_partition, "fetch failed; recomputing the map outputs that worker held");
                    job.forget_outputs_of(&lost_worker);
                    return vec![];
                }
                task.failures += 1;
                task.failed_on.push(worker.clone());
                if retryable {
                    self.workers
                        .note_failure(worker, &self.config.exclusion_policy(), now);
                }
                let retried = retryable && task.failures < max_attempts;
                let reason = if retryable {
                    FailureReason::TaskError
                } else {
                    FailureReason::NotRetryable
                };
                self.metrics.failed(reason, retried);
                if retried {
                    warn!(task = %attempt, %message, "task failed; will retry");
                    task.drop_attempt(attempt.attempt);
                    return vec![];
                }
                let error = format!(
                    "stage {} partition {} failed on worker {} (attempt {} of at most {}{}): {}",
                    attempt.stage,
                    attempt.partition,
                    worker.short(),
                    task.failures,
                    max_attempts,
                    if retryable { "" } else { ", not retryable" },
                    message
                );
                task.state = TaskState::Pending;
                self.finish_job(&attempt.job, JobState::Failed, Some(error), now)
            }
        }
    }
}
