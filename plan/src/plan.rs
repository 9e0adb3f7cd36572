//! The plan tree, and the one way passes walk and rewrite it.
//!
//! A [`PlanNode`] tree is either a *logical plan* (what a user asked for, as the SDK submits
//! it) or a *stage plan* (what one stage of a job runs, as the coordinator's planner makes
//! it). Most nodes mean the same in both. A few exist only in stage plans, and a submitted
//! plan holding one is refused ([`PlanNode::check_submittable`]):
//! - [`PlanNode::StageRead`] — reading an upstream stage's output ([`StageRead`]);
//! - [`PlanNode::Sample`] — a sort's key sample;
//! - [`PlanNode::Aggregate`] in [`AggregateMode::Partial`] or [`AggregateMode::Final`], and
//!   its pre-aggregation `filter`;
//! - a [`PlanNode::Union`] with task counts.
//!
//! Passes walk a tree with [`PlanNode::children`] / [`PlanNode::nodes`] and rewrite it with
//! [`PlanNode::map_children`], which keeps every field but the inputs.
//!
//! # Layout
//! - this file — the node types, walking and rewriting, what a submitted plan may hold.
//! - [`schema`](self::schema) — schema inference with validation ([`PlanNode::schema`]).
//! - [`describe`](self::describe) — one-line labels and the stage descriptions that drivers
//!   see ([`PlanNode::label`], [`PlanNode::describe`]).

mod describe;
mod schema;

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::aggregate::AggregateExpr;
use crate::error::{PlanError, Result};
use crate::expr::Expr;
use crate::ids::StageId;
use crate::join::{JoinStrategy, JoinType};
use crate::sort::SortExpr;

/// The file format of a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceFormat {
    /// UTF-8 text, one row per line, in a column named `line`.
    Text,
    Parquet,
    Csv,
}

/// One input file, as listed when the dataset was built.
#[derive(Clone, Debug, PartialEq)]
pub struct InputFile {
    pub path: String,
    pub size: u64,
    /// Parquet only: how many row groups the file has (0 for other formats).
    pub row_groups: u32,
}

/// CSV reading options.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvOptions {
    pub has_header: bool,
    pub delimiter: u8,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            has_header: true,
            delimiter: b',',
        }
    }
}

/// A source: a list of files of one format and the schema they were found to have.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanNode {
    pub format: SourceFormat,
    pub files: Vec<InputFile>,
    pub schema: SchemaRef,
    pub csv: CsvOptions,
}

impl ScanNode {
    /// The schema of a text source: one non-null Utf8 column, `line`.
    pub fn text_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("line", DataType::Utf8, false)]))
    }

    /// The schema of a text source with positions: `line`, the file's `path` (dictionary
    /// encoded: one copy per batch) and the byte `offset` at which the line starts.
    pub fn text_schema_with_positions() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("line", DataType::Utf8, false),
            Field::new(
                "path",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                false,
            ),
            Field::new("offset", DataType::Int64, false),
        ]))
    }

    /// Total bytes of all input files.
    pub fn total_bytes(&self) -> u64 {
        self.files
            .iter()
            .fold(0, |sum, f| sum.saturating_add(f.size))
    }
}

/// Whether an aggregation node is the whole aggregation or one of its two halves.
///
/// A submitted plan holds only [`AggregateMode::Single`]; the planner splits each into a
/// partial and a final step, which exist only in stage plans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateMode {
    /// As the user wrote it; only valid in a logical plan.
    Single,
    /// Stage plans only. Map side: group keys + partial states.
    Partial,
    /// Stage plans only. Reduce side: merges partial states into final values.
    Final,
}

/// A read of an upstream stage's output. Stage plans only: the planner puts one where it cut
/// the plan at an exchange, and it names a stage of the job being run.
#[derive(Clone, Debug, PartialEq)]
pub enum StageRead {
    /// This task's bucket (the one numbered as the task's partition) of every map output of
    /// `stage`.
    Shuffle { stage: StageId, schema: SchemaRef },
    /// Every map output of `stage`, whole (its `buckets` buckets, one after the other): the
    /// broadcast side of a join. One bucket for a side written whole; a hash shuffle's
    /// partitions for a side adaptive execution chose to broadcast once it measured it.
    Broadcast {
        stage: StageId,
        schema: SchemaRef,
        buckets: u32,
    },
}

