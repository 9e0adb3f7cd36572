//! Cuts a logical plan into stages at every exchange and decides each stage's partitions.
//!
//! A stage is a pipeline of narrow operators from its sources (scans, shuffle reads,
//! broadcast reads) to an output (a shuffle, or the job's sink). A scan stage has one
//! partition per input split; a stage after a shuffle has the shuffle's partition count.
//! The exchanges:
//! - an aggregation becomes a partial aggregation at the end of one stage, a hash shuffle on
//!   its keys, and a final aggregation at the start of the next (`count_distinct` first
//!   becomes two aggregations: by keys and value, then by keys);
//! - a join either shuffles both sides by their keys into a join stage, or (when the right
//!   side is small and the join type allows it) writes the right side whole and has every
//!   task of the left side read all of it;
//! - a global sort samples its keys in one stage, range-partitions by boundaries taken from
//!   that sample in the next, and sorts each range in the last; a sort with a limit (top-k)
//!   keeps the first k rows of each task and merges them in one task;
//! - a union runs each input's tasks side by side in one stage.

use quiver_plan::aggregate::count_of;
use quiver_plan::expr::col;
use quiver_plan::join::{coerced_keys, join_key_types};
use quiver_plan::{
    AggregateFunction, AggregateMode, Expr, FileSplit, JoinStrategy, PlanError, PlanNode, ScanNode,
    Sink, SourceFormat, StageId, StageOutput,
};

/// Smallest and largest byte range a text split covers.
const MIN_SPLIT_BYTES: u64 = 4 << 20;
const MAX_SPLIT_BYTES: u64 = 128 << 20;
/// Aim for this many splits per slot, so that faster workers can take more of them.
const SPLITS_PER_SLOT: u64 = 4;
/// Sampled sort keys per output partition of a global sort, over all sampling tasks.
const SAMPLE_ROWS_PER_PARTITION: u64 = 100;
/// Joins broadcast a right side estimated below this size unless the job says otherwise.
pub const DEFAULT_BROADCAST_THRESHOLD: u64 = 10 << 20;
/// The column a `count_distinct` value is grouped under in its first aggregation.
const DISTINCT_VALUE_COLUMN: &str = "__distinct_value";

/// What the planner needs to know about the job and the cluster.
#[derive(Clone, Copy, Debug)]
pub struct PlannerOptions {
    /// Partitions of every hash or range shuffle.
    pub shuffle_partitions: u32,
    /// Slots in the cluster now; sizes the input splits.
    pub total_slots: u32,
    /// Broadcast a join's right side when its input is estimated at most this many bytes
    /// (`None`: never).
    pub broadcast_threshold: Option<u64>,
    /// Most tasks a stage that reads files (or a union) may have; more is an error.
    pub max_tasks_per_stage: u32,
    /// Most tasks all stages together may have; more is an error.
    pub max_tasks_per_job: u32,
}

/// One stage of a job, ready to schedule.
#[derive(Clone, Debug)]
pub struct PlannedStage {
    pub id: StageId,
    pub plan: PlanNode,
    pub output: StageOutput,
    pub inputs: Vec<StageId>,
    pub partitions: u32,
    /// For scan stages: the splits of each partition.
    pub splits: Vec<Vec<FileSplit>>,
}

#[derive(Clone)]
enum Partitioning {
    Splits(Vec<Vec<FileSplit>>),
    Shuffle(u32),
}

impl Partitioning {
    fn count(&self) -> u32 {
        match self {
            Partitioning::Splits(s) => s.len() as u32,
            Partitioning::Shuffle(n) => *n,
        }
    }

    /// One (possibly empty) split list per partition.
    fn into_splits(self) -> Vec<Vec<FileSplit>> {
        match self {
            Partitioning::Splits(s) => s,
            Partitioning::Shuffle(n) => vec![vec![]; n as usize],
        }
    }
}

/// A plan built so far: the current stage's pipeline, the stages it reads, its partitions.
type Built = (PlanNode, Vec<StageId>, Partitioning);

struct Planner {
    stages: Vec<PlannedStage>,
    shuffle_partitions: u32,
    total_slots: u32,
    broadcast_threshold: Option<u64>,
    max_tasks_per_stage: u32,
    max_tasks_per_job: u32,
    /// Tasks of the stages added so far.
    tasks: u64,
}

