//! Adaptive execution: decisions about a stage taken from what its input stages measured
//! when they finished, not from estimates made before the job ran.
//!
//! Today's decision is **coalescing**: a stage that reads hash or range shuffles is planned
//! with the job's shuffle partitions (twice the cluster's slots unless the job says
//! otherwise), whatever the data turns out to be. When every map output it reads is done, the
//! bytes of each partition are known (every map task reports its bucket sizes); runs of
//! adjacent small partitions are then given to one task each, which reads all their buckets.
//! Fewer, fuller tasks cost less to schedule and start, and each writes one file or one set of
//! buckets instead of many small ones. Adjacent partitions only, so that a range-partitioned
//! (sorted) stage stays in order, and every shuffle a stage reads is cut the same way, so that
//! a join's two sides still meet partition by partition.
//!
//! A decision is final: it is made once, before any task of the stage starts, logged with the
//! job (a resumed job applies the logged decisions again before adopting outputs, and a stage
//! that could have been coalesced but has no logged decision adopts nothing: its outputs may
//! have been cut otherwise), and shown in the stage's status.
//!
//! This module owns the rule and the rewrite of a stage's tasks. It must not touch: launching
//! (the scheduler launches what the rewritten stage holds), the network, or the job log's
//! format (the scheduler asks for a record).

use std::ops::Range;

use quiver_plan::{PlanNode, StageId, StageRead};
use tracing::info;

use crate::job::{Job, JobOptions, Stage, Task, TaskState};

/// A stage's tasks never get a target below this, however little data there is: one task
/// can read a few MiB faster than two can be scheduled.
const MIN_TARGET_BYTES: u64 = 4 << 20;

/// What adaptive execution decided about one stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageAdaptation {
    pub stage: StageId,
    /// The first shuffle partition each task reads, ascending from 0; a task reads up to the
    /// next one's (the last, to the end). Empty: the stage was left as planned.
    pub task_starts: Vec<u32>,
    /// The shuffle partitions the stage was planned with.
    pub planned_partitions: u32,
    /// The bytes of map output the stage reads, as measured.
    pub measured_bytes: u64,
}

impl StageAdaptation {
    /// The buckets each task reads, in task order (empty: one per partition, as planned).
    pub fn task_buckets(&self) -> Vec<Range<u32>> {
        let ends = self
            .task_starts
            .iter()
            .skip(1)
            .copied()
            .chain(std::iter::once(self.planned_partitions));
        self.task_starts
            .iter()
            .zip(ends)
            .map(|(&start, end)| start..end)
            .collect()
    }

    /// Whether it can apply to a stage planned with `partitions` partitions: starts from 0,
    /// strictly ascending, below `partitions`. A logged decision that does not fit (another
    /// build, a corrupt record) is not applied.
    pub fn fits(&self, partitions: u32) -> bool {
        self.planned_partitions == partitions
            && (self.task_starts.is_empty()
                || (self.task_starts[0] == 0
                    && self.task_starts.windows(2).all(|w| w[0] < w[1])
                    && self.task_starts.last().is_some_and(|&l| l < partitions)))
    }

    /// For status: what was decided, from what.
    pub fn describe(&self) -> String {
        let measured = human_bytes(self.measured_bytes);
        if self.task_starts.is_empty() {
            format!(
                "kept {} partitions (inputs measured {measured})",
                self.planned_partitions
            )
        } else {
            let tasks = self.task_starts.len();
            format!(
                "coalesced {} shuffle partitions into {tasks} task{} (inputs measured {measured})",
                self.planned_partitions,
                if tasks == 1 { "" } else { "s" }
            )
        }
    }
}

/// For explain and a stage not yet decided: what may be decided about `stage` of a job with
/// `options`, if anything.
pub fn prospect(stage: &Stage, options: &JobOptions) -> Option<String> {
    (options.shuffle_partitions.is_none() && may_coalesce(stage)).then(|| {
        format!(
            "may coalesce its {} shuffle partitions once its inputs are measured",
            stage.tasks.len()
        )
    })
}

/// Whether `stage` is one coalescing applies to: it reads shuffles (and maybe broadcasts),
/// not files or a union of stages, has more than one partition, and does not read a
/// repartition into a number of partitions the user chose. (A job that set its shuffle
/// partitions is decided too, keeping them, so that its outputs stay adoptable.)
pub fn may_coalesce(stage: &Stage) -> bool {
    fn walk(node: &PlanNode, shuffle_reads: &mut bool) -> bool {
        match node {
            PlanNode::Scan(_) | PlanNode::Union { .. } => false,
            PlanNode::StageRead(StageRead::Shuffle { .. }) => {
                *shuffle_reads = true;
                true
            }
            other => other.children().into_iter().all(|c| walk(c, shuffle_reads)),
        }
    }
    let mut shuffle_reads = false;
    stage.splits.is_empty()
        && !stage.user_partitions
        && stage.tasks.len() > 1
        && walk(&stage.plan, &mut shuffle_reads)
        && shuffle_reads
}

/// The first partition of each run of adjacent partitions whose bytes add up to at most
/// `target` (a partition larger than it runs alone).
pub fn coalesced_starts(partition_bytes: &[u64], target: u64) -> Vec<u32> {
    let mut starts = Vec::new();
    let mut run = 0u64;
    for (p, &bytes) in partition_bytes.iter().enumerate() {
        if starts.is_empty() || run.saturating_add(bytes) > target {
            starts.push(p as u32);
            run = 0;
        }
        run = run.saturating_add(bytes);
    }
    starts
}