impl StageRead {
    /// The stage read from.
    pub fn stage(&self) -> StageId {
        match self {
            StageRead::Shuffle { stage, .. } | StageRead::Broadcast { stage, .. } => *stage,
        }
    }

    /// The schema of the rows read (that stage's output schema).
    pub fn schema(&self) -> &SchemaRef {
        match self {
            StageRead::Shuffle { schema, .. } | StageRead::Broadcast { schema, .. } => schema,
        }
    }
}

/// A node of a plan tree.
#[derive(Clone, Debug, PartialEq)]
pub enum PlanNode {
    Scan(ScanNode),
    Filter {
        input: Box<PlanNode>,
        predicate: Expr,
    },
    Project {
        input: Box<PlanNode>,
        exprs: Vec<Expr>,
    },
    /// One output row per element of the list column `column`; other columns are repeated.
    /// Rows whose list is null or empty produce no row.
    Explode {
        input: Box<PlanNode>,
        column: String,
    },
    /// Groups by `keys` and computes `aggregates` (see [`AggregateMode`] for the modes).
    Aggregate {
        input: Box<PlanNode>,
        keys: Vec<Expr>,
        aggregates: Vec<AggregateExpr>,
        mode: AggregateMode,
        /// Stage plans only, partial mode only: rows for which this predicate is not true are
        /// skipped before they are aggregated. The planner fuses a filter right below a partial
        /// aggregation into it, so that the rows it keeps are not copied out first.
        filter: Option<Expr>,
    },
    /// Stage plans only: an upstream stage's output.
    StageRead(StageRead),
    /// A user batch function: each input batch becomes one output batch of `schema`.
    MapBatches {
        input: Box<PlanNode>,
        function: String,
        schema: SchemaRef,
    },
    /// A user flat-map function: each input row becomes zero or more rows of `schema`.
    FlatMap {
        input: Box<PlanNode>,
        function: String,
        schema: SchemaRef,
    },
    /// At most `n` rows (which ones is not specified without a sort).
    Limit {
        input: Box<PlanNode>,
        n: u64,
    },
    /// Redistributes rows into `partitions` partitions: by hash of `keys`, or round-robin when
    /// `keys` is empty.
    Repartition {
        input: Box<PlanNode>,
        partitions: u32,
        keys: Vec<Expr>,
    },
    /// An equality join on `left_keys[i] = right_keys[i]` (see [`crate::join`] for the output
    /// columns). In a stage, the right input is the build side of the hash table.
    Join {
        left: Box<PlanNode>,
        right: Box<PlanNode>,
        left_keys: Vec<Expr>,
        right_keys: Vec<Expr>,
        join_type: JoinType,
        strategy: JoinStrategy,
    },
    /// In a submitted plan, a global sort (of the first `limit` rows only, when set). In a
    /// stage, a sort of this task's rows.
    Sort {
        input: Box<PlanNode>,
        order: Vec<SortExpr>,
        limit: Option<u64>,
    },
    /// Stage plans only: a deterministic sample of at most `rows` rows of this task's input
    /// (sort planning).
    Sample {
        input: Box<PlanNode>,
        rows: u32,
    },
    /// The rows of every input, which must have the same column names and types. In a stage,
    /// the first `partitions[0]` tasks run `inputs[0]`, the next `partitions[1]` run
    /// `inputs[1]`, and so on; a submitted plan leaves `partitions` empty.
    Union {
        inputs: Vec<PlanNode>,
        partitions: Vec<u32>,
    },
}

/// Which input of a union the task of `partition` runs, and the partition it is of that
/// input: the first `partitions[0]` tasks run `inputs[0]`, the next `partitions[1]` run
/// `inputs[1]`, and so on. `None` for a partition beyond them all.
pub fn union_input<'a>(
    inputs: &'a [PlanNode],
    partitions: &[u32],
    partition: u32,
) -> Option<(&'a PlanNode, u32)> {
    // u64: partition counts come over the wire, and their sum must not wrap.
    let mut offset: u64 = 0;
    for (input, &count) in inputs.iter().zip(partitions) {
        let end = offset + u64::from(count);
        if u64::from(partition) < end {
            return Some((input, (u64::from(partition) - offset) as u32));
        }
        offset = end;
    }
    None
}

