//! How a queued job is cut into stages and started: for the cluster of now, or — a job
//! resumed after a coordinator restart — for the shape the job log kept, with the adaptive
//! decisions taken before the restart applied again, so that its stages are the ones whose
//! outputs survived on the workers. Also what `ExplainJob` shows ([`plan_job`]).
//!
//! A child of `scheduler`: like its parent it does no I/O and reads no clock.

use super::*;

/// The stages job `id` runs as on a cluster of `total_slots`: what starting it does, and what
/// `ExplainJob` shows without starting anything. Pure: the caller may run it outside the
/// scheduler's lock.
pub fn plan_job(
    id: &JobId,
    plan: &PlanNode,
    sink: &Sink,
    options: &JobOptions,
    total_slots: u32,
    limits: quiver_plan::Limits,
) -> std::result::Result<Vec<Stage>, quiver_plan::PlanError> {
    let partitions = shuffle_partitions(options, total_slots, limits);
    let planner = PlannerOptions {
        shuffle_partitions: partitions,
        total_slots,
        broadcast_threshold: options.broadcast_threshold,
        max_tasks_per_stage: limits.max_tasks_per_stage,
        max_tasks_per_job: limits.max_tasks_per_job,
    };
    let stages: Vec<Stage> = plan_stages(plan, sink, planner)?
        .into_iter()
        .map(Stage::new)
        .collect();
    // What the planner made must be what every worker accepts.
    for stage in &stages {
        limits.check_task(&stage.task_definition(id, 0, 0, &[], options.batch_size))?;
    }
    Ok(stages)
}

/// The partitions of every shuffle of a job: its own setting, or twice the cluster's slots.
fn shuffle_partitions(options: &JobOptions, total_slots: u32, limits: quiver_plan::Limits) -> u32 {
    options
        .shuffle_partitions
        .unwrap_or_else(|| total_slots.saturating_mul(2).min(limits.max_partitions))
}

/// Cuts a queued job's plan into stages and starts it at `now`: for a cluster of
/// `total_slots`, or — a resumed job — for the shape the job log kept, so that its stages are
/// the ones whose outputs survived on the workers.
pub(super) fn start_job(
    job: &mut Job,
    total_slots: u32,
    limits: quiver_plan::Limits,
    now: Timestamp,
) -> std::result::Result<(), quiver_plan::PlanError> {
    let logged = job.planned_for.take();
    let (slots, options) = match &logged {
        Some(p) => (
            p.total_slots,
            JobOptions {
                shuffle_partitions: Some(p.shuffle_partitions),
                ..job.options
            },
        ),
        None => (total_slots, job.options),
    };
    let mut stages = match plan_job(&job.id, &job.plan, &job.sink, &options, slots, limits) {
        Ok(stages) => stages,
        // The logged shape no longer fits this coordinator's limits: plan for the cluster
        // of now, adopting nothing.
        Err(e) if logged.is_some() => {
            warn!(job = %job.id, error = %e, "the resumed job cannot be planned as before the restart; planning it afresh");
            job.listings.clear();
            return start_job(job, total_slots, limits, now);
        }
        Err(e) => return Err(e),
    };
    let planned = PlannedFor::of(
        &stages,
        slots,
        shuffle_partitions(&options, slots, limits),
        job.incarnation,
    );
    let same_stages = logged.as_ref().is_some_and(|l| {
        l.stage_tasks == planned.stage_tasks
            && l.stage_digests == planned.stage_digests
            && l.since_incarnation < job.incarnation
    });
    job.adoptable = vec![];
    job.planned_for = match logged {
        Some(mut l) if same_stages => {
            // What adaptive execution decided before the restart, so that the outputs the
            // workers hold are taken for the tasks that wrote them. One that does not fit is
            // dropped (that stage adopts nothing: see `adoptable_stages`).
            let first_attempt = job.first_attempt();
            l.join_adaptations.retain(|d| {
                stages
                    .get(d.join.0 as usize)
                    .is_some_and(|j| j.join_adaptation.is_none())
                    && adaptive::apply_join(&mut stages, d, first_attempt)
            });
            // A job that set its partitions keeps them, whatever a record says.
            let partitions_set = job.options.shuffle_partitions.is_some();
            l.adaptations.retain(|a| {
                if partitions_set && !a.task_starts.is_empty() {
                    return false;
                }
                stages.get_mut(a.stage.0 as usize).is_some_and(|stage| {
                    stage.adaptation.is_none() && adaptive::apply(stage, a, first_attempt)
                })
            });
            job.adoptable = adoptable_stages(&stages);
            Some(l)
        }
        Some(_) => {
            warn!(job = %job.id, "the resumed job's stages come out otherwise than before the restart; all of them run again");
            job.listings.clear();
            Some(planned)
        }
        None => Some(planned),
    };
    // A resumed job's attempts are numbered apart from those of its earlier runs.
    let first_attempt = job.first_attempt();
    for task in stages.iter_mut().flat_map(|s| s.tasks.iter_mut()) {
        task.attempts = first_attempt;
    }
    job.stages = stages;
    job.state = JobState::Running;
    job.started = Some(now);
    info!(job = %job.id, stages = job.stages.len(), "job started");
    Ok(())
}
