//! Encodes a [`Job`] as the `JobStatus` message that drivers and the CLI see.

use std::time::Duration;

use quiver_net::GrantKey;
use quiver_plan::Sink;
use quiver_plan::proto_conversion::schema_to_bytes;
use quiver_proto::v1 as pb;

use crate::attempt_history::{AttemptOutcome, AttemptRecord};
use crate::event::Timestamp;
use crate::job::{Job, JobOptions, JobState, Stage, TaskState};

fn job_state(s: JobState) -> pb::JobState {
    match s {
        JobState::Queued => pb::JobState::Queued,
        JobState::Running => pb::JobState::Running,
        JobState::Succeeded => pb::JobState::Succeeded,
        JobState::Failed => pb::JobState::Failed,
        JobState::Cancelled => pb::JobState::Cancelled,
    }
}

/// Milliseconds from `from` to `to`, or to `now` while `to` has not come.
fn millis_between(from: Option<Timestamp>, to: Option<Timestamp>, now: Timestamp) -> u64 {
    match from {
        Some(f) => to.unwrap_or(now).since(f).as_millis() as u64,
        None => 0,
    }
}

/// A sum of figures workers reported, saturating: a worker's numbers are not trusted not to
/// overflow.
fn total(figures: impl Iterator<Item = u64>) -> u64 {
    figures.fold(0, u64::saturating_add)
}

fn stage_status(job: &Job, s: usize, now: Timestamp) -> pb::StageStatus {
    let stage = &job.stages[s];
    let started = stage.started.is_some();
    let state = match job.state {
        // A left side whose join stage read its input itself (adaptive execution).
        _ if stage.tasks.is_empty() => pb::StageState::Skipped,
        _ if stage.is_complete() => pb::StageState::Complete,
        JobState::Failed | JobState::Cancelled | JobState::Succeeded if !started => {
            pb::StageState::Skipped
        }
        JobState::Failed => pb::StageState::Failed,
        JobState::Cancelled => pb::StageState::Cancelled,
        _ if started => pb::StageState::Running,
        _ => pb::StageState::Waiting,
    };
    pb::StageStatus {
        state: state as i32,
        tasks_done: stage.tasks.iter().filter(|t| t.is_done()).count() as u32,
        tasks_running: stage
            .tasks
            .iter()
            .filter(|t| matches!(t.state, TaskState::Running { .. }))
            .count() as u32,
        rows_out: total(stage.tasks.iter().map(|t| t.rows_out)),
        bytes_out: total(stage.tasks.iter().map(|t| t.bytes_out)),
        spilled_bytes: total(stage.tasks.iter().map(|t| t.spilled_bytes)),
        elapsed_ms: millis_between(stage.started, stage.finished, now),
        ..planned_stage_status(&job.stages, s, &job.options)
    }
}

/// A stage's pipeline and output, in words.
fn describe(stage: &Stage) -> String {
    format!("{} => {}", stage.plan.describe(), stage.output.label())
}

/// A stage as planned, before anything ran (for `ExplainJob`); [`stage_status`] adds its
/// progress.
pub fn planned_stage_status(stages: &[Stage], s: usize, options: &JobOptions) -> pb::StageStatus {
    let stage = &stages[s];
    pb::StageStatus {
        stage_id: stage.id.0,
        input_stages: stage.inputs.iter().map(|s| s.0).collect(),
        partitions: stage.tasks.len() as u32,
        state: pb::StageState::Waiting as i32,
        description: describe(stage),
        output: Some((&stage.output).into()),
        adaptive: crate::adaptive::status_text(stages, s, options),
        ..Default::default()
    }
}

/// How result tickets are signed.
pub struct ResultGrants<'a> {
    pub key: &'a GrantKey,
    /// How long a ticket stays valid (the results stay on the workers about that long).
    pub valid_for: Duration,
}