impl PlanNode {
    /// The map outputs the task of `partition` reads, as (stage, bucket): its own bucket of a
    /// shuffle, every bucket of a broadcast; inside a union, only those of the input the task
    /// runs.
    pub fn stage_reads(&self, partition: u32) -> Vec<(crate::StageId, u32)> {
        let mut out = Vec::new();
        self.collect_stage_reads(partition, &mut out);
        out
    }

    fn collect_stage_reads(&self, partition: u32, out: &mut Vec<(crate::StageId, u32)>) {
        match self {
            PlanNode::StageRead(StageRead::Shuffle { stage, .. }) => out.push((*stage, partition)),
            PlanNode::StageRead(StageRead::Broadcast { stage, buckets, .. }) => {
                out.extend((0..*buckets).map(|b| (*stage, b)))
            }
            PlanNode::Union { inputs, partitions } => {
                if let Some((input, local)) = union_input(inputs, partitions, partition) {
                    input.collect_stage_reads(local, out);
                }
            }
            other => {
                for child in other.children() {
                    child.collect_stage_reads(partition, out);
                }
            }
        }
    }

    /// The node's inputs, in order: none for sources, two for a join (left, right), any
    /// number for a union.
    pub fn children(&self) -> Vec<&PlanNode> {
        match self {
            PlanNode::Scan(_) | PlanNode::StageRead(_) => vec![],
            PlanNode::Filter { input, .. }
            | PlanNode::Project { input, .. }
            | PlanNode::Explode { input, .. }
            | PlanNode::Aggregate { input, .. }
            | PlanNode::MapBatches { input, .. }
            | PlanNode::FlatMap { input, .. }
            | PlanNode::Limit { input, .. }
            | PlanNode::Repartition { input, .. }
            | PlanNode::Sort { input, .. }
            | PlanNode::Sample { input, .. } => vec![input],
            PlanNode::Join { left, right, .. } => vec![left, right],
            PlanNode::Union { inputs, .. } => inputs.iter().collect(),
        }
    }

    /// The node's inputs, mutably, in the order of [`PlanNode::children`].
    fn children_mut(&mut self) -> Vec<&mut PlanNode> {
        match self {
            PlanNode::Scan(_) | PlanNode::StageRead(_) => vec![],
            PlanNode::Filter { input, .. }
            | PlanNode::Project { input, .. }
            | PlanNode::Explode { input, .. }
            | PlanNode::Aggregate { input, .. }
            | PlanNode::MapBatches { input, .. }
            | PlanNode::FlatMap { input, .. }
            | PlanNode::Limit { input, .. }
            | PlanNode::Repartition { input, .. }
            | PlanNode::Sort { input, .. }
            | PlanNode::Sample { input, .. } => vec![input],
            PlanNode::Join { left, right, .. } => vec![left, right],
            PlanNode::Union { inputs, .. } => inputs.iter_mut().collect(),
        }
    }

    /// This node with every input replaced by what `f` makes of it, every other field kept.
    /// `f` sees the inputs in the order of [`PlanNode::children`]; the first error it returns
    /// is returned. Passes rewrite trees with this rather than rebuilding nodes by hand.
    pub fn map_children<E>(
        mut self,
        mut f: impl FnMut(PlanNode) -> std::result::Result<PlanNode, E>,
    ) -> std::result::Result<PlanNode, E> {
        for child in self.children_mut() {
            // An empty union allocates nothing: a placeholder while `f` owns the child.
            let taken = std::mem::replace(
                child,
                PlanNode::Union {
                    inputs: Vec::new(),
                    partitions: Vec::new(),
                },
            );
            *child = f(taken)?;
        }
        Ok(self)
    }