/// Plans the stages of `plan` writing into `sink`.
pub fn plan_stages(
    plan: &PlanNode,
    sink: &Sink,
    options: PlannerOptions,
) -> Result<Vec<PlannedStage>, PlanError> {
    plan.schema()?;
    let plan = &quiver_plan::column_pruning::prune_scan_columns(plan);
    let mut planner = Planner {
        stages: Vec::new(),
        shuffle_partitions: options.shuffle_partitions.max(1),
        total_slots: options.total_slots.max(1),
        broadcast_threshold: options.broadcast_threshold,
        max_tasks_per_stage: options.max_tasks_per_stage.max(1),
        max_tasks_per_job: options.max_tasks_per_job.max(1),
        tasks: 0,
    };
    let (root, inputs, partitioning) = planner.build(plan)?;
    planner.add_stage(root, StageOutput::from(sink.clone()), inputs, partitioning)?;
    Ok(planner.stages)
}

impl Planner {
    fn add_stage(
        &mut self,
        plan: PlanNode,
        output: StageOutput,
        inputs: Vec<StageId>,
        partitioning: Partitioning,
    ) -> Result<StageId, PlanError> {
        let id = StageId(self.stages.len() as u32);
        let (partitions, splits) = match partitioning {
            Partitioning::Splits(s) => (s.len() as u32, s),
            Partitioning::Shuffle(n) => (n, vec![]),
        };
        // Each stage is bounded on its own; this bounds how many of them a plan can stack.
        self.tasks += u64::from(partitions);
        quiver_plan::Limits::check(
            "the tasks of all the job's stages",
            self.tasks,
            self.max_tasks_per_job,
            "coordinator flag --max-tasks-per-job",
        )?;
        self.stages.push(PlannedStage {
            id,
            plan,
            output,
            inputs,
            partitions,
            splits,
        });
        Ok(id)
    }

    /// Ends the current stage with a hash shuffle; returns the read side of it.
    fn shuffle(
        &mut self,
        built: Built,
        keys: Vec<Expr>,
        partitions: u32,
    ) -> Result<Built, PlanError> {
        let (plan, inputs, p) = built;
        let schema = plan.schema()?;
        let stage = self.add_stage(
            plan,
            StageOutput::HashShuffle { keys, partitions },
            inputs,
            p,
        )?;
        Ok((
            PlanNode::ShuffleRead { stage, schema },
            vec![stage],
            Partitioning::Shuffle(partitions),
        ))
    }

    fn join(&mut self, node: &PlanNode) -> Result<Built, PlanError> {
        let PlanNode::Join {
            left,
            right,
            left_keys,
            right_keys,
            join_type,
            strategy,
        } = node
        else {
            unreachable!("join() is only called with a join");
        };
        let (left_schema, right_schema) = (left.schema()?, right.schema()?);
        let types = join_key_types(&left_schema, &right_schema, left_keys, right_keys)?;
        let broadcast = match strategy {
            JoinStrategy::Broadcast => true,
            JoinStrategy::Shuffle => false,
            JoinStrategy::Auto => {
                !join_type.keeps_unmatched_right()
                    && self
                        .broadcast_threshold
                        .is_some_and(|t| estimated_bytes(right) <= t)
            }
        };
        let (left_plan, mut inputs, left_partitioning) = self.build(left)?;
        let right_built = self.build(right)?;
        let join = |l: PlanNode, r: PlanNode| PlanNode::Join {
            left: Box::new(l),
            right: Box::new(r),
            left_keys: left_keys.clone(),
            right_keys: right_keys.clone(),
            join_type: *join_type,
            strategy: *strategy,
        };
        if broadcast {
            // The right side's tasks all write one bucket; every left task reads all of them.
            let (right_plan, right_inputs, right_partitioning) = right_built;
            let schema = right_plan.schema()?;
            let stage = self.add_stage(
                right_plan,
                StageOutput::HashShuffle {
                    keys: vec![],
                    partitions: 1,
                },
                right_inputs,
                right_partitioning,
            )?;
            inputs.push(stage);
            let read = PlanNode::BroadcastRead { stage, schema };
            return Ok((join(left_plan, read), inputs, left_partitioning));
        }
        // Both sides hash the same types, so equal keys meet in the same partition.
        let n = self.shuffle_partitions;
        let left_hash = coerced_keys(left_keys, &left_schema, &types)?;
        let right_hash = coerced_keys(right_keys, &right_schema, &types)?;
        let (l, mut inputs, _) =
            self.shuffle((left_plan, inputs, left_partitioning), left_hash, n)?;
        let (r, right_inputs, _) = self.shuffle(right_built, right_hash, n)?;
        inputs.extend(right_inputs);
        Ok((join(l, r), inputs, Partitioning::Shuffle(n)))
    }

