//! Adaptive execution: decisions about a stage taken from what its input stages measured
//! when they finished, not from estimates made before the job ran.
//!
//! Three decisions. **Coalescing**: a stage that reads hash or range shuffles is planned
//! with the job's shuffle partitions (twice the cluster's slots unless the job says
//! otherwise), whatever the data turns out to be. When every map output it reads is done, the
//! bytes of each partition are known (every map task reports its bucket sizes); runs of
//! adjacent small partitions are then given to one task each, which reads all their buckets.
//! Fewer, fuller tasks cost less to schedule and start, and each writes one file or one set of
//! buckets instead of many small ones. Adjacent partitions only, so that a range-partitioned
//! (sorted) stage stays in order, and every shuffle a stage reads is cut the same way, so that
//! a join's two sides still meet partition by partition.
//!
//! **Splitting skewed join partitions**: in the same pass, a partition of a join of two
//! shuffles whose left side is far larger than the median partition's is given several tasks,
//! each reading its bucket from part of the left side's map outputs and from all of the right
//! side's (so only join types that emit no unmatched right row qualify).
//!
//! **Broadcasting a join's right side by its measured size**: the planner estimates a side
//! from its files' sizes, which a filter or a projection can shrink many times over. A join
//! it shuffles on both sides whose left side only reads files is a candidate: its right side
//! runs first (the left side waits), and if its map outputs measure at most the job's
//! broadcast threshold, the join stage takes over the left stage's splits, runs the left
//! pipeline itself and reads the right side whole — the left side is never shuffled.
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
use crate::stage_planner::JoinCandidate;

/// A stage's tasks never get a target below this, however little data there is: one task
/// can read a few MiB faster than two can be scheduled.
const MIN_TARGET_BYTES: u64 = 4 << 20;
/// A join partition whose left side holds more than this many times the median partition's
/// (and more than a task's target) is skewed: its left rows are split among several tasks.
const SKEW_FACTOR: u64 = 5;
/// A skewed partition is split into at most this many tasks.
const MAX_SPLITS_PER_PARTITION: usize = 16;

/// What adaptive execution decided about one stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageAdaptation {
    pub stage: StageId,
    /// The first shuffle partition each task reads, ascending from 0; a task reads up to the
    /// next greater one (the last, to the end). A partition repeated is a skewed one, split:
    /// each of its tasks reads it alone, from part of `split_side`'s map outputs. Empty: the
    /// stage was left as planned.
    pub task_starts: Vec<u32>,
    /// With split partitions: for each task, the first map output of `split_side` it reads
    /// (up to the next task's of the same partition; the last of a partition, to the end); 0
    /// for the tasks of unsplit partitions. Empty: nothing was split.
    pub task_map_starts: Vec<u32>,
    /// The stage (a join's left side) whose map outputs a split partition's tasks divide.
    pub split_side: Option<StageId>,
    /// The shuffle partitions the stage was planned with.
    pub planned_partitions: u32,
    /// The bytes of map output the stage reads, as measured.
    pub measured_bytes: u64,
    /// The run of the job (its incarnation) that decided it: outputs of the stage's attempts
    /// from earlier runs were cut before the decision was on disk, maybe otherwise, and are
    /// never adopted.
    pub decided_in: u32,
}

impl StageAdaptation {
    /// The buckets each task reads, in task order (empty: one per partition, as planned).
    pub fn task_buckets(&self) -> Vec<Range<u32>> {
        let starts = &self.task_starts;
        (0..starts.len())
            .map(|i| {
                let end = starts[i..]
                    .iter()
                    .find(|&&s| s > starts[i])
                    .copied()
                    .unwrap_or(self.planned_partitions);
                starts[i]..end
            })
            .collect()
    }

    /// For each task, the map outputs of `split_side` it reads when its partition was split
    /// (`None`: all of them, and every map output of the other stages).
    pub fn task_maps(&self) -> Vec<Option<(StageId, Range<u32>)>> {
        let (Some(side), false) = (self.split_side, self.task_map_starts.is_empty()) else {
            return vec![None; self.task_starts.len()];
        };
        let (starts, maps) = (&self.task_starts, &self.task_map_starts);
        (0..starts.len())
            .map(|i| {
                let split =
                    (i > 0 && starts[i - 1] == starts[i]) || starts.get(i + 1) == Some(&starts[i]);
                split.then(|| {
                    let end = match starts.get(i + 1) {
                        Some(&next) if next == starts[i] => maps[i + 1],
                        _ => u32::MAX,
                    };
                    (side, maps[i]..end)
                })
            })
            .collect()
    }

