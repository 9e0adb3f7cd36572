//! [`Limits`]: bounds on what a plan and its tasks may ask for, checked before any number that
//! came over the network sizes an allocation, a loop or a file.
//!
//! The coordinator checks a job against its limits when it is submitted and again for each
//! task it sends; it gives the same limits to every worker at registration, and a worker
//! checks each task against them before running it. So whatever the coordinator accepts, every
//! worker accepts too.
//!
//! **Depth.** Protobuf decoders stop at 100 nested messages (prost's recursion limit) to keep
//! a hostile message from overflowing the stack. A plan's *depth* is the nesting of the
//! messages that encode it: each plan step adds two levels (the `PlanNode` and its node
//! message), and so does each expression nested in another. A task carries its plan two levels
//! down, so a plan is refused above [`MAX_PLAN_DEPTH_CEILING`], where its task would no longer
//! decode.

use quiver_proto::v1 as pb;

use crate::aggregate::AggregateExpr;
use crate::error::{PlanError, Result};
use crate::expr::Expr;
use crate::plan::PlanNode;
use crate::sort::SortExpr;
use crate::stage::{StageOutput, TaskDefinition};

/// Nested messages above a task's plan: `LaunchTaskRequest` and `TaskDefinition`.
const TASK_ENVELOPE_DEPTH: u32 = 2;
/// Nesting prost decodes (its recursion limit counts the messages below the outermost one).
const DECODER_NESTING: u32 = 100;
/// The deepest plan whose task still decodes on a worker; `--max-plan-depth` cannot exceed it.
pub const MAX_PLAN_DEPTH_CEILING: u32 = DECODER_NESTING + 1 - TASK_ENVELOPE_DEPTH;

/// Bounds on plans and tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Partitions of a shuffle or repartition (and tasks of the stage that reads it).
    pub max_partitions: u32,
    /// Tasks of a stage that reads files (one per input split), or of a union.
    pub max_tasks_per_stage: u32,
    /// Tasks of all stages of a job together.
    pub max_tasks_per_job: u32,
    /// Rows per batch.
    pub max_batch_size: u32,
    /// Depth of a plan, in nested messages (see the module documentation).
    pub max_plan_depth: u32,
    /// Plan steps and expressions in one plan.
    pub max_plan_nodes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_partitions: 10_000,
            max_tasks_per_stage: 100_000,
            max_tasks_per_job: 1_000_000,
            max_batch_size: 1 << 20,
            max_plan_depth: MAX_PLAN_DEPTH_CEILING,
            max_plan_nodes: 100_000,
        }
    }
}

impl Limits {
    /// These limits with every field at least 1, the batch size at least the default (so that
    /// jobs without options run) and the depth at most the ceiling.
    pub fn sanitized(self) -> Self {
        Limits {
            max_partitions: self.max_partitions.max(1),
            max_tasks_per_stage: self.max_tasks_per_stage.max(1),
            max_tasks_per_job: self.max_tasks_per_job.max(1),
            max_batch_size: self.max_batch_size.max(crate::DEFAULT_BATCH_SIZE as u32),
            max_plan_depth: self.max_plan_depth.clamp(1, MAX_PLAN_DEPTH_CEILING),
            max_plan_nodes: self.max_plan_nodes.max(1),
        }
    }

    /// Checks a number against a limit.
    pub fn check(
        what: impl Into<String>,
        value: u64,
        limit: u32,
        setting: &'static str,
    ) -> Result<()> {
        if value > u64::from(limit) {
            return Err(PlanError::LimitExceeded {
                what: what.into(),
                value,
                limit: u64::from(limit),
                setting,
            });
        }
        Ok(())
    }

    /// Checks a shuffle's partition count (at least 1, at most `max_partitions`).
    pub fn check_partitions(&self, what: &str, partitions: u64) -> Result<()> {
        if partitions == 0 {
            return Err(PlanError::InvalidPlan(format!("{what} must be at least 1")));
        }
        Self::check(
            what,
            partitions,
            self.max_partitions,
            "coordinator flag --max-partitions",
        )
    }