    /// The expressions the node itself holds (not its inputs'): predicates, projections,
    /// keys, aggregate inputs, sort keys.
    pub fn exprs(&self) -> Vec<&Expr> {
        match self {
            PlanNode::Filter { predicate, .. } => vec![predicate],
            PlanNode::Project { exprs, .. } => exprs.iter().collect(),
            PlanNode::Aggregate {
                keys,
                aggregates,
                filter,
                ..
            } => keys
                .iter()
                .chain(aggregates.iter().filter_map(|a| a.input.as_ref()))
                .chain(filter)
                .collect(),
            PlanNode::Repartition { keys, .. } => keys.iter().collect(),
            PlanNode::Join {
                left_keys,
                right_keys,
                ..
            } => left_keys.iter().chain(right_keys).collect(),
            PlanNode::Sort { order, .. } => order.iter().map(|o| &o.expr).collect(),
            PlanNode::Scan(_)
            | PlanNode::StageRead(_)
            | PlanNode::Explode { .. }
            | PlanNode::MapBatches { .. }
            | PlanNode::FlatMap { .. }
            | PlanNode::Limit { .. }
            | PlanNode::Sample { .. }
            | PlanNode::Union { .. } => vec![],
        }
    }

    /// Checks that a plan a client submitted holds only what a client may write: no shuffle or
    /// broadcast reads, samples or split aggregations (the planner makes those, and they refer
    /// to stages of a job that does not exist yet), and unions without task counts.
    pub fn check_submittable(&self) -> Result<()> {
        for node in self.nodes() {
            let planner_only = match node {
                PlanNode::StageRead(StageRead::Shuffle { .. }) => Some("shuffle_read"),
                PlanNode::StageRead(StageRead::Broadcast { .. }) => Some("broadcast_read"),
                PlanNode::Sample { .. } => Some("sample"),
                PlanNode::Aggregate { mode, .. } if *mode != AggregateMode::Single => {
                    Some("a partial or final aggregation")
                }
                PlanNode::Aggregate {
                    filter: Some(_), ..
                } => Some("an aggregation with a fused filter"),
                PlanNode::Union { partitions, .. } if !partitions.is_empty() => {
                    Some("a union with task counts")
                }
                _ => None,
            };
            if let Some(what) = planner_only {
                return Err(PlanError::InvalidPlan(format!(
                    "a submitted plan may not contain {what}: the coordinator's planner makes those"
                )));
            }
        }
        Ok(())
    }

    /// Every node of the tree, parents before children.
    pub fn nodes(&self) -> Vec<&PlanNode> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(n) = stack.pop() {
            out.push(n);
            stack.extend(n.children().into_iter().rev());
        }
        out
    }

    /// Names of every user function the plan calls (in expressions or as nodes), sorted.
    pub fn user_functions(&self) -> Vec<String> {
        let mut out = Vec::new();
        for n in self.nodes() {
            n.exprs()
                .into_iter()
                .for_each(|e| e.user_functions(&mut out));
            if let PlanNode::MapBatches { function, .. } | PlanNode::FlatMap { function, .. } = n {
                out.push(function.clone());
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StageId;

    fn read(stage: u32, broadcast: bool) -> PlanNode {
        let schema = ScanNode::text_schema();
        PlanNode::StageRead(if broadcast {
            StageRead::Broadcast {
                stage: StageId(stage),
                schema,
                buckets: 1,
            }
        } else {
            StageRead::Shuffle {
                stage: StageId(stage),
                schema,
            }
        })
    }

    #[test]
    fn a_union_task_reads_only_the_input_it_runs_as_that_inputs_partition() {
        let union = PlanNode::Union {
            inputs: vec![read(1, false), read(2, false)],
            partitions: vec![4, 3],
        };
        assert_eq!(union.stage_reads(2), vec![(StageId(1), 2)]);
        assert_eq!(union.stage_reads(5), vec![(StageId(2), 1)]);
        assert!(union.stage_reads(7).is_empty(), "beyond the union");
        let limited = PlanNode::Limit {
            input: Box::new(read(3, true)),
            n: 5,
        };
        assert_eq!(
            limited.stage_reads(9),
            vec![(StageId(3), 0)],
            "a broadcast is bucket 0"
        );
    }
}