    /// Whether it can apply to a stage planned with `partitions` partitions: starts from 0,
    /// ascending, below `partitions`; a repeated (split) partition's map starts from 0,
    /// strictly ascending, followed by the next partition; every other task's map start 0. A
    /// logged decision that does not fit (another build, a corrupt record) is not applied.
    pub fn fits(&self, partitions: u32) -> bool {
        let starts = &self.task_starts;
        let maps = &self.task_map_starts;
        let most = (partitions as usize).saturating_mul(MAX_SPLITS_PER_PARTITION);
        if self.planned_partitions != partitions || starts.len() > most {
            return false;
        }
        if starts.is_empty() {
            return maps.is_empty() && self.split_side.is_none();
        }
        let ordered = starts[0] == 0
            && starts.windows(2).all(|w| w[0] <= w[1])
            && starts.last().is_some_and(|&l| l < partitions);
        if !ordered {
            return false;
        }
        if maps.is_empty() {
            return self.split_side.is_none() && starts.windows(2).all(|w| w[0] < w[1]);
        }
        if maps.len() != starts.len() || self.split_side.is_none() {
            return false;
        }
        (0..starts.len()).all(|i| {
            let first_of_run = i == 0 || starts[i - 1] != starts[i];
            let last_of_run = starts.get(i + 1) != Some(&starts[i]);
            let ends_well = !last_of_run
                || first_of_run
                || starts.get(i + 1).is_none_or(|&n| n == starts[i] + 1);
            let map_ok = if first_of_run {
                maps[i] == 0
            } else {
                maps[i] > maps[i - 1]
            };
            ends_well && map_ok
        })
    }

    /// What kind of decision it is, as a metric label: `split` (a skewed partition split,
    /// maybe others coalesced), `coalesced`, or `kept`.
    pub fn kind(&self) -> &'static str {
        if self.task_starts.windows(2).any(|w| w[0] == w[1]) {
            "split"
        } else if self.task_starts.is_empty() {
            "kept"
        } else {
            "coalesced"
        }
    }

    /// For status: what was decided, from what.
    pub fn describe(&self) -> String {
        let measured = crate::byte_size::bytes(self.measured_bytes);
        let split: Vec<u32> = self
            .task_starts
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .fold(vec![], |mut v, p| {
                if v.last() != Some(&p) {
                    v.push(p);
                }
                v
            });
        if !split.is_empty() {
            let list: Vec<String> = split.iter().map(u32::to_string).collect();
            return format!(
                "{} shuffle partitions read by {} tasks: skewed partition{} {} split by the \
                 join's left side (inputs measured {measured})",
                self.planned_partitions,
                self.task_starts.len(),
                if split.len() == 1 { "" } else { "s" },
                list.join(", ")
            );
        }
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

/// What adaptive execution decided about a join shuffled on both sides (a
/// [`JoinCandidate`]), from the bytes its right side measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinAdaptation {
    /// The stage that joins.
    pub join: StageId,
    pub left: StageId,
    pub right: StageId,
    /// The right side is read whole by every task of the join stage, which took over the
    /// left side's splits (the left stage runs no task); false: shuffled as planned.
    pub broadcast: bool,
    /// The bytes the right side's map outputs measured.
    pub right_bytes: u64,
    /// The run of the job that decided it (as [`StageAdaptation::decided_in`], for the join
    /// stage's attempts).
    pub decided_in: u32,
}

impl JoinAdaptation {
    /// What kind of decision it is, as a metric label: `broadcast` or `shuffled`.
    pub fn kind(&self) -> &'static str {
        if self.broadcast {
            "broadcast"
        } else {
            "shuffled"
        }
    }

    /// For status: what was decided, from what.
    pub fn describe(&self) -> String {
        let measured = crate::byte_size::bytes(self.right_bytes);
        if self.broadcast {
            format!(
                "broadcast the join's right side (stage {} measured {measured}); reads stage {}'s \
                 input itself",
                self.right, self.left
            )
        } else {
            format!(
                "kept the join shuffled (its right side, stage {}, measured {measured})",
                self.right
            )
        }
    }
}

