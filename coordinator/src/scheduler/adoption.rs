//! How a job resumed after a coordinator restart adopts the outputs that survived on the
//! workers (docs/architecture.md, "A resumed job adopts the outputs that survived"): what
//! registering workers list, held until the job is planned if need be; late reports of
//! attempts from before the restart; and when a job is done because of them.
//!
//! Which output fits which task is [`Job::adopt`]'s decision; this module only routes listings
//! and reports to it. A child of `scheduler`: like its parent it does no I/O and reads no
//! clock.

use super::*;
use crate::job::ReportedOutput;

impl Scheduler {
    /// A registering worker listed the map outputs it holds: each resumed job adopts those its
    /// pending tasks need (a resumed job not planned yet keeps them until it is; a worker
    /// registering again replaces what it listed before). Outputs of other jobs, or that do
    /// not fit, are ignored: the worker is told which jobs are live and drops the rest of its
    /// data itself.
    pub(super) fn take_held_outputs(
        &mut self,
        worker: &WorkerId,
        address: &str,
        outputs: Vec<HeldOutput>,
        now: Timestamp,
    ) -> Vec<Action> {
        for id in &self.active {
            if let Some(job) = self.jobs.get_mut(id) {
                job.reported_outputs.retain(|r| r.worker != *worker);
            }
        }
        // Per job, in the order listed (the scheduler's answers do not depend on hashing).
        let mut adopted: Vec<(JobId, usize)> = Vec::new();
        for output in outputs {
            let Some(job) = self.jobs.get_mut(&output.job) else {
                continue;
            };
            let Some(planned) = &job.planned_for else {
                continue;
            };
            if job.incarnation == 0 || job.commit.is_some() {
                continue;
            }
            if job.state == JobState::Queued {
                // Bounded by the job's tasks for each listing worker.
                let fits = planned
                    .stage_tasks
                    .get(output.stage.0 as usize)
                    .is_some_and(|&tasks| output.partition < tasks);
                if fits {
                    job.reported_outputs.push(ReportedOutput {
                        worker: worker.clone(),
                        address: address.to_string(),
                        output,
                    });
                }
            } else if job.adopt(worker, address, &output, now) {
                // (`adopt` takes outputs for running jobs only.)
                match adopted.iter_mut().find(|(id, _)| *id == output.job) {
                    Some((_, n)) => *n += 1,
                    None => adopted.push((output.job, 1)),
                }
            }
        }
        let mut actions = Vec::new();
        for (id, outputs) in adopted {
            info!(job = %id, outputs, %worker, "adopted outputs that survived the coordinator's restart");
            actions.extend(self.complete_if_done(&id, now));
        }
        actions
    }

    /// Job `id` was just planned: it adopts what workers listed for it before, from those
    /// still registered at the address they listed it from.
    pub(super) fn adopt_reported_outputs(&mut self, id: &JobId, now: Timestamp) -> Vec<Action> {
        let Some(job) = self.jobs.get_mut(id) else {
            return vec![];
        };
        let mut adopted = 0usize;
        for r in std::mem::take(&mut job.reported_outputs) {
            if self.workers.alive_address(&r.worker) == Some(r.address.as_str())
                && job.adopt(&r.worker, &r.address, &r.output, now)
            {
                adopted += 1;
            }
        }
        if adopted == 0 {
            return vec![];
        }
        info!(job = %id, outputs = adopted, "adopted outputs that survived the coordinator's restart");
        self.complete_if_done(id, now)
    }

    /// A success reported for an attempt the coordinator does not wait for: adopted (or kept,
    /// when its output already was, or waits to be, from the worker's listing) when it is an
    /// attempt of a resumed job's earlier run that a pending task can use. Returns whether
    /// the output stays.
    pub(super) fn adopt_late_report(
        &mut self,
        attempt: &TaskAttempt,
        worker: &WorkerId,
        outcome: &TaskOutcome,
        now: Timestamp,
    ) -> bool {
        let TaskOutcome::Success {
            bucket_bytes,
            rows_out,
            ..
        } = outcome
        else {
            return false;
        };
        let Some(address) = self.workers.alive_address(worker).map(str::to_string) else {
            return false;
        };
        let Some(job) = self.jobs.get_mut(&attempt.job) else {
            return false;
        };
        let listed = job.reported_outputs.iter().any(|r| {
            r.worker == *worker
                && (r.output.stage, r.output.partition, r.output.attempt)
                    == (attempt.stage, attempt.partition, attempt.attempt)
        });
        if listed || job.holds_output(attempt.stage, attempt.partition, worker, attempt.attempt) {
            return true;
        }
        let output = HeldOutput {
            job: attempt.job.clone(),
            stage: attempt.stage,
            partition: attempt.partition,
            attempt: attempt.attempt,
            bucket_bytes: bucket_bytes.clone(),
            rows: *rows_out,
        };
        let adopted = job.adopt(worker, &address, &output, now);
        if adopted {
            info!(task = %attempt, %worker, "adopted the late result of an attempt from before the coordinator's restart");
        }
        adopted
    }

    /// Ends job `id`'s tasks if all it needs is done (e.g. after adopting outputs): a
    /// `write_parquet` job commits, any other succeeds.
    pub(super) fn complete_if_done(&mut self, id: &JobId, now: Timestamp) -> Vec<Action> {
        let done = self.jobs.get(id).is_some_and(|j| {
            j.state == JobState::Running && j.commit.is_none() && j.all_tasks_done()
        });
        if done {
            self.tasks_complete(id, now)
        } else {
            vec![]
        }
    }
}
