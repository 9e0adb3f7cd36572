//! Column pruning: Parquet scans read only the columns the plan above them uses.
//!
//! [`prune_scan_columns`] walks a plan from the root, carrying the set of column names the
//! part above still needs, and narrows every Parquet scan's schema to those columns (in file
//! order). The plan's output is unchanged; Parquet readers then decode only what is used.
//! Where a node's needs cannot be known (user functions, joins and unions, whose column
//! names may be renamed), everything below is kept.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;

use arrow::datatypes::Schema;

use crate::plan::{PlanNode, ScanNode, SourceFormat};

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
    prune(plan.clone(), None)
}

fn prune(node: PlanNode, needed: Needed) -> PlanNode {
    let below = match &node {
        PlanNode::Scan(scan) => return PlanNode::Scan(narrow(scan.clone(), needed)),
        PlanNode::Project { exprs, .. } => Some(names(exprs)),
        PlanNode::Filter { predicate, .. } => with(&needed, names([predicate])),
        PlanNode::Explode { column, .. } => with(&needed, [column.clone()]),
        // Aggregations use only their own expressions.
        PlanNode::Aggregate { .. } => Some(names(node.exprs())),
        PlanNode::Limit { .. } | PlanNode::Sample { .. } => needed,
        PlanNode::Repartition { .. } | PlanNode::Sort { .. } => with(&needed, names(node.exprs())),
        PlanNode::Join { .. }
        | PlanNode::Union { .. }
        | PlanNode::MapBatches { .. }
        | PlanNode::FlatMap { .. }
        | PlanNode::StageRead(_) => None,
    };
    let rewritten: Result<PlanNode, Infallible> =
        node.map_children(|child| Ok(prune(child, below.clone())));
    let Ok(rewritten) = rewritten;
    rewritten
}

/// `scan` reading only the `needed` columns, when it is Parquet and they are known.
fn narrow(mut scan: ScanNode, needed: Needed) -> ScanNode {
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
    scan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::sum;
    use crate::expr::{col, lit};
    use crate::plan::{AggregateMode, CsvOptions};
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
            filter: None,
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