/// Decides about stage `s` of `job` now that all its inputs are done: each task reads about
/// `target_bytes` (less when the data would otherwise fill fewer than `total_slots` tasks,
/// never less than [`MIN_TARGET_BYTES`]); a job that set its shuffle partitions keeps them. `None` when coalescing does not apply to the stage
/// or an input is not complete.
pub fn decide(job: &Job, s: usize, target_bytes: u64, total_slots: u32) -> Option<StageAdaptation> {
    let stage = job.stages.get(s)?;
    if stage.adaptation.is_some() || !may_coalesce(stage) {
        return None;
    }
    let partitions = stage.tasks.len();
    let mut bytes = vec![0u64; partitions];
    for input in shuffle_read_stages(&stage.plan) {
        let map_stage = job.stages.get(input.0 as usize)?;
        for task in &map_stage.tasks {
            let TaskState::Done { bucket_bytes, .. } = &task.state else {
                return None;
            };
            for (p, b) in bytes.iter_mut().enumerate() {
                *b = b.saturating_add(bucket_bytes.get(p).copied().unwrap_or(0));
            }
        }
    }
    let measured: u64 = bytes.iter().fold(0, |a, b| a.saturating_add(*b));
    let spread = measured / u64::from(total_slots.max(1));
    let target = target_bytes.min(spread).max(MIN_TARGET_BYTES);
    // Coalescing off, or partitions the job chose: the stage is still decided (kept), so
    // that its outputs can be adopted after a restart.
    let starts = if target_bytes == 0 || job.options.shuffle_partitions.is_some() {
        vec![]
    } else {
        coalesced_starts(&bytes, target)
    };
    Some(StageAdaptation {
        stage: stage.id,
        task_starts: if !starts.is_empty() && starts.len() < partitions {
            starts
        } else {
            vec![]
        },
        planned_partitions: partitions as u32,
        measured_bytes: measured,
    })
}

/// Gives `stage` the tasks `adaptation` decided (each pending, numbering attempts from
/// `first_attempt`) and keeps the decision on it. Refused (false, nothing changed) when the
/// decision does not fit the stage, or would cut it otherwise after a task started.
pub fn apply(stage: &mut Stage, adaptation: &StageAdaptation, first_attempt: u32) -> bool {
    if !adaptation.fits(stage.tasks.len() as u32) {
        return false;
    }
    let recut = !adaptation.task_starts.is_empty();
    if recut && stage.tasks.iter().any(|t| t.state != TaskState::Pending) {
        return false;
    }
    if recut {
        stage.read_buckets = adaptation.task_buckets();
        stage.tasks = stage
            .read_buckets
            .iter()
            .map(|_| {
                let mut task = Task::new();
                task.attempts = first_attempt;
                task
            })
            .collect();
    }
    stage.adaptation = Some(adaptation.clone());
    true
}

/// Takes the decision about stage `s` of `job` if it is due (its inputs are done and it was
/// not decided yet): applies it and keeps it in the job's plan record. Returns whether a
/// decision was taken (the job's start record should be logged again).
pub fn adapt(job: &mut Job, s: usize, target_bytes: u64, total_slots: u32) -> bool {
    let Some(decided) = decide(job, s, target_bytes, total_slots) else {
        return false;
    };
    let first_attempt = job.first_attempt();
    let stage = &mut job.stages[s];
    if !apply(stage, &decided, first_attempt) {
        // A task of it already started (adopted after a restart): it stays as planned.
        let kept = StageAdaptation {
            task_starts: vec![],
            ..decided
        };
        apply(stage, &kept, first_attempt);
    }
    if let Some(a) = &stage.adaptation {
        info!(job = %job.id, stage = %stage.id, decision = %a.describe(), "adaptive execution");
        if let Some(planned) = job.planned_for.as_mut() {
            planned.adaptations.push(a.clone());
        }
    }
    true
}

/// The stages whose shuffles `plan` reads (bucket by bucket; broadcasts are read whole).
fn shuffle_read_stages(plan: &PlanNode) -> Vec<StageId> {
    let mut out = Vec::new();
    fn walk(node: &PlanNode, out: &mut Vec<StageId>) {
        if let PlanNode::StageRead(StageRead::Shuffle { stage, .. }) = node
            && !out.contains(stage)
        {
            out.push(*stage);
        }
        for child in node.children() {
            walk(child, out);
        }
    }
    walk(plan, &mut out);
    out
}

fn human_bytes(bytes: u64) -> String {
    const MIB: f64 = (1u64 << 20) as f64;
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / MIB)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_small_partitions_share_a_task_and_a_large_one_runs_alone() {
        // Written out by hand: runs of at most 10 bytes.
        assert_eq!(
            coalesced_starts(&[3, 3, 3, 3, 20, 1, 1, 9], 10),
            vec![0, 3, 4, 5, 7]
        );
        assert_eq!(coalesced_starts(&[0, 0, 0, 0], 10), vec![0]);
        assert_eq!(coalesced_starts(&[11, 11], 10), vec![0, 1]);
        assert_eq!(coalesced_starts(&[], 10), Vec::<u32>::new());
    }

    #[test]
    fn a_decision_reads_every_partition_once_and_refuses_what_does_not_fit() {
        let a = StageAdaptation {
            stage: StageId(1),
            task_starts: vec![0, 3, 4],
            planned_partitions: 8,
            measured_bytes: 0,
        };
        assert_eq!(a.task_buckets(), vec![0..3, 3..4, 4..8]);
        assert!(a.fits(8));
        assert!(!a.fits(4), "planned for another partition count");
        for bad in [vec![1, 3], vec![0, 3, 3], vec![0, 8], vec![0, 5, 2]] {
            let b = StageAdaptation {
                task_starts: bad.clone(),
                ..a.clone()
            };
            assert!(!b.fits(8), "{bad:?}");
        }
    }
}