    fn sort(&mut self, node: &PlanNode) -> Result<Built, PlanError> {
        let PlanNode::Sort {
            input,
            order,
            limit,
        } = node
        else {
            unreachable!("sort() is only called with a sort");
        };
        let (child, inputs, p) = self.build(input)?;
        if let Some(k) = limit {
            // Top-k: each task keeps its first k rows, one task merges them.
            let local = PlanNode::Sort {
                input: Box::new(child),
                order: order.clone(),
                limit: Some(*k),
            };
            if p.count() == 1 {
                return Ok((local, inputs, p));
            }
            let (read, inputs, p) = self.shuffle((local, inputs, p), vec![], 1)?;
            return Ok((
                PlanNode::Sort {
                    input: Box::new(read),
                    order: order.clone(),
                    limit: Some(*k),
                },
                inputs,
                p,
            ));
        }
        let n = self.shuffle_partitions;
        let schema = child.schema()?;
        // Stage 1: a deterministic sample of the sort keys of every input task.
        let keys = order
            .iter()
            .enumerate()
            .map(|(i, o)| o.expr.clone().alias(format!("__sort_key_{i}")))
            .collect();
        let rows = (SAMPLE_ROWS_PER_PARTITION * u64::from(n)).div_ceil(u64::from(p.count().max(1)));
        let sample = PlanNode::Sample {
            input: Box::new(PlanNode::Project {
                input: Box::new(child.clone()),
                exprs: keys,
            }),
            rows: rows.clamp(16, 100_000) as u32,
        };
        let sample_stage = self.add_stage(
            sample,
            StageOutput::HashShuffle {
                keys: vec![],
                partitions: 1,
            },
            inputs.clone(),
            p.clone(),
        )?;
        // Stage 2: the input again, range-partitioned by boundaries from the sample.
        let mut range_inputs = inputs;
        range_inputs.push(sample_stage);
        let range_stage = self.add_stage(
            child,
            StageOutput::RangeShuffle {
                order: order.clone(),
                partitions: n,
                sample: sample_stage,
            },
            range_inputs,
            p,
        )?;
        // Stage 3 (the caller's): each range sorted.
        Ok((
            PlanNode::Sort {
                input: Box::new(PlanNode::ShuffleRead {
                    stage: range_stage,
                    schema,
                }),
                order: order.clone(),
                limit: None,
            },
            vec![range_stage],
            Partitioning::Shuffle(n),
        ))
    }

    fn union(&mut self, inputs: &[PlanNode]) -> Result<Built, PlanError> {
        let mut plans = Vec::new();
        let mut stages = Vec::new();
        let mut counts = Vec::new();
        let mut splits = Vec::new();
        for input in inputs {
            let (plan, input_stages, p) = self.build(input)?;
            plans.push(plan);
            stages.extend(input_stages);
            counts.push(p.count());
            // All inputs run as one stage: bound their tasks together, as they are added.
            quiver_plan::Limits::check(
                format!("the tasks of a union of {} inputs", inputs.len()),
                counts.iter().map(|&c| u64::from(c)).sum(),
                self.max_tasks_per_stage,
                "coordinator flag --max-tasks-per-stage",
            )?;
            splits.extend(p.into_splits());
        }
        Ok((
            PlanNode::Union {
                inputs: plans,
                partitions: counts,
            },
            stages,
            Partitioning::Splits(splits),
        ))
    }

