//! How plans are shown: a one-line label per node, and the description of a stage's pipeline
//! that drivers see in each stage's progress (and the CLI prints). Decisions the planner made,
//! such as a filter fused into a partial aggregation, show here.

use super::{AggregateMode, PlanNode, StageRead};

impl PlanNode {
    /// A one-line name of the node, for stage descriptions and logs.
    pub fn label(&self) -> String {
        match self {
            PlanNode::Scan(s) => format!(
                "scan {:?} ({} file{})",
                s.format,
                s.files.len(),
                if s.files.len() == 1 { "" } else { "s" }
            )
            .to_lowercase(),
            PlanNode::Filter { predicate, .. } => format!("filter {predicate}"),
            PlanNode::Project { exprs, .. } => format!(
                "select {}",
                exprs
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            PlanNode::Explode { column, .. } => format!("explode {column}"),
            PlanNode::Aggregate {
                keys,
                aggregates,
                mode,
                filter,
                ..
            } => format!(
                "{} aggregate by [{}] [{}]{}",
                match mode {
                    AggregateMode::Single => "",
                    AggregateMode::Partial => "partial",
                    AggregateMode::Final => "final",
                },
                keys.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                aggregates
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                filter
                    .as_ref()
                    .map(|p| format!(" where {p}"))
                    .unwrap_or_default()
            )
            .trim_start()
            .to_string(),
            PlanNode::StageRead(StageRead::Shuffle { stage, .. }) => {
                format!("shuffle read from stage {stage}")
            }
            PlanNode::MapBatches { function, .. } => format!("map_batches {function}"),
            PlanNode::FlatMap { function, .. } => format!("flat_map {function}"),
            PlanNode::Limit { n, .. } => format!("limit {n}"),
            PlanNode::Repartition {
                partitions, keys, ..
            } => format!(
                "repartition into {partitions} by [{}]",
                keys.iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            PlanNode::Join {
                left_keys,
                right_keys,
                join_type,
                ..
            } => format!(
                "{join_type} join on {}",
                left_keys
                    .iter()
                    .zip(right_keys)
                    .map(|(l, r)| format!("{l} = {r}"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
            PlanNode::StageRead(StageRead::Broadcast { stage, .. }) => {
                format!("broadcast read from stage {stage}")
            }
            PlanNode::Sort { order, limit, .. } => format!(
                "sort by [{}]{}",
                order
                    .iter()
                    .map(|o| o.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                limit.map(|n| format!(" limit {n}")).unwrap_or_default()
            ),
            PlanNode::Sample { rows, .. } => format!("sample {rows} rows"),
            PlanNode::Union { inputs, .. } => format!("union of {}", inputs.len()),
        }
    }

    /// The pipeline from the leaves up to this node, as labels joined by " -> "; the inputs
    /// of a join or union are shown in parentheses.
    pub fn describe(&self) -> String {
        match self.children().as_slice() {
            [] => self.label(),
            [one] => format!("{} -> {}", one.describe(), self.label()),
            many => format!(
                "({}) -> {}",
                many.iter()
                    .map(|c| c.describe())
                    .collect::<Vec<_>>()
                    .join(" | "),
                self.label()
            ),
        }
    }
}