/// For explain and a stage not yet decided: what may be decided about stage `s` of `stages`
/// (of a job with `options`), if anything.
pub fn prospect(stages: &[Stage], s: usize, options: &JobOptions) -> Option<String> {
    let stage = stages.get(s)?;
    let mut said = vec![];
    let join_pending = pending_join(stages, stage);
    if let (Some(c), Some(threshold)) = (join_pending, options.broadcast_threshold) {
        said.push(format!(
            "may broadcast the join's right side (stage {}) if it measures at most {} (or is \
             small beside the left side), and read stage {}'s input itself",
            c.right,
            crate::byte_size::bytes(threshold),
            c.left
        ));
    }
    if waits_for_join(stages, stage.id) {
        said.push("waits for the join's right side to be measured first".into());
    }
    if stage.adaptation.is_none() && options.shuffle_partitions.is_none() && may_coalesce(stage) {
        said.push(format!(
            "{}may coalesce its {} shuffle partitions once its inputs are measured",
            if join_pending.is_some() {
                "if the join stays shuffled, "
            } else {
                ""
            },
            stage.tasks.len()
        ));
    }
    (!said.is_empty()).then(|| said.join("; "))
}

/// Adaptive execution about stage `s` of `stages`, in words, for its status: what was
/// decided, and what may still be. Empty: nothing adaptive applies.
pub fn status_text(stages: &[Stage], s: usize, options: &JobOptions) -> String {
    let Some(stage) = stages.get(s) else {
        return String::new();
    };
    let mut said: Vec<String> = vec![];
    if let Some(j) = stages.iter().find_map(|j| {
        j.join_adaptation
            .as_ref()
            .filter(|d| d.broadcast && d.left == stage.id)
    }) {
        said.push(format!(
            "runs no task: stage {} reads its input itself (the join's right side was broadcast)",
            j.join
        ));
    }
    if let Some(d) = &stage.join_adaptation {
        said.push(d.describe());
    }
    if let Some(a) = &stage.adaptation {
        said.push(a.describe());
    }
    if let Some(p) = prospect(stages, s, options) {
        said.push(p);
    }
    said.join("; ")
}

/// Whether stage `id` is part of a join adaptive execution has not decided yet (its join
/// stage or its left side): its outputs may belong to either cut.
pub fn join_undecided(stages: &[Stage], id: StageId) -> bool {
    stages.iter().any(|j| {
        j.join_adaptation.is_none() && j.join_candidate.is_some_and(|c| j.id == id || c.left == id)
    })
}

/// Whether stage `s` must not start yet: it is the left side of a join whose right side is
/// still being measured (it may never run, its input read by the join stage instead).
pub fn holds_back(job: &Job, s: usize) -> bool {
    job.stages
        .get(s)
        .is_some_and(|st| waits_for_join(&job.stages, st.id))
}

/// Whether stage `id` is the left side of a join still to be decided ([`pending_join`]).
fn waits_for_join(stages: &[Stage], id: StageId) -> bool {
    stages
        .iter()
        .any(|j| pending_join(stages, j).is_some_and(|c| c.left == id))
}

/// The join of `stage` not decided yet that may still be broadcast (its left side is read by
/// nothing else), if any.
fn pending_join(stages: &[Stage], stage: &Stage) -> Option<JoinCandidate> {
    stage.join_candidate.filter(|c| {
        stage.join_adaptation.is_none() && !left_read_elsewhere(stages, stage.id, c.left)
    })
}

/// Whether a stage other than `join` reads `left`'s shuffle (a sort's sample of the join,
/// say): then it must be written, and the join stays shuffled.
fn left_read_elsewhere(stages: &[Stage], join: StageId, left: StageId) -> bool {
    stages
        .iter()
        .any(|o| o.id != join && o.inputs.contains(&left))
}