    /// Checks a plan: its depth, its size, and every partition count in it.
    pub fn check_plan(&self, plan: &PlanNode) -> Result<()> {
        let depth = plan_depth(plan);
        if depth > self.max_plan_depth {
            return Err(PlanError::LimitExceeded {
                what: format!(
                    "the plan's nesting ({} chained steps and nested expressions, encoded {depth} messages deep)",
                    depth / 2
                ),
                value: u64::from(depth),
                limit: u64::from(self.max_plan_depth),
                setting: "coordinator flag --max-plan-depth; split the job or combine chained steps",
            });
        }
        Self::check(
            "the number of plan steps and expressions",
            count_nodes(plan),
            self.max_plan_nodes,
            "coordinator flag --max-plan-nodes",
        )?;
        for node in plan.nodes() {
            match node {
                PlanNode::StageRead(crate::StageRead::Broadcast { buckets, .. }) => {
                    self.check_partitions("a broadcast read's buckets", u64::from(*buckets))?
                }
                PlanNode::Repartition { partitions, .. } => {
                    self.check_partitions("repartition's partition count", u64::from(*partitions))?
                }
                PlanNode::Union { partitions, .. } => Self::check(
                    "a union's tasks",
                    partitions.iter().map(|&p| u64::from(p)).sum(),
                    self.max_tasks_per_stage,
                    "coordinator flag --max-tasks-per-stage",
                )?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks a rows-per-batch setting (0 means the default).
    pub fn check_batch_size(&self, batch_size: u64) -> Result<()> {
        Self::check(
            "batch_size (rows per batch)",
            batch_size,
            self.max_batch_size,
            "coordinator flag --max-batch-size",
        )
    }

    /// Checks a task a worker was sent: its plan, its output and its batch size.
    pub fn check_task(&self, task: &TaskDefinition) -> Result<()> {
        self.check_plan(&task.plan)?;
        let output_depth = stage_output_depth(&task.output);
        if output_depth > self.max_plan_depth {
            return Err(PlanError::LimitExceeded {
                what: "the task output's key expressions' nesting".into(),
                value: u64::from(output_depth),
                limit: u64::from(self.max_plan_depth),
                setting: "coordinator flag --max-plan-depth",
            });
        }
        if matches!(
            task.output,
            StageOutput::HashShuffle { .. } | StageOutput::RangeShuffle { .. }
        ) {
            self.check_partitions(
                "the task's shuffle partitions",
                u64::from(task.output.buckets()),
            )?;
        }
        if let Some(buckets) = &task.shuffle_buckets {
            if buckets.start >= buckets.end {
                return Err(PlanError::InvalidPlan(format!(
                    "the task's shuffle buckets {}..{} are empty",
                    buckets.start, buckets.end
                )));
            }
            // A task never reads past the largest shuffle a stage may have.
            self.check_partitions("the task's last shuffle bucket", u64::from(buckets.end))?;
        }
        if task.batch_size == 0 {
            return Err(PlanError::InvalidPlan(
                "batch_size must be at least 1".into(),
            ));
        }
        self.check_batch_size(task.batch_size as u64)
    }
}

impl From<&Limits> for pb::Limits {
    fn from(l: &Limits) -> Self {
        pb::Limits {
            max_partitions: Some(l.max_partitions),
            max_tasks_per_stage: Some(l.max_tasks_per_stage),
            max_tasks_per_job: Some(l.max_tasks_per_job),
            max_batch_size: Some(l.max_batch_size),
            max_plan_depth: Some(l.max_plan_depth),
            max_plan_nodes: Some(l.max_plan_nodes),
        }
    }
}

impl From<&pb::Limits> for Limits {
    /// A coordinator's limits as its worker takes them: an absent field is the default, and
    /// every bound is raised to its smallest sane value.
    fn from(l: &pb::Limits) -> Self {
        let d = Limits::default();
        Limits {
            max_partitions: l.max_partitions.unwrap_or(d.max_partitions),
            max_tasks_per_stage: l.max_tasks_per_stage.unwrap_or(d.max_tasks_per_stage),
            max_tasks_per_job: l.max_tasks_per_job.unwrap_or(d.max_tasks_per_job),
            max_batch_size: l.max_batch_size.unwrap_or(d.max_batch_size),
            max_plan_depth: l.max_plan_depth.unwrap_or(d.max_plan_depth),
            max_plan_nodes: l.max_plan_nodes.unwrap_or(d.max_plan_nodes),
        }
        .sanitized()
    }
}

/// Plan steps and expressions in `plan`.
pub fn count_nodes(plan: &PlanNode) -> u64 {
    plan.nodes()
        .into_iter()
        .map(|node| 1 + node.exprs().into_iter().map(count_exprs).sum::<u64>())
        .sum()
}

fn count_exprs(e: &Expr) -> u64 {
    1 + match e {
        Expr::Column(_) | Expr::Literal(_) => 0,
        Expr::Binary { left, right, .. } => count_exprs(left) + count_exprs(right),
        Expr::Not(inner) | Expr::Alias { expr: inner, .. } | Expr::Cast { expr: inner, .. } => {
            count_exprs(inner)
        }
        Expr::Function { args, .. } | Expr::Udf { args, .. } => args.iter().map(count_exprs).sum(),
        Expr::Case {
            branches,
            otherwise,
        } => {
            branches
                .iter()
                .map(|(w, t)| count_exprs(w) + count_exprs(t))
                .sum::<u64>()
                + otherwise.as_deref().map_or(0, count_exprs)
        }
    }
}

/// How many messages deep `e` is encoded, counting its own `Expr` message.
pub fn expr_depth(e: &Expr) -> u32 {
    let max = |args: &[Expr]| args.iter().map(expr_depth).max().unwrap_or(0);
    1 + match e {
        Expr::Column(_) => 0,
        // Expr -> ScalarValue.
        Expr::Literal(_) => 1,
        // Expr -> BinaryExpr / NotExpr / AliasExpr / CastExpr -> Expr.
        Expr::Binary { left, right, .. } => 1 + expr_depth(left).max(expr_depth(right)),
        Expr::Not(inner) | Expr::Alias { expr: inner, .. } | Expr::Cast { expr: inner, .. } => {
            1 + expr_depth(inner)
        }
        // Expr -> FunctionCall / UdfCall -> Expr.
        Expr::Function { args, .. } | Expr::Udf { args, .. } => 1 + max(args),
        // Expr -> CaseExpr -> CaseBranch -> Expr, and Expr -> CaseExpr -> Expr.
        Expr::Case {
            branches,
            otherwise,
        } => {
            let branch = branches
                .iter()
                .map(|(w, t)| 1 + expr_depth(w).max(expr_depth(t)))
                .max()
                .unwrap_or(0);
            1 + branch.max(otherwise.as_deref().map_or(0, expr_depth))
        }
    }
}

fn sort_expr_depth(o: &SortExpr) -> u32 {
    1 + expr_depth(&o.expr)
}

fn aggregate_depth(a: &AggregateExpr) -> u32 {
    1 + a.input.as_ref().map_or(0, expr_depth)
}

/// How many messages deep `plan` is encoded, counting its own `PlanNode` message.
pub fn plan_depth(plan: &PlanNode) -> u32 {
    let exprs = |es: &mut dyn Iterator<Item = &Expr>| es.map(expr_depth).max().unwrap_or(0);
    // The node message's own fields, below it.
    let own = match plan {
        // ScanNode -> InputFile / CsvOptions.
        PlanNode::Scan(_) => 1,
        // AggregateNode -> AggregateExpr -> Expr.
        PlanNode::Aggregate {
            keys,
            aggregates,
            filter,
            ..
        } => exprs(&mut keys.iter().chain(filter))
            .max(aggregates.iter().map(aggregate_depth).max().unwrap_or(0)),
        // SortNode -> SortExpr -> Expr.
        PlanNode::Sort { order, .. } => order.iter().map(sort_expr_depth).max().unwrap_or(0),
        other => exprs(&mut other.exprs().into_iter()),
    };
    let inputs = plan
        .children()
        .into_iter()
        .map(plan_depth)
        .max()
        .unwrap_or(0);
    // PlanNode -> the node message -> its fields.
    2 + own.max(inputs)
}

/// How many messages deep a stage output is encoded below the task (`StageOutput` included).
pub fn stage_output_depth(output: &StageOutput) -> u32 {
    match output {
        StageOutput::HashShuffle { keys, .. } => 2 + keys.iter().map(expr_depth).max().unwrap_or(0),
        StageOutput::RangeShuffle { order, .. } => {
            2 + order.iter().map(sort_expr_depth).max().unwrap_or(0)
        }
        StageOutput::Collect | StageOutput::WriteParquet { .. } => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_keep_their_meaning_on_the_wire() {
        // Absent fields are the defaults.
        assert_eq!(Limits::from(&pb::Limits::default()), Limits::default());
        // Present fields are taken as they are...
        let set = Limits {
            max_partitions: 7,
            max_tasks_per_stage: 70,
            max_tasks_per_job: 700,
            max_batch_size: 9000,
            max_plan_depth: 20,
            max_plan_nodes: 300,
        };
        assert_eq!(Limits::from(&pb::Limits::from(&set)), set);
        // ...raised to the smallest sane bound where they are below it: a present 0 is not
        // "the default", it is the tightest limit there is.
        let zero = pb::Limits {
            max_partitions: Some(0),
            max_batch_size: Some(0),
            ..Default::default()
        };
        let got = Limits::from(&zero);
        assert_eq!(got.max_partitions, 1);
        assert_eq!(got.max_batch_size, 8192);
        assert_eq!(got.max_plan_nodes, Limits::default().max_plan_nodes);
    }
}
