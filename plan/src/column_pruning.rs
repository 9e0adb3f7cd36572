//! Column pruning: Parquet scans read only the columns the plan above them uses.
//!
//! [`prune_scan_columns`] walks a plan from the root, carrying the set of column names the
//! part above still needs, and narrows every Parquet scan's schema to those columns (in file
//! order). The plan's output is unchanged; Parquet readers then decode only what is used.
//! Where a node's needs cannot be known (user functions, joins and unions, whose column
//! names may be renamed), everything below is kept.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::datatypes::Schema;

use crate::plan::{PlanNode, SourceFormat};

/// Column names needed from a node's output; `None` means all of them.
type Needed = Option<BTreeSet<String>>;

fn with(needed: &Needed, extra: impl IntoIterator<Item = String>) -> Needed {
    needed.as_ref().map(|n| {
        let mut n = n.clone();
        n.extend(extra);
        n
    })
}

fn names<'a>(exprs: impl IntoIterator<Item = &'a crate::expr::Expr>) -> BTreeSet<String> {
    exprs
        .into_iter()
        .flat_map(|e| e.columns())
        .map(str::to_string)
        .collect()
}

/// `plan` with every Parquet scan narrowed to the columns used above it.
pub fn prune_scan_columns(plan: &PlanNode) -> PlanNode {
    prune(plan, None)
}

fn prune(node: &PlanNode, needed: Needed) -> PlanNode {
    let boxed = |n: &PlanNode, needed: Needed| Box::new(prune(n, needed));
    match node {
        PlanNode::Scan(scan) => {
            let mut scan = scan.clone();
            if let (SourceFormat::Parquet, Some(needed)) = (scan.format, &needed) {
                let mut fields: Vec<_> = scan
                    .schema
                    .fields()
                    .iter()
                    .filter(|f| needed.contains(f.name()))
                    .cloned()
                    .collect();
                if fields.is_empty() {
                    // Nothing is read but the row count: keep the first column.
                    fields.extend(scan.schema.fields().first().cloned());
                }
                scan.schema = Arc::new(Schema::new(fields));
            }
            PlanNode::Scan(scan)
        }
        PlanNode::Project { input, exprs } => PlanNode::Project {
            input: boxed(input, Some(names(exprs))),
            exprs: exprs.clone(),
        },
        PlanNode::Filter { input, predicate } => PlanNode::Filter {
            input: boxed(input, with(&needed, names([predicate]))),
            predicate: predicate.clone(),
        },
        PlanNode::Explode { input, column } => PlanNode::Explode {
            input: boxed(input, with(&needed, [column.clone()])),
            column: column.clone(),
        },
        PlanNode::Aggregate {
            input,
            keys,
            aggregates,
            mode,
        } => PlanNode::Aggregate {
            input: boxed(
                input,
                Some(names(
                    keys.iter()
                        .chain(aggregates.iter().filter_map(|a| a.input.as_ref())),
                )),
            ),
            keys: keys.clone(),
            aggregates: aggregates.clone(),
            mode: *mode,
        },
        PlanNode::Limit { input, n } => PlanNode::Limit {
            input: boxed(input, needed),
            n: *n,
        },
        PlanNode::Sample { input, rows } => PlanNode::Sample {
            input: boxed(input, needed),
            rows: *rows,
        },
        PlanNode::Repartition {
            input,
            partitions,
            keys,
        } => PlanNode::Repartition {
            input: boxed(input, with(&needed, names(keys))),
            partitions: *partitions,
            keys: keys.clone(),
        },
        PlanNode::Sort {
            input,
            order,
            limit,
        } => PlanNode::Sort {
            input: boxed(input, with(&needed, names(order.iter().map(|o| &o.expr)))),
            order: order.clone(),
            limit: *limit,
        },
        PlanNode::Join {
            left,
            right,
            left_keys,
            right_keys,
            join_type,
            strategy,
        } => PlanNode::Join {
            left: boxed(left, None),
            right: boxed(right, None),
            left_keys: left_keys.clone(),
            right_keys: right_keys.clone(),
            join_type: *join_type,
            strategy: *strategy,
        },
        PlanNode::Union { inputs, partitions } => PlanNode::Union {
            inputs: inputs.iter().map(|i| prune(i, None)).collect(),
            partitions: partitions.clone(),
        },
        PlanNode::MapBatches {
            input,
            function,
            schema,
        } => PlanNode::MapBatches {
            input: boxed(input, None),
            function: function.clone(),
            schema: schema.clone(),
        },
        PlanNode::FlatMap {
            input,
            function,
            schema,
        } => PlanNode::FlatMap {
            input: boxed(input, None),
            function: function.clone(),
            schema: schema.clone(),
        },
        PlanNode::ShuffleRead { .. } | PlanNode::BroadcastRead { .. } => node.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::sum;
    use crate::expr::{col, lit};
    use crate::plan::{AggregateMode, CsvOptions, ScanNode};
    use arrow::datatypes::{DataType, Field};

    #[test]
    fn a_scan_keeps_only_what_filters_keys_and_aggregates_use() {
        let scan = PlanNode::Scan(ScanNode {
            format: SourceFormat::Parquet,
            files: vec![],
            schema: Arc::new(Schema::new(vec![
                Field::new("a", DataType::Int64, false),
                Field::new("b", DataType::Int64, false),
                Field::new("c", DataType::Utf8, false),
                Field::new("d", DataType::Float64, false),
            ])),
            csv: CsvOptions::default(),
        });
        let plan = PlanNode::Aggregate {
            input: Box::new(PlanNode::Filter {
                input: Box::new(scan),
                predicate: col("d").gt(lit(1.0)),
            }),
            keys: vec![col("c")],
            aggregates: vec![sum(col("a"))],
            mode: AggregateMode::Single,
        };
        let pruned = prune_scan_columns(&plan);
        assert_eq!(pruned.schema().unwrap(), plan.schema().unwrap());
        let scan_schema = pruned
            .nodes()
            .into_iter()
            .find_map(|n| match n {
                PlanNode::Scan(s) => Some(s.schema.clone()),
                _ => None,
            })
            .unwrap();
        let kept: Vec<_> = scan_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(kept, ["a", "c", "d"]);
    }
}