/// Decides every join of `job` whose right side just finished: broadcast it when it
/// measured at most the job's broadcast threshold (and nothing but the join stage reads the
/// left side), else keep it shuffled. Returns whether anything was decided (to log).
pub fn adapt_joins(job: &mut Job) -> Vec<&'static str> {
    let mut decided = vec![];
    for j in 0..job.stages.len() {
        let stage = &job.stages[j];
        let (Some(c), None) = (stage.join_candidate, &stage.join_adaptation) else {
            continue;
        };
        let Some(right) = job.stages.get(c.right.0 as usize) else {
            continue;
        };
        if !right.is_complete() {
            continue;
        }
        let right_bytes = right
            .tasks
            .iter()
            .filter_map(|t| match &t.state {
                TaskState::Done { bucket_bytes, .. } => {
                    Some(bucket_bytes.iter().fold(0u64, |a, b| a.saturating_add(*b)))
                }
                _ => None,
            })
            .fold(0u64, u64::saturating_add);
        // The left side's shuffle read by another stage too (a sort's sample of the join,
        // say): it must be written, so the join stays shuffled.
        let left_read_elsewhere = left_read_elsewhere(&job.stages, stage.id, c.left);
        let left_tasks = job
            .stages
            .get(c.left.0 as usize)
            .map_or(0, |l| l.splits.len() as u64);
        let broadcast = !left_read_elsewhere
            && job
                .options
                .broadcast_threshold
                .is_some_and(|t| small_enough(right_bytes, t, left_tasks, c.left_file_bytes));
        let decision = JoinAdaptation {
            join: stage.id,
            left: c.left,
            right: c.right,
            broadcast,
            right_bytes,
            decided_in: job.incarnation,
        };
        let first_attempt = job.first_attempt();
        if !apply_join(&mut job.stages, &decision, first_attempt) {
            // A task of either stage already ran (adopted after a restart): kept shuffled.
            let kept = JoinAdaptation {
                broadcast: false,
                ..decision
            };
            apply_join(&mut job.stages, &kept, first_attempt);
        }
        if let Some(d) = &job.stages[j].join_adaptation {
            info!(job = %job.id, stage = %d.join, decision = %d.describe(), "adaptive execution");
            if let Some(planned) = job.planned_for.as_mut() {
                planned.join_adaptations.push(d.clone());
            }
            decided.push(d.kind());
        }
    }
    decided
}

/// Whether a right side of `right_bytes` is worth broadcasting under the job's `threshold`:
/// at most the threshold; or small relative to the left side — at most 8 times the threshold
/// (every task holds all of it in memory), and read by all `left_tasks` tasks it costs less
/// than the `left_file_bytes` the left side's files hold (which a shuffle would write and
/// read again, and which are compressed: an underestimate of its rows).
fn small_enough(right_bytes: u64, threshold: u64, left_tasks: u64, left_file_bytes: u64) -> bool {
    right_bytes <= threshold
        || (right_bytes <= threshold.saturating_mul(8)
            && right_bytes.saturating_mul(left_tasks.max(1)) <= left_file_bytes)
}

/// Applies a join decision to `stages` (numbering new attempts from `first_attempt`): for a
/// broadcast, the join stage reads the left stage's splits through its pipeline and the right
/// side whole, and the left stage is left with no task. Refused (false, nothing changed) when
/// the decision does not match the stages' candidate, or a broadcast would recut stages a
/// task of which already started.
pub fn apply_join(stages: &mut [Stage], decision: &JoinAdaptation, first_attempt: u32) -> bool {
    let (j, l, r) = (
        decision.join.0 as usize,
        decision.left.0 as usize,
        decision.right.0 as usize,
    );
    let fits = stages.get(j).is_some_and(|s| {
        s.join_candidate
            .is_some_and(|c| c.left == decision.left && c.right == decision.right)
            && s.join_adaptation.is_none()
    }) && l < stages.len()
        && r < stages.len();
    if !fits {
        return false;
    }
    if decision.broadcast {
        let untouched = |s: &Stage| s.tasks.iter().all(|t| t.state == TaskState::Pending);
        // A one-task join stage may be where a limit or top-k merges: it must stay one task.
        if !untouched(&stages[j]) || !untouched(&stages[l]) || stages[j].tasks.len() < 2 {
            return false;
        }
        let left_plan = stages[l].plan.clone();
        let buckets = stages[r].output.buckets();
        let Ok(plan) = with_broadcast(
            stages[j].plan.clone(),
            decision.left,
            &left_plan,
            decision.right,
            buckets,
        ) else {
            return false;
        };
        let splits = std::mem::take(&mut stages[l].splits);
        stages[l].tasks.clear();
        let join = &mut stages[j];
        join.plan = plan;
        join.inputs.retain(|i| *i != decision.left);
        join.tasks = fresh_tasks(splits.len(), first_attempt);
        join.splits = splits;
    }
    stages[j].join_adaptation = Some(decision.clone());
    true
}