    fn build(&mut self, node: &PlanNode) -> Result<Built, PlanError> {
        Ok(match node {
            PlanNode::Join { .. } => self.join(node)?,
            PlanNode::Sort { .. } => self.sort(node)?,
            PlanNode::Union { inputs, .. } => self.union(inputs)?,
            PlanNode::BroadcastRead { .. } | PlanNode::Sample { .. } => {
                return Err(PlanError::InvalidPlan(format!(
                    "a submitted plan cannot contain a {}",
                    node.label()
                )));
            }
            PlanNode::Aggregate {
                input,
                keys,
                aggregates,
                mode: AggregateMode::Single,
            } if aggregates
                .iter()
                .any(|a| a.function == AggregateFunction::CountDistinct) =>
            {
                // Distinct (keys, value) pairs first, then a count of values per key.
                let value = aggregates[0]
                    .input
                    .clone()
                    .unwrap_or(Expr::Literal(quiver_plan::ScalarValue::Null));
                let mut inner_keys = keys.clone();
                inner_keys.push(value.alias(DISTINCT_VALUE_COLUMN));
                let inner = PlanNode::Aggregate {
                    input: input.clone(),
                    keys: inner_keys,
                    aggregates: vec![],
                    mode: AggregateMode::Single,
                };
                let outer = PlanNode::Aggregate {
                    input: Box::new(inner),
                    keys: keys.iter().map(|k| col(k.output_name())).collect(),
                    aggregates: aggregates
                        .iter()
                        .map(|a| count_of(col(DISTINCT_VALUE_COLUMN)).alias(a.name.clone()))
                        .collect(),
                    mode: AggregateMode::Single,
                };
                return self.build(&outer);
            }
            PlanNode::Scan(scan) => (
                node.clone(),
                vec![],
                Partitioning::Splits(self.splits(scan)?),
            ),
            PlanNode::ShuffleRead { .. } => {
                return Err(PlanError::InvalidPlan(
                    "a submitted plan cannot contain a shuffle read".into(),
                ));
            }
            PlanNode::Filter { input, predicate } => {
                let (child, inputs, p) = self.build(input)?;
                (
                    PlanNode::Filter {
                        input: Box::new(child),
                        predicate: predicate.clone(),
                    },
                    inputs,
                    p,
                )
            }
            PlanNode::Project { input, exprs } => {
                let (child, inputs, p) = self.build(input)?;
                (
                    PlanNode::Project {
                        input: Box::new(child),
                        exprs: exprs.clone(),
                    },
                    inputs,
                    p,
                )
            }
            PlanNode::MapBatches {
                input,
                function,
                schema,
            } => {
                let (child, inputs, p) = self.build(input)?;
                (
                    PlanNode::MapBatches {
                        input: Box::new(child),
                        function: function.clone(),
                        schema: schema.clone(),
                    },
                    inputs,
                    p,
                )
            }
            PlanNode::FlatMap {
                input,
                function,
                schema,
            } => {
                let (child, inputs, p) = self.build(input)?;
                (
                    PlanNode::FlatMap {
                        input: Box::new(child),
                        function: function.clone(),
                        schema: schema.clone(),
                    },
                    inputs,
                    p,
                )
            }
            PlanNode::Limit { input, n } if matches!(input.as_ref(), PlanNode::Sort { .. }) => {
                let PlanNode::Sort {
                    input: sorted,
                    order,
                    limit,
                } = input.as_ref()
                else {
                    unreachable!("matched above");
                };
                let top_k = PlanNode::Sort {
                    input: sorted.clone(),
                    order: order.clone(),
                    limit: Some(limit.map_or(*n, |m| m.min(*n))),
                };
                return self.build(&top_k);
            }
            PlanNode::Limit { input, n } => {
                let (child, inputs, p) = self.build(input)?;
                let local = PlanNode::Limit {
                    input: Box::new(child),
                    n: *n,
                };
                if p.count() == 1 {
                    (local, inputs, p)
                } else {
                    // Each task keeps at most n rows; one task takes n of all of those.
                    let (read, inputs, p) = self.shuffle((local, inputs, p), vec![], 1)?;
                    (
                        PlanNode::Limit {
                            input: Box::new(read),
                            n: *n,
                        },
                        inputs,
                        p,
                    )
                }
            }
            PlanNode::Repartition {
                input,
                partitions,
                keys,
            } => {
                let built = self.build(input)?;
                self.shuffle(built, keys.clone(), *partitions)?
            }
            PlanNode::Explode { input, column } => {
                let (child, inputs, p) = self.build(input)?;
                (
                    PlanNode::Explode {
                        input: Box::new(child),
                        column: column.clone(),
                    },
                    inputs,
                    p,
                )
            }
            PlanNode::Aggregate {
                input,
                keys,
                aggregates,
                mode,
            } => {
                if *mode != AggregateMode::Single {
                    return Err(PlanError::InvalidPlan(
                        "a submitted plan's aggregations must be in single mode".into(),
                    ));
                }
                let (child, inputs, p) = self.build(input)?;
                let partial = PlanNode::Aggregate {
                    input: Box::new(child),
                    keys: keys.clone(),
                    aggregates: aggregates.clone(),
                    mode: AggregateMode::Partial,
                };
                let key_columns: Vec<Expr> =
                    keys.iter().map(|k| Expr::Column(k.output_name())).collect();
                let partitions = if keys.is_empty() {
                    1
                } else {
                    self.shuffle_partitions
                };
                let (read, inputs, p) =
                    self.shuffle((partial, inputs, p), key_columns.clone(), partitions)?;
                let fin = PlanNode::Aggregate {
                    input: Box::new(read),
                    keys: key_columns,
                    aggregates: aggregates.clone(),
                    mode: AggregateMode::Final,
                };
                (fin, inputs, p)
            }
        })
    }

