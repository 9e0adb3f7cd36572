//! Cuts a logical plan into stages at every exchange and decides each stage's partitions.
//!
//! A stage is a pipeline of narrow operators from its sources (scans, shuffle reads,
//! broadcast reads) to an output (a shuffle, or the job's sink). A scan stage has one
//! partition per input split; a stage after a shuffle has the shuffle's partition count.
//! The exchanges:
//! - an aggregation becomes a partial aggregation at the end of one stage, a hash shuffle on
//!   its keys, and a final aggregation at the start of the next (`count_distinct` first
//!   becomes two aggregations: by keys and value, then by keys); a filter right below the
//!   partial aggregation is fused into it (its `filter`), which the stage's description shows;
//! - a join either shuffles both sides by their keys into a join stage, or (when the right
//!   side is small and the join type allows it) writes the right side whole and has every
//!   task of the left side read all of it;
//! - a global sort samples its keys in one stage, range-partitions by boundaries taken from
//!   that sample in the next, and sorts each range in the last; a sort with a limit (top-k)
//!   keeps the first k rows of each task and merges them in one task;
//! - a union runs each input's tasks side by side in one stage.
//!
//! Steps that do not exchange data stay in their input's stage, rewritten with
//! [`PlanNode::map_children`]; where a stage reads another, a [`StageRead`] stands.

use quiver_plan::aggregate::count_of;
use quiver_plan::expr::col;
use quiver_plan::join::{coerced_keys, join_key_types};
use quiver_plan::{
    AggregateExpr, AggregateFunction, AggregateMode, Expr, FileSplit, JoinStrategy, JoinType,
    PlanError, PlanNode, ScanNode, Sink, SortExpr, SourceFormat, StageId, StageOutput, StageRead,
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
    /// It reads a repartition into as many partitions as the user asked for: adaptive
    /// execution must not coalesce them.
    pub user_partitions: bool,
    /// Its pipeline joins two shuffled sides that adaptive execution may turn into a
    /// broadcast join once the right side is measured.
    pub join_candidate: Option<JoinCandidate>,
}

/// A join shuffled on both sides whose right side is broadcast instead if it turns out
/// small: its left side is a stage that reads files only (and waits for the decision), so
/// that the join stage can take over its splits and read the right side whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinCandidate {
    /// The stage that writes the left side's shuffle.
    pub left: StageId,
    /// The stage that writes the right side's shuffle.
    pub right: StageId,
    /// The bytes of the files the left side reads.
    pub left_file_bytes: u64,
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
struct Built {
    plan: PlanNode,
    inputs: Vec<StageId>,
    partitioning: Partitioning,
    /// Its partitions are the ones a repartition asked for: adaptive execution keeps them.
    user_partitions: bool,
    /// A shuffled join in its pipeline that adaptive execution may turn into a broadcast.
    join_candidate: Option<JoinCandidate>,
}

impl Built {
    /// The same stage, with `wrap` applied on top of its pipeline.
    fn map(self, wrap: impl FnOnce(PlanNode) -> PlanNode) -> Built {
        Built {
            plan: wrap(self.plan),
            ..self
        }
    }
}

/// A join of a submitted plan, taken apart.
struct JoinParts {
    left: PlanNode,
    right: PlanNode,
    left_keys: Vec<Expr>,
    right_keys: Vec<Expr>,
    join_type: JoinType,
    strategy: JoinStrategy,
}

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
    let plan = quiver_plan::column_pruning::prune_scan_columns(plan);
    let mut planner = Planner {
        stages: Vec::new(),
        shuffle_partitions: options.shuffle_partitions.max(1),
        total_slots: options.total_slots.max(1),
        broadcast_threshold: options.broadcast_threshold,
        max_tasks_per_stage: options.max_tasks_per_stage.max(1),
        max_tasks_per_job: options.max_tasks_per_job.max(1),
        tasks: 0,
    };
    let root = planner.build(plan)?;
    planner.add_stage(root, StageOutput::from(sink.clone()))?;
    Ok(planner.stages)
}