/// The status of `job` at `now`. With `grants`, once a collect job succeeded, it says where
/// each result partition is, with a signed ticket to fetch it.
pub fn job_status(job: &Job, grants: Option<&ResultGrants<'_>>, now: Timestamp) -> pb::JobStatus {
    let results = match (&job.sink, job.state, job.final_stage(), grants) {
        (Sink::Collect, JobState::Succeeded, Some(stage), Some(grants)) => {
            let grant = grants.key.sign(&job.id.0, stage.id.0, grants.valid_for);
            stage
                .tasks
                .iter()
                .enumerate()
                .filter_map(|(p, t)| match &t.state {
                    TaskState::Done {
                        worker,
                        address,
                        bucket_bytes,
                        ..
                    } => Some(pb::ResultPartition {
                        partition: p as u32,
                        worker_id: worker.0.clone(),
                        address: address.clone(),
                        ticket: Some(pb::ShuffleTicket {
                            job_id: job.id.0.clone(),
                            stage_id: stage.id.0,
                            map_partition: p as u32,
                            bucket: 0,
                            bucket_count: 1,
                            grant: Some(grant.clone()),
                        }),
                        bytes: total(bucket_bytes.iter().copied()),
                    }),
                    _ => None,
                })
                .collect()
        }
        _ => vec![],
    };
    pb::JobStatus {
        job_id: job.id.0.clone(),
        name: job.name.clone(),
        state: job_state(job.state) as i32,
        error: job.error.clone(),
        stages: (0..job.stages.len())
            .map(|s| stage_status(job, s, now))
            .collect(),
        results,
        result_schema: schema_to_bytes(&job.result_schema),
        submitted_at_ms: job.submitted.wall_ms,
        elapsed_ms: millis_between(Some(job.submitted), job.finished, now),
        waiting_reason: job.waiting_reason.clone(),
        results_unavailable: false,
    }
}

/// Attempts one status lists at most, over all its stages (the newest stages' may be left
/// out): the answer stays a few megabytes, and the scheduler's lock is held briefly.
pub const MAX_ATTEMPTS_LISTED: usize = 100_000;

/// [`job_status`] with the task attempts of every stage (`StageStatus.attempts`), up to
/// [`MAX_ATTEMPTS_LISTED`].
pub fn job_status_with_attempts(
    job: &Job,
    grants: Option<&ResultGrants<'_>>,
    now: Timestamp,
) -> pb::JobStatus {
    let mut status = job_status(job, grants, now);
    let mut room = MAX_ATTEMPTS_LISTED;
    for (out, stage) in status.stages.iter_mut().zip(&job.stages) {
        out.attempts = stage
            .tasks
            .iter()
            .enumerate()
            .flat_map(|(p, task)| {
                task.history
                    .records()
                    .iter()
                    .map(move |r| attempt_status(p as u32, r, now))
            })
            .take(room)
            .collect();
        room -= out.attempts.len();
    }
    status
}

fn attempt_status(partition: u32, r: &AttemptRecord, now: Timestamp) -> pb::TaskAttemptStatus {
    let (state, error) = match &r.outcome {
        AttemptOutcome::Running => (pb::TaskAttemptState::Running, None),
        AttemptOutcome::Succeeded => (pb::TaskAttemptState::Succeeded, None),
        AttemptOutcome::Failed(message) => (pb::TaskAttemptState::Failed, Some(message.clone())),
        AttemptOutcome::Cancelled => (pb::TaskAttemptState::Cancelled, None),
        AttemptOutcome::Lost => (pb::TaskAttemptState::Lost, None),
    };
    pb::TaskAttemptStatus {
        partition,
        attempt: r.attempt,
        worker_id: r.worker.0.clone(),
        state: state as i32,
        started_at_ms: r.started.wall_ms,
        elapsed_ms: millis_between(Some(r.started), r.finished, now),
        speculative: r.speculative,
        rows_out: r.figures.rows_out,
        bytes_out: r.figures.bytes_out,
        spilled_bytes: r.figures.spilled_bytes,
        shuffle_bytes_read: r.figures.shuffle_bytes_read,
        shuffle_bytes_fetched: r.figures.shuffle_bytes_fetched,
        error,
    }
}