/// `plan` with its shuffle read of `left` replaced by `left_plan` and its shuffle read of
/// `right` by a broadcast read of all `buckets` buckets of it. Fails (an error naming what)
/// unless each was read exactly once.
fn with_broadcast(
    plan: PlanNode,
    left: StageId,
    left_plan: &PlanNode,
    right: StageId,
    buckets: u32,
) -> Result<PlanNode, String> {
    fn walk(
        node: PlanNode,
        left: StageId,
        left_plan: &PlanNode,
        right: StageId,
        buckets: u32,
        replaced: &mut (u32, u32),
    ) -> Result<PlanNode, String> {
        match node {
            PlanNode::StageRead(StageRead::Shuffle { stage, .. }) if stage == left => {
                replaced.0 += 1;
                Ok(left_plan.clone())
            }
            PlanNode::StageRead(StageRead::Shuffle { stage, schema }) if stage == right => {
                replaced.1 += 1;
                Ok(PlanNode::StageRead(StageRead::Broadcast {
                    stage,
                    schema,
                    buckets,
                }))
            }
            other => other.map_children(|c| walk(c, left, left_plan, right, buckets, replaced)),
        }
    }
    let mut replaced = (0, 0);
    let plan = walk(plan, left, left_plan, right, buckets, &mut replaced)?;
    if replaced != (1, 1) {
        return Err(format!(
            "the join stage reads stages {left} and {right} {replaced:?} times"
        ));
    }
    Ok(plan)
}

