//! How a job resumed after a coordinator restart adopts the outputs that survived on the
//! workers, and the attempts still running there (docs/architecture.md, "A resumed job adopts
//! the outputs that survived"): what registering workers list, held until the job is planned
//! if need be; late reports of attempts from before the restart; and when a job is done
//! because of them.
//!
//! Which output fits which task is [`Job::adopt`]'s decision; this module only routes listings
//! and reports to it. A child of `scheduler`: like its parent it does no I/O and reads no
//! clock.

use super::*;
use crate::job::{Listed, Listing};

impl Scheduler {
    /// A registering worker listed the map outputs it holds and the attempts it runs: each
    /// resumed job adopts those its pending tasks can use (a resumed job not planned yet keeps
    /// them until it is; a worker registering again replaces what it listed before). What
    /// belongs to other jobs, or does not fit, is ignored: the worker is told which jobs are
    /// live and drops the rest of its data itself.
    pub(super) fn take_listings(
        &mut self,
        worker: &WorkerId,
        address: &str,
        outputs: Vec<HeldOutput>,
        running: Vec<TaskAttempt>,
        now: Timestamp,
    ) -> Vec<Action> {
        for id in &self.active {
            if let Some(job) = self.jobs.get_mut(id) {
                job.listings.retain(|r| r.worker != *worker);
            }
        }
        let listed = outputs
            .into_iter()
            .map(Listed::Output)
            .chain(running.into_iter().map(Listed::Running));
        // Per job, in the order listed (the scheduler's answers do not depend on hashing).
        let mut adopted: Vec<(JobId, usize)> = Vec::new();
        for item in listed {
            let attempt = match &item {
                Listed::Output(o) => &o.attempt,
                Listed::Running(a) => a,
            };
            let (job_id, stage, partition) =
                (attempt.job.clone(), attempt.stage, attempt.partition);
            let Some(job) = self.jobs.get_mut(&job_id) else {
                continue;
            };
            let Some(planned) = &job.planned_for else {
                continue;
            };
            if job.incarnation == 0 || job.commit.is_some() {
                continue;
            }
            if job.state == JobState::Queued {
                // Bounded by the job's tasks for each listing worker (twice: an output and an
                // attempt per task at most).
                let fits = planned
                    .stage_tasks
                    .get(stage.0 as usize)
                    .is_some_and(|&tasks| partition < tasks);
                if fits {
                    job.listings.push(Listing {
                        worker: worker.clone(),
                        address: address.to_string(),
                        listed: item,
                    });
                }
            } else if adopt_listed(job, worker, address, &item, now) {
                match adopted.iter_mut().find(|(id, _)| *id == job_id) {
                    Some((_, n)) => *n += 1,
                    None => adopted.push((job_id, 1)),
                }
            }
        }
        let mut actions = Vec::new();
        for (id, adopted) in adopted {
            info!(job = %id, adopted, %worker, "adopted outputs and running attempts that survived the coordinator's restart");
            actions.extend(self.complete_if_done(&id, now));
        }
        actions
    }

    /// Job `id` was just planned: it adopts what workers listed for it before, from those
    /// still registered at the address they listed it from.
    pub(super) fn adopt_listings(&mut self, id: &JobId, now: Timestamp) -> Vec<Action> {
        let Some(job) = self.jobs.get_mut(id) else {
            return vec![];
        };
        let mut adopted = 0usize;
        for r in std::mem::take(&mut job.listings) {
            if self.workers.alive_address(&r.worker) == Some(r.address.as_str())
                && adopt_listed(job, &r.worker, &r.address, &r.listed, now)
            {
                adopted += 1;
            }
        }
        if adopted == 0 {
            return vec![];
        }
        info!(job = %id, adopted, "adopted outputs and running attempts that survived the coordinator's restart");
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
        let listed = job.listings.iter().any(|r| {
            r.worker == *worker && matches!(&r.listed, Listed::Output(o) if o.attempt == *attempt)
        });
        if listed || job.holds_output(attempt.stage, attempt.partition, worker, attempt.attempt) {
            return true;
        }
        let output = HeldOutput {
            attempt: attempt.clone(),
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

/// Adopts one listed item for `job`: an output as its task's result, an attempt as its task's
/// running attempt.
fn adopt_listed(
    job: &mut Job,
    worker: &WorkerId,
    address: &str,
    item: &Listed,
    now: Timestamp,
) -> bool {
    match item {
        Listed::Output(output) => job.adopt(worker, address, output, now),
        Listed::Running(attempt) => job.adopt_running(worker, attempt, now),
    }
}