    /// The input splits of a scan: byte ranges of text files, row groups of Parquet files,
    /// whole CSV files. Always at least one (possibly empty) split. The sizes and row group
    /// counts come from the client: the count is bounded before any split is made.
    fn splits(&self, scan: &ScanNode) -> Result<Vec<Vec<FileSplit>>, PlanError> {
        let whole = |path: &str, end: u64| FileSplit {
            path: path.to_string(),
            start: 0,
            end,
            row_groups: vec![],
        };
        let target = scan
            .total_bytes()
            .div_ceil(u64::from(self.total_slots) * SPLITS_PER_SLOT)
            .clamp(MIN_SPLIT_BYTES, MAX_SPLIT_BYTES);
        let count = split_count(scan, target);
        check_split_count(scan, count, self.max_tasks_per_stage)?;
        let mut out = Vec::with_capacity(count as usize);
        match scan.format {
            SourceFormat::Text => {
                for f in &scan.files {
                    let mut start = 0;
                    while start < f.size {
                        let end = start.saturating_add(target).min(f.size);
                        out.push(vec![FileSplit {
                            path: f.path.clone(),
                            start,
                            end,
                            row_groups: vec![],
                        }]);
                        start = end;
                    }
                }
            }
            SourceFormat::Parquet => {
                for f in &scan.files {
                    for g in 0..f.row_groups {
                        out.push(vec![FileSplit {
                            row_groups: vec![g],
                            ..whole(&f.path, f.size)
                        }]);
                    }
                }
            }
            SourceFormat::Csv => {
                out.extend(scan.files.iter().map(|f| vec![whole(&f.path, f.size)]));
            }
        }
        if out.is_empty() {
            out.push(vec![]);
        }
        Ok(out)
    }
}

/// How many splits `scan` makes with text splits of `target` bytes (saturating: the sizes and
/// row group counts came from a client).
fn split_count(scan: &ScanNode, target: u64) -> u64 {
    match scan.format {
        SourceFormat::Text => scan
            .files
            .iter()
            .fold(0u64, |n, f| n.saturating_add(f.size.div_ceil(target))),
        SourceFormat::Parquet => scan
            .files
            .iter()
            .fold(0u64, |n, f| n.saturating_add(u64::from(f.row_groups))),
        SourceFormat::Csv => scan.files.len() as u64,
    }
}

fn check_split_count(scan: &ScanNode, count: u64, max_tasks: u32) -> Result<(), PlanError> {
    quiver_plan::Limits::check(
        format!(
            "the number of input splits (tasks) of a scan of {} files",
            scan.files.len()
        ),
        count,
        max_tasks,
        "coordinator flag --max-tasks-per-stage",
    )
}

/// The fewest tasks the stage that `node` ends in can have, whatever the cluster: scans at
/// the largest split size, a union the sum of its inputs, an exchange at least one.
fn min_stage_tasks(node: &PlanNode) -> u64 {
    match node {
        PlanNode::Scan(scan) => split_count(scan, MAX_SPLIT_BYTES).max(1),
        PlanNode::Union { inputs, .. } => inputs
            .iter()
            .fold(0u64, |n, i| n.saturating_add(min_stage_tasks(i))),
        PlanNode::Filter { input, .. }
        | PlanNode::Project { input, .. }
        | PlanNode::Explode { input, .. }
        | PlanNode::MapBatches { input, .. }
        | PlanNode::FlatMap { input, .. } => min_stage_tasks(input),
        _ => 1,
    }
}

/// Checks, when a job is submitted, that no scan or union of `plan` can need more than
/// `max_tasks` tasks in one stage, however many slots the cluster has.
pub fn check_stage_sizes(plan: &PlanNode, max_tasks: u32) -> Result<(), PlanError> {
    for node in plan.nodes() {
        match node {
            PlanNode::Scan(scan) => {
                check_split_count(scan, split_count(scan, MAX_SPLIT_BYTES), max_tasks)?
            }
            PlanNode::Union { inputs, .. } => quiver_plan::Limits::check(
                format!("the tasks of a union of {} inputs", inputs.len()),
                min_stage_tasks(node),
                max_tasks,
                "coordinator flag --max-tasks-per-stage",
            )?,
            _ => {}
        }
    }
    Ok(())
}

/// A rough size of what `node` produces: the bytes of the files it reads. Used only to choose
/// between broadcasting and shuffling a join's side, where an overestimate is harmless.
pub fn estimated_bytes(node: &PlanNode) -> u64 {
    match node {
        PlanNode::Scan(scan) => scan.total_bytes(),
        other => other
            .children()
            .into_iter()
            .map(estimated_bytes)
            .fold(0, u64::saturating_add),
    }
}