/// Whether `stage` is one coalescing applies to: it reads shuffles (and maybe broadcasts),
/// not files, a union of stages or a sample, has more than one partition, and does not read a
/// repartition into a number of partitions the user chose. (A job that set its shuffle
/// partitions is decided too, keeping them, so that its outputs stay adoptable.)
pub fn may_coalesce(stage: &Stage) -> bool {
    let nodes = stage.plan.nodes();
    stage.splits.is_empty()
        && !stage.user_partitions
        && stage.tasks.len() > 1
        // A sample's rows per task were sized for the planned tasks.
        && !nodes.iter().any(|n| {
            matches!(
                n,
                PlanNode::Scan(_) | PlanNode::Union { .. } | PlanNode::Sample { .. }
            )
        })
        && !shuffle_read_stages(&stage.plan).is_empty()
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
pub fn decide(
    job: &Job,
    s: usize,
    target_bytes: u64,
    total_slots: u32,
    max_tasks: u32,
) -> Option<StageAdaptation> {
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
    let kept = StageAdaptation {
        stage: stage.id,
        task_starts: vec![],
        task_map_starts: vec![],
        split_side: None,
        planned_partitions: partitions as u32,
        measured_bytes: measured,
        decided_in: job.incarnation,
    };
    // Coalescing off, or partitions the job chose: the stage is still decided (kept), so
    // that its outputs can be adopted after a restart.
    if target_bytes == 0 || job.options.shuffle_partitions.is_some() {
        return Some(kept);
    }
    let spread = measured / u64::from(total_slots.max(1));
    let target = target_bytes.min(spread).max(MIN_TARGET_BYTES);
    // A join's skewed partitions: each split by the left side's map outputs.
    let mut splits: Vec<Option<Vec<u32>>> = vec![None; partitions];
    let split_side = splittable_join_side(&stage.plan);
    if let Some(side) = split_side {
        let per_map: Vec<&[u64]> = job
            .stages
            .get(side.0 as usize)?
            .tasks
            .iter()
            .filter_map(|t| match &t.state {
                TaskState::Done { bucket_bytes, .. } => Some(bucket_bytes.as_slice()),
                _ => None,
            })
            .collect();
        let side_bytes: Vec<u64> = (0..partitions)
            .map(|p| {
                per_map
                    .iter()
                    .map(|b| b.get(p).copied().unwrap_or(0))
                    .fold(0, u64::saturating_add)
            })
            .collect();
        let mut sorted = side_bytes.clone();
        sorted.sort_unstable();
        let median = sorted[sorted.len() / 2];
        for (p, split) in splits.iter_mut().enumerate() {
            if side_bytes[p] > median.saturating_mul(SKEW_FACTOR).max(target) {
                let maps: Vec<u64> = per_map
                    .iter()
                    .map(|b| b.get(p).copied().unwrap_or(0))
                    .collect();
                // Sizes come from workers' reports: bounded splits, whatever they say.
                let at_least = side_bytes[p].div_ceil(MAX_SPLITS_PER_PARTITION as u64);
                let groups = coalesced_starts(&maps, target.max(at_least));
                if groups.len() > 1 {
                    *split = Some(groups);
                }
            }
        }
    }
    let (mut starts, mut map_starts) = task_layout(&bytes, &splits, target);
    if starts.len() > max_tasks as usize {
        // Split into more tasks than a stage may have: coalesce only.
        splits.iter_mut().for_each(|s| *s = None);
        (starts, map_starts) = task_layout(&bytes, &splits, target);
    }
    if starts.len() == partitions && map_starts.iter().all(|&m| m == 0) {
        return Some(kept);
    }
    let any_split = splits.iter().any(Option::is_some);
    Some(StageAdaptation {
        task_starts: starts,
        task_map_starts: if any_split { map_starts } else { vec![] },
        split_side: if any_split { split_side } else { None },
        ..kept
    })
}

/// The tasks of a stage with `bytes` per partition: runs of adjacent partitions of at most
/// `target` bytes, and one task per map group of each split partition. Returns each task's
/// first partition and first map output (0 unless split).
fn task_layout(bytes: &[u64], splits: &[Option<Vec<u32>>], target: u64) -> (Vec<u32>, Vec<u32>) {
    let (mut starts, mut map_starts) = (vec![], vec![]);
    let mut run: Option<u64> = None;
    for (p, &b) in bytes.iter().enumerate() {
        if let Some(groups) = &splits[p] {
            for &g in groups {
                starts.push(p as u32);
                map_starts.push(g);
            }
            run = None;
            continue;
        }
        match run {
            Some(r) if r.saturating_add(b) <= target => run = Some(r.saturating_add(b)),
            _ => {
                starts.push(p as u32);
                map_starts.push(0);
                run = Some(b);
            }
        }
    }
    (starts, map_starts)
}

/// The stage whose map outputs a skewed partition of this stage may be split by: the left
/// side of a join of two shuffle reads whose type keeps no unmatched right row (each left
/// row still meets the whole right partition; an unmatched right row would be emitted by
/// every task of the split).
fn splittable_join_side(plan: &PlanNode) -> Option<StageId> {
    plan.nodes().into_iter().find_map(|node| match node {
        PlanNode::Join {
            left,
            right,
            join_type,
            ..
        } if !join_type.keeps_unmatched_right() => match (left.as_ref(), right.as_ref()) {
            (
                PlanNode::StageRead(StageRead::Shuffle { stage: l, .. }),
                PlanNode::StageRead(StageRead::Shuffle { stage: r, .. }),
            ) if l != r => Some(*l),
            _ => None,
        },
        _ => None,
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
    // A logged decision is checked like a fresh one: only a stage coalescing applies to, and
    // only a split of the side a split may divide.
    let eligible = may_coalesce(stage)
        && (adaptation.split_side.is_none()
            || adaptation.split_side == splittable_join_side(&stage.plan));
    if recut && (!eligible || stage.tasks.iter().any(|t| t.state != TaskState::Pending)) {
        return false;
    }
    if recut {
        stage.read_buckets = adaptation.task_buckets();
        stage.split_reads = adaptation.task_maps();
        stage.tasks = fresh_tasks(stage.read_buckets.len(), first_attempt);
    }
    stage.adaptation = Some(adaptation.clone());
    true
}

/// Takes the decision about stage `s` of `job` if it is due (its inputs are done and it was
/// not decided yet): applies it and keeps it in the job's plan record. Returns the decision's
/// kind ([`StageAdaptation::kind`]) when one was taken (the job's start record should be
/// logged again).
pub fn adapt(
    job: &mut Job,
    s: usize,
    target_bytes: u64,
    total_slots: u32,
    max_tasks: u32,
) -> Option<&'static str> {
    let decided = decide(job, s, target_bytes, total_slots, max_tasks)?;
    let first_attempt = job.first_attempt();
    let stage = &mut job.stages[s];
    if !apply(stage, &decided, first_attempt) {
        // A task of it already started (adopted after a restart): it stays as planned.
        let kept = StageAdaptation {
            task_starts: vec![],
            task_map_starts: vec![],
            split_side: None,
            ..decided
        };
        apply(stage, &kept, first_attempt);
    }
    let a = stage.adaptation.clone()?;
    info!(job = %job.id, stage = %stage.id, decision = %a.describe(), "adaptive execution");
    let kind = a.kind();
    if let Some(planned) = job.planned_for.as_mut() {
        planned.adaptations.push(a);
    }
    Some(kind)
}

/// `n` pending tasks whose attempts are numbered from `first_attempt`.
fn fresh_tasks(n: usize, first_attempt: u32) -> Vec<Task> {
    (0..n)
        .map(|_| Task {
            attempts: first_attempt,
            ..Task::new()
        })
        .collect()
}

/// The stages whose shuffles `plan` reads (bucket by bucket; broadcasts are read whole).
fn shuffle_read_stages(plan: &PlanNode) -> Vec<StageId> {
    let mut out: Vec<StageId> = Vec::new();
    for node in plan.nodes() {
        if let PlanNode::StageRead(StageRead::Shuffle { stage, .. }) = node
            && !out.contains(stage)
        {
            out.push(*stage);
        }
    }
    out
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
            task_map_starts: vec![],
            split_side: None,
            planned_partitions: 8,
            measured_bytes: 0,
            decided_in: 0,
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

    #[test]
    fn a_split_partition_divides_its_left_sides_map_outputs_and_nothing_else() {
        // Partitions 0-2 coalesced; 3 split three ways by stage 0's map outputs; 4-7 one task.
        let a = StageAdaptation {
            stage: StageId(2),
            task_starts: vec![0, 3, 3, 3, 4],
            task_map_starts: vec![0, 0, 2, 5, 0],
            split_side: Some(StageId(0)),
            planned_partitions: 8,
            measured_bytes: 0,
            decided_in: 0,
        };
        assert!(a.fits(8));
        assert_eq!(a.task_buckets(), vec![0..3, 3..4, 3..4, 3..4, 4..8]);
        let side = StageId(0);
        assert_eq!(
            a.task_maps(),
            vec![
                None,
                Some((side, 0..2)),
                Some((side, 2..5)),
                Some((side, 5..u32::MAX)),
                None
            ]
        );
        assert!(
            a.describe().contains("skewed partition 3 split"),
            "{}",
            a.describe()
        );
        // Map starts that skip the first outputs, go backwards, or split an unsplit partition;
        // a split partition running into more than one bucket; no side named.
        for (starts, maps, side) in [
            (vec![0, 3, 3, 4], vec![0, 1, 2, 0], Some(side)),
            (vec![0, 3, 3, 4], vec![0, 2, 2, 0], Some(side)),
            (vec![0, 3, 3, 4], vec![1, 0, 2, 0], Some(side)),
            (vec![0, 3, 3, 5], vec![0, 0, 2, 0], Some(side)),
            (vec![0, 3, 3, 4], vec![0, 0, 2, 0], None),
        ] {
            let b = StageAdaptation {
                task_starts: starts.clone(),
                task_map_starts: maps.clone(),
                split_side: side,
                ..a.clone()
            };
            assert!(!b.fits(8), "{starts:?} {maps:?} {side:?}");
        }
    }

    #[test]
    fn a_right_side_is_broadcast_when_small_or_small_beside_the_left_side() {
        const M: u64 = 1 << 20;
        // At most the 10 MiB threshold: always.
        assert!(small_enough(10 * M, 10 * M, 1000, 0));
        // 40 MiB read by 8 tasks is 320 MiB: worth it beside 1 GiB of left files, not 200 MiB.
        assert!(small_enough(40 * M, 10 * M, 8, 1024 * M));
        assert!(!small_enough(40 * M, 10 * M, 8, 200 * M));
        // Above 8 x the threshold: never, however large the left side.
        assert!(!small_enough(81 * M, 10 * M, 1, u64::MAX));
    }

    #[test]
    fn a_skewed_partition_gets_tasks_of_its_own_and_the_rest_coalesce() {
        // By hand, target 10: partitions 0-1 together (4 + 5), 2 split at map outputs 0 and 2,
        // 3-4 together (6 + 4), 5 alone (another 9 would pass 10).
        let bytes = [4, 5, 40, 6, 4, 9];
        let splits = [None, None, Some(vec![0, 2]), None, None, None];
        assert_eq!(
            task_layout(&bytes, &splits, 10),
            (vec![0, 2, 2, 3, 5], vec![0, 0, 2, 0, 0])
        );
    }
}
