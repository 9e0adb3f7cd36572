//! Cuts a logical plan into stages at every exchange and decides each stage's partitions.
//!
//! A stage is a pipeline of narrow operators from a source (a scan or a shuffle read) to an
//! output (a hash shuffle, or the job's sink). An aggregation becomes a partial aggregation at
//! the end of one stage, a hash shuffle on its keys, and a final aggregation at the start of
//! the next. A scan stage has one partition per input split; a stage after a shuffle has the
//! shuffle's partition count.

use quiver_plan::{
    AggregateMode, Expr, FileSplit, PlanError, PlanNode, ScanNode, Sink, SourceFormat, StageId,
    StageOutput,
};

/// Smallest and largest byte range a text split covers.
const MIN_SPLIT_BYTES: u64 = 4 << 20;
const MAX_SPLIT_BYTES: u64 = 128 << 20;
/// Aim for this many splits per slot, so that faster workers can take more of them.
const SPLITS_PER_SLOT: u64 = 4;

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

enum Partitioning {
    Splits(Vec<Vec<FileSplit>>),
    Shuffle(u32),
}

struct Planner {
    stages: Vec<PlannedStage>,
    shuffle_partitions: u32,
    total_slots: u32,
}

/// Plans the stages of `plan` writing into `sink`. `shuffle_partitions` is the reduce-side
/// width; `total_slots` sizes the input splits.
pub fn plan_stages(
    plan: &PlanNode,
    sink: &Sink,
    shuffle_partitions: u32,
    total_slots: u32,
) -> Result<Vec<PlannedStage>, PlanError> {
    plan.schema()?;
    let mut planner = Planner {
        stages: Vec::new(),
        shuffle_partitions: shuffle_partitions.max(1),
        total_slots: total_slots.max(1),
    };
    let (root, inputs, partitioning) = planner.build(plan)?;
    planner.add_stage(root, StageOutput::from(sink.clone()), inputs, partitioning);
    Ok(planner.stages)
}

impl Planner {
    fn add_stage(
        &mut self,
        plan: PlanNode,
        output: StageOutput,
        inputs: Vec<StageId>,
        partitioning: Partitioning,
    ) -> StageId {
        let id = StageId(self.stages.len() as u32);
        let (partitions, splits) = match partitioning {
            Partitioning::Splits(s) => (s.len() as u32, s),
            Partitioning::Shuffle(n) => (n, vec![]),
        };
        self.stages.push(PlannedStage {
            id,
            plan,
            output,
            inputs,
            partitions,
            splits,
        });
        id
    }

    fn build(
        &mut self,
        node: &PlanNode,
    ) -> Result<(PlanNode, Vec<StageId>, Partitioning), PlanError> {
        Ok(match node {
            PlanNode::Scan(scan) => (
                node.clone(),
                vec![],
                Partitioning::Splits(self.splits(scan)),
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
            PlanNode::Limit { input, n } => {
                let (child, inputs, p) = self.build(input)?;
                let local = PlanNode::Limit {
                    input: Box::new(child),
                    n: *n,
                };
                let one_partition = match &p {
                    Partitioning::Shuffle(partitions) => *partitions == 1,
                    Partitioning::Splits(splits) => splits.len() == 1,
                };
                if one_partition {
                    (local, inputs, p)
                } else {
                    // Each task keeps at most n rows; one task takes n of all of those.
                    let schema = local.schema()?;
                    let map_stage = self.add_stage(
                        local,
                        StageOutput::HashShuffle {
                            keys: vec![],
                            partitions: 1,
                        },
                        inputs,
                        p,
                    );
                    let read = PlanNode::ShuffleRead {
                        stage: map_stage,
                        schema,
                    };
                    (
                        PlanNode::Limit {
                            input: Box::new(read),
                            n: *n,
                        },
                        vec![map_stage],
                        Partitioning::Shuffle(1),
                    )
                }
            }
            PlanNode::Repartition {
                input,
                partitions,
                keys,
            } => {
                let (child, inputs, p) = self.build(input)?;
                let schema = child.schema()?;
                let map_stage = self.add_stage(
                    child,
                    StageOutput::HashShuffle {
                        keys: keys.clone(),
                        partitions: *partitions,
                    },
                    inputs,
                    p,
                );
                (
                    PlanNode::ShuffleRead {
                        stage: map_stage,
                        schema,
                    },
                    vec![map_stage],
                    Partitioning::Shuffle(*partitions),
                )
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
                let partial_schema = partial.schema()?;
                let key_columns: Vec<Expr> =
                    keys.iter().map(|k| Expr::Column(k.output_name())).collect();
                let partitions = if keys.is_empty() {
                    1
                } else {
                    self.shuffle_partitions
                };
                let map_stage = self.add_stage(
                    partial,
                    StageOutput::HashShuffle {
                        keys: key_columns.clone(),
                        partitions,
                    },
                    inputs,
                    p,
                );
                let fin = PlanNode::Aggregate {
                    input: Box::new(PlanNode::ShuffleRead {
                        stage: map_stage,
                        schema: partial_schema,
                    }),
                    keys: key_columns,
                    aggregates: aggregates.clone(),
                    mode: AggregateMode::Final,
                };
                (fin, vec![map_stage], Partitioning::Shuffle(partitions))
            }
        })
    }

    /// The input splits of a scan: byte ranges of text files, row groups of Parquet files,
    /// whole CSV files. Always at least one (possibly empty) split.
    fn splits(&self, scan: &ScanNode) -> Vec<Vec<FileSplit>> {
        let whole = |path: &str, end: u64| FileSplit {
            path: path.to_string(),
            start: 0,
            end,
            row_groups: vec![],
        };
        let mut out = Vec::new();
        match scan.format {
            SourceFormat::Text => {
                let target = scan
                    .total_bytes()
                    .div_ceil(u64::from(self.total_slots) * SPLITS_PER_SLOT)
                    .clamp(MIN_SPLIT_BYTES, MAX_SPLIT_BYTES);
                for f in &scan.files {
                    let mut start = 0;
                    while start < f.size {
                        let end = (start + target).min(f.size);
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
        out
    }
}