impl Planner {
    /// Ends `built` as a stage writing to `output`.
    fn add_stage(&mut self, built: Built, output: StageOutput) -> Result<StageId, PlanError> {
        let id = StageId(self.stages.len() as u32);
        let (partitions, splits) = match built.partitioning {
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
            plan: built.plan,
            output,
            inputs: built.inputs,
            partitions,
            splits,
            user_partitions: built.user_partitions,
            join_candidate: built.join_candidate,
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
        let schema = built.plan.schema()?;
        let stage = self.add_stage(built, StageOutput::HashShuffle { keys, partitions })?;
        Ok(Built {
            plan: PlanNode::StageRead(StageRead::Shuffle { stage, schema }),
            inputs: vec![stage],
            partitioning: Partitioning::Shuffle(partitions),
            user_partitions: false,
            join_candidate: None,
        })
    }

    fn join(&mut self, join: JoinParts) -> Result<Built, PlanError> {
        let JoinParts {
            left,
            right,
            left_keys,
            right_keys,
            join_type,
            strategy,
        } = join;
        let (left_schema, right_schema) = (left.schema()?, right.schema()?);
        let types = join_key_types(&left_schema, &right_schema, &left_keys, &right_keys)?;
        let broadcast = match strategy {
            JoinStrategy::Broadcast => true,
            JoinStrategy::Shuffle => false,
            JoinStrategy::Auto => {
                !join_type.keeps_unmatched_right()
                    && self
                        .broadcast_threshold
                        .is_some_and(|t| estimated_bytes(&right) <= t)
            }
        };
        let left_plan_before = left.clone();
        let left_built = self.build(left)?;
        let right_built = self.build(right)?;
        let (left_built, right_plan, right_inputs) = if broadcast {
            // The right side's tasks all write one bucket; every left task reads all of them.
            let schema = right_built.plan.schema()?;
            let stage = self.add_stage(
                right_built,
                StageOutput::HashShuffle {
                    keys: vec![],
                    partitions: 1,
                },
            )?;
            let read = PlanNode::StageRead(StageRead::Broadcast {
                stage,
                schema,
                buckets: 1,
            });
            (left_built, read, vec![stage])
        } else {
            // Both sides hash the same types, so equal keys meet in the same partition.
            let n = self.shuffle_partitions;
            let left_hash = coerced_keys(&left_keys, &left_schema, &types)?;
            let right_hash = coerced_keys(&right_keys, &right_schema, &types)?;
            // Adaptive execution may broadcast the right side after all, once measured: left
            // to the planner (not forced either way), allowed by the join type, with a left
            // side that reads only files (the join stage takes over its splits).
            let left_file_bytes = estimated_bytes(&left_plan_before);
            // More than one partition: a one-partition join stage may be where a limit or a
            // top-k merges, and must stay one task.
            let adaptive = strategy == JoinStrategy::Auto
                && n > 1
                && !join_type.keeps_unmatched_right()
                && self.broadcast_threshold.is_some()
                && left_built.inputs.is_empty()
                && matches!(left_built.partitioning, Partitioning::Splits(_));
            let mut l = self.shuffle(left_built, left_hash, n)?;
            let r = self.shuffle(right_built, right_hash, n)?;
            if adaptive {
                l.join_candidate = Some(JoinCandidate {
                    left: l.inputs[0],
                    right: r.inputs[0],
                    left_file_bytes,
                });
            }
            (l, r.plan, r.inputs)
        };
        let mut built = left_built.map(|left| PlanNode::Join {
            left: Box::new(left),
            right: Box::new(right_plan),
            left_keys,
            right_keys,
            join_type,
            strategy,
        });
        built.inputs.extend(right_inputs);
        Ok(built)
    }

    fn sort(
        &mut self,
        input: PlanNode,
        order: Vec<SortExpr>,
        limit: Option<u64>,
    ) -> Result<Built, PlanError> {
        let child = self.build(input)?;
        if let Some(k) = limit {
            // Top-k: each task keeps its first k rows, one task merges them.
            let sort = |input: PlanNode| PlanNode::Sort {
                input: Box::new(input),
                order: order.clone(),
                limit: Some(k),
            };
            let local = child.map(sort);
            if local.partitioning.count() == 1 {
                return Ok(local);
            }
            return Ok(self.shuffle(local, vec![], 1)?.map(sort));
        }
        let n = self.shuffle_partitions;
        let schema = child.plan.schema()?;
        let tasks = child.partitioning.count();
        // Stage 1: a deterministic sample of the sort keys of every input task.
        let keys = order
            .iter()
            .enumerate()
            .map(|(i, o)| o.expr.clone().alias(format!("__sort_key_{i}")))
            .collect();
        let rows = (SAMPLE_ROWS_PER_PARTITION * u64::from(n)).div_ceil(u64::from(tasks.max(1)));
        let sample = Built {
            plan: PlanNode::Sample {
                input: Box::new(PlanNode::Project {
                    input: Box::new(child.plan.clone()),
                    exprs: keys,
                }),
                rows: rows.clamp(16, 100_000) as u32,
            },
            inputs: child.inputs.clone(),
            partitioning: child.partitioning.clone(),
            user_partitions: child.user_partitions,
            join_candidate: None,
        };
        let sample_stage = self.add_stage(
            sample,
            StageOutput::HashShuffle {
                keys: vec![],
                partitions: 1,
            },
        )?;
        // Stage 2: the input again, range-partitioned by boundaries from the sample.
        let mut range = child;
        range.inputs.push(sample_stage);
        let range_stage = self.add_stage(
            range,
            StageOutput::RangeShuffle {
                order: order.clone(),
                partitions: n,
                sample: sample_stage,
            },
        )?;
        // Stage 3 (the caller's): each range sorted.
        Ok(Built {
            plan: PlanNode::Sort {
                input: Box::new(PlanNode::StageRead(StageRead::Shuffle {
                    stage: range_stage,
                    schema,
                })),
                order,
                limit: None,
            },
            inputs: vec![range_stage],
            partitioning: Partitioning::Shuffle(n),
            user_partitions: false,
            join_candidate: None,
        })
    }

    fn union(&mut self, inputs: Vec<PlanNode>) -> Result<Built, PlanError> {
        let count = inputs.len();
        let mut plans = Vec::new();
        let mut stages = Vec::new();
        let mut counts = Vec::new();
        let mut splits = Vec::new();
        for input in inputs {
            let built = self.build(input)?;
            plans.push(built.plan);
            stages.extend(built.inputs);
            counts.push(built.partitioning.count());
            // All inputs run as one stage: bound their tasks together, as they are added.
            quiver_plan::Limits::check(
                format!("the tasks of a union of {count} inputs"),
                counts.iter().map(|&c| u64::from(c)).sum(),
                self.max_tasks_per_stage,
                "coordinator flag --max-tasks-per-stage",
            )?;
            splits.extend(built.partitioning.into_splits());
        }
        Ok(Built {
            plan: PlanNode::Union {
                inputs: plans,
                partitions: counts,
            },
            inputs: stages,
            partitioning: Partitioning::Splits(splits),
            user_partitions: false,
            join_candidate: None,
        })
    }

    fn limit(&mut self, input: PlanNode, n: u64) -> Result<Built, PlanError> {
        let limit = |input: PlanNode| PlanNode::Limit {
            input: Box::new(input),
            n,
        };
        let local = self.build(input)?.map(limit);
        if local.partitioning.count() == 1 {
            return Ok(local);
        }
        // Each task keeps at most n rows; one task takes n of all of those.
        Ok(self.shuffle(local, vec![], 1)?.map(limit))
    }

    /// A partial aggregation in the input's stage, a hash shuffle on the keys, and a final
    /// aggregation after it. A filter right below the partial step is fused into it: the
    /// aggregation skips the rows the predicate drops instead of a filter copying the rest
    /// out (TPC-H Q1 keeps 98% of its rows, and copying them was a tenth of its time).
    fn aggregate(
        &mut self,
        input: PlanNode,
        keys: Vec<Expr>,
        aggregates: Vec<AggregateExpr>,
    ) -> Result<Built, PlanError> {
        let child = self.build(input)?;
        let key_columns: Vec<Expr> = keys.iter().map(|k| Expr::Column(k.output_name())).collect();
        let partitions = if keys.is_empty() {
            1
        } else {
            self.shuffle_partitions
        };
        let partial = child.map(|child| {
            let (input, filter) = match child {
                PlanNode::Filter { input, predicate } if fusable(&input, &keys, &aggregates) => {
                    (input, Some(predicate))
                }
                other => (Box::new(other), None),
            };
            PlanNode::Aggregate {
                input,
                keys,
                aggregates: aggregates.clone(),
                mode: AggregateMode::Partial,
                filter,
            }
        });
        let read = self.shuffle(partial, key_columns.clone(), partitions)?;
        Ok(read.map(|read| PlanNode::Aggregate {
            input: Box::new(read),
            keys: key_columns,
            aggregates,
            mode: AggregateMode::Final,
            filter: None,
        }))
    }

    /// `count_distinct` as two aggregations: distinct (keys, value) pairs first, then a count
    /// of values per key.
    fn count_distinct(
        input: PlanNode,
        keys: Vec<Expr>,
        aggregates: Vec<AggregateExpr>,
    ) -> PlanNode {
        let value = aggregates
            .first()
            .and_then(|a| a.input.clone())
            .unwrap_or(Expr::Literal(quiver_plan::ScalarValue::Null));
        let outer_keys = keys.iter().map(|k| col(k.output_name())).collect();
        let mut inner_keys = keys;
        inner_keys.push(value.alias(DISTINCT_VALUE_COLUMN));
        let inner = PlanNode::Aggregate {
            input: Box::new(input),
            keys: inner_keys,
            aggregates: vec![],
            mode: AggregateMode::Single,
            filter: None,
        };
        PlanNode::Aggregate {
            input: Box::new(inner),
            keys: outer_keys,
            aggregates: aggregates
                .iter()
                .map(|a| count_of(col(DISTINCT_VALUE_COLUMN)).alias(a.name.clone()))
                .collect(),
            mode: AggregateMode::Single,
            filter: None,
        }
    }

    /// The stage pipeline of `node`, cutting stages at its exchanges.
    fn build(&mut self, node: PlanNode) -> Result<Built, PlanError> {
        match node {
            PlanNode::Scan(scan) => {
                let splits = self.splits(&scan)?;
                Ok(Built {
                    plan: PlanNode::Scan(scan),
                    inputs: vec![],
                    partitioning: Partitioning::Splits(splits),
                    user_partitions: false,
                    join_candidate: None,
                })
            }
            PlanNode::Join {
                left,
                right,
                left_keys,
                right_keys,
                join_type,
                strategy,
            } => self.join(JoinParts {
                left: *left,
                right: *right,
                left_keys,
                right_keys,
                join_type,
                strategy,
            }),
            PlanNode::Sort {
                input,
                order,
                limit,
            } => self.sort(*input, order, limit),
            PlanNode::Limit { input, n } => match *input {
                // A limit over a sort is a top-k.
                PlanNode::Sort {
                    input: sorted,
                    order,
                    limit,
                } => self.sort(*sorted, order, Some(limit.map_or(n, |m| m.min(n)))),
                input => self.limit(input, n),
            },
            PlanNode::Union { inputs, .. } => self.union(inputs),
            PlanNode::Repartition {
                input,
                partitions,
                keys,
            } => {
                let built = self.build(*input)?;
                let read = self.shuffle(built, keys, partitions)?;
                Ok(Built {
                    user_partitions: true,
                    ..read
                })
            }
            PlanNode::Aggregate {
                input,
                keys,
                aggregates,
                mode: AggregateMode::Single,
                filter: None,
            } => {
                if aggregates
                    .iter()
                    .any(|a| a.function == AggregateFunction::CountDistinct)
                {
                    self.build(Self::count_distinct(*input, keys, aggregates))
                } else {
                    self.aggregate(*input, keys, aggregates)
                }
            }
            PlanNode::Aggregate {
                mode: AggregateMode::Single,
                ..
            } => Err(PlanError::InvalidPlan(
                "a submitted plan's aggregations cannot hold a fused filter".into(),
            )),
            PlanNode::Aggregate { .. } => Err(PlanError::InvalidPlan(
                "a submitted plan's aggregations must be in single mode".into(),
            )),
            PlanNode::StageRead(StageRead::Shuffle { .. }) => Err(PlanError::InvalidPlan(
                "a submitted plan cannot contain a shuffle read".into(),
            )),
            PlanNode::StageRead(StageRead::Broadcast { .. }) | PlanNode::Sample { .. } => {
                Err(PlanError::InvalidPlan(format!(
                    "a submitted plan cannot contain a {}",
                    node.label()
                )))
            }
            // Narrow steps stay in their input's stage.
            PlanNode::Filter { .. }
            | PlanNode::Project { .. }
            | PlanNode::Explode { .. }
            | PlanNode::MapBatches { .. }
            | PlanNode::FlatMap { .. } => {
                let mut below = None;
                let plan = node.map_children(|input| {
                    let built = self.build(input)?;
                    below = Some((
                        built.inputs,
                        built.partitioning,
                        built.user_partitions,
                        built.join_candidate,
                    ));
                    Ok::<_, PlanError>(built.plan)
                })?;
                let (inputs, partitioning, user_partitions, join_candidate) =
                    below.ok_or_else(|| {
                        PlanError::InvalidPlan(format!("{} has no input", plan.label()))
                    })?;
                Ok(Built {
                    plan,
                    inputs,
                    partitioning,
                    user_partitions,
                    join_candidate,
                })
            }
        }
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
        // A union's inputs side by side; a narrow step's one input.
        PlanNode::Union { .. }
        | PlanNode::Filter { .. }
        | PlanNode::Project { .. }
        | PlanNode::Explode { .. }
        | PlanNode::MapBatches { .. }
        | PlanNode::FlatMap { .. } => node
            .children()
            .into_iter()
            .fold(0u64, |n, i| n.saturating_add(min_stage_tasks(i))),
        // An exchange (or what reads one) starts a stage of its own: one task at least.
        PlanNode::Aggregate { .. }
        | PlanNode::StageRead(_)
        | PlanNode::Limit { .. }
        | PlanNode::Repartition { .. }
        | PlanNode::Join { .. }
        | PlanNode::Sort { .. }
        | PlanNode::Sample { .. } => 1,
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

/// Whether a filter right below a partial aggregation may be fused into it: only when the
/// aggregation's keys and inputs cannot fail on any row, because fused they are evaluated on
/// the rows the filter drops too (`filter(x != 0)` guarding `sum(y % x)` must stay a filter).
fn fusable(filter_input: &PlanNode, keys: &[Expr], aggregates: &[AggregateExpr]) -> bool {
    let Ok(schema) = filter_input.schema() else {
        return false;
    };
    keys.iter().all(|k| k.cannot_fail(&schema))
        && aggregates
            .iter()
            .filter_map(|a| a.input.as_ref())
            .all(|e| e.cannot_fail(&schema))
}
