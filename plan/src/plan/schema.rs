//! Schema inference: [`PlanNode::schema`] validates a tree bottom-up and returns the schema
//! of its output, naming the first thing that is wrong.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::{AggregateMode, PlanNode};
use crate::aggregate::{AggregateExpr, AggregateFunction};
use crate::error::{PlanError, Result};
use crate::expr::{Expr, column_field};
use crate::join::{JoinStrategy, join_layout};

impl PlanNode {
    /// Validates the tree and returns the schema of its output.
    pub fn schema(&self) -> Result<SchemaRef> {
        match self {
            PlanNode::Scan(scan) => Ok(scan.schema.clone()),
            PlanNode::StageRead(read) => Ok(read.schema().clone()),
            PlanNode::MapBatches { input, schema, .. }
            | PlanNode::FlatMap { input, schema, .. } => {
                input.schema()?;
                Ok(schema.clone())
            }
            PlanNode::Limit { input, .. } => input.schema(),
            PlanNode::Repartition {
                input,
                partitions,
                keys,
            } => {
                let schema = input.schema()?;
                if *partitions == 0 {
                    return Err(PlanError::InvalidPlan(
                        "repartition into 0 partitions".into(),
                    ));
                }
                for k in keys {
                    k.data_type(&schema, "repartition")?;
                }
                Ok(schema)
            }
            PlanNode::Filter { input, predicate } => {
                let schema = input.schema()?;
                check_predicate(predicate, &schema, "filter")?;
                Ok(schema)
            }
            PlanNode::Project { input, exprs } => {
                let schema = input.schema()?;
                let fields = exprs
                    .iter()
                    .map(|e| e.to_field(&schema, "select"))
                    .collect::<Result<Vec<_>>>()?;
                unique_names(&fields, "select")?;
                Ok(Arc::new(Schema::new(fields)))
            }
            PlanNode::Explode { input, column } => {
                let schema = input.schema()?;
                let field = column_field(&schema, column, "explode")?;
                let element = match field.data_type() {
                    DataType::List(f) | DataType::LargeList(f) => f.data_type().clone(),
                    other => {
                        return Err(PlanError::TypeMismatch {
                            expr: format!("explode({column})"),
                            message: format!("expected a list column, got {other}"),
                        });
                    }
                };
                let fields = schema
                    .fields()
                    .iter()
                    .map(|f| {
                        if f.name() == column {
                            Arc::new(Field::new(column, element.clone(), true))
                        } else {
                            f.clone()
                        }
                    })
                    .collect::<Vec<_>>();
                Ok(Arc::new(Schema::new(fields)))
            }
            PlanNode::Aggregate {
                input,
                keys,
                aggregates,
                mode,
                filter,
            } => {
                let schema = input.schema()?;
                if let Some(predicate) = filter {
                    if *mode != AggregateMode::Partial {
                        return Err(PlanError::InvalidPlan(format!(
                            "only a partial aggregation can skip rows by a predicate, not a \
                             {mode:?} one"
                        )));
                    }
                    check_predicate(predicate, &schema, "filter")?;
                }
                aggregate_schema(&schema, keys, aggregates, *mode)
            }
            PlanNode::Join {
                left,
                right,
                left_keys,
                right_keys,
                join_type,
                strategy,
            } => {
                let (l, r) = (left.schema()?, right.schema()?);
                if *strategy == JoinStrategy::Broadcast && join_type.keeps_unmatched_right() {
                    return Err(PlanError::InvalidPlan(format!(
                        "a {join_type} join cannot broadcast its right side (its unmatched rows \
                         would be output by every task); use the shuffle strategy"
                    )));
                }
                Ok(join_layout(&l, &r, left_keys, right_keys, *join_type)?.schema)
            }
            PlanNode::Sort { input, order, .. } => {
                let schema = input.schema()?;
                if order.is_empty() {
                    return Err(PlanError::InvalidPlan(
                        "a sort needs at least one key".into(),
                    ));
                }
                for o in order {
                    o.validate(&schema)?;
                }
                Ok(schema)
            }
            PlanNode::Sample { input, .. } => input.schema(),
            PlanNode::Union { inputs, partitions } => union_schema(inputs, partitions),
        }
    }
}

/// Checks that `predicate` is a boolean expression over `schema`.
fn check_predicate(predicate: &Expr, schema: &Schema, context: &str) -> Result<()> {
    let t = predicate.data_type(schema, context)?;
    if !matches!(t, DataType::Boolean | DataType::Null) {
        return Err(PlanError::expected_type(
            predicate,
            "a boolean predicate",
            &t,
        ));
    }
    Ok(())
}

/// The schema of a union: the first input's, with a column nullable where any input's is.
fn union_schema(inputs: &[PlanNode], partitions: &[u32]) -> Result<SchemaRef> {
    let Some((first, rest)) = inputs.split_first() else {
        return Err(PlanError::InvalidPlan(
            "a union needs at least one input".into(),
        ));
    };
    if !partitions.is_empty() && partitions.len() != inputs.len() {
        return Err(PlanError::InvalidPlan(format!(
            "a union of {} inputs has {} partition counts",
            inputs.len(),
            partitions.len()
        )));
    }
    let first = first.schema()?;
    let mut fields: Vec<Field> = first.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (i, input) in rest.iter().enumerate() {
        let schema = input.schema()?;
        let names = |s: &Schema| {
            s.fields()
                .iter()
                .map(|f| format!("{}: {}", f.name(), f.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let same = schema.fields().len() == fields.len()
            && schema
                .fields()
                .iter()
                .zip(&fields)
                .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
        if !same {
            return Err(PlanError::InvalidPlan(format!(
                "union input {} has columns ({}) but input 0 has ({})",
                i + 1,
                names(&schema),
                names(&first)
            )));
        }
        for (f, g) in fields.iter_mut().zip(schema.fields()) {
            if g.is_nullable() {
                *f = f.clone().with_nullable(true);
            }
        }
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// Output schema of an aggregation node over `input`.
fn aggregate_schema(
    input: &Schema,
    keys: &[Expr],
    aggregates: &[AggregateExpr],
    mode: AggregateMode,
) -> Result<SchemaRef> {
    let mut fields = keys
        .iter()
        .map(|k| k.to_field(input, "group_by"))
        .collect::<Result<Vec<_>>>()?;
    let distinct: Vec<_> = aggregates
        .iter()
        .filter(|a| a.function == AggregateFunction::CountDistinct)
        .collect();
    if let Some(first) = distinct.first() {
        if mode != AggregateMode::Single {
            return Err(PlanError::InvalidPlan(format!(
                "{first} must be planned as two aggregations"
            )));
        }
        if let Some(other) = aggregates.iter().find(|a| a.input != first.input) {
            return Err(PlanError::type_mismatch(
                other,
                format!(
                    "count_distinct cannot be mixed with other aggregates or inputs in one agg \
                     (here with {first}); aggregate separately and join on the keys"
                ),
            ));
        }
    }
    match mode {
        AggregateMode::Single => {
            for a in aggregates {
                fields.push(Field::new(a.name.clone(), a.output_type(input)?, true));
            }
        }
        AggregateMode::Partial => {
            for a in aggregates {
                fields.extend(a.state_fields(input)?);
            }
        }
        AggregateMode::Final => {
            // The input is the partial step's output: keys, then state columns. The state
            // columns carry the final types already, except mean (sum + count -> Float64).
            let mut state = keys.len();
            for a in aggregates {
                let width = if a.function == crate::AggregateFunction::Mean {
                    2
                } else {
                    1
                };
                let first = input.fields().get(state).ok_or_else(|| {
                    PlanError::InvalidPlan(format!(
                        "final aggregate {a} has no partial state column at {state}"
                    ))
                })?;
                let t = if width == 2 {
                    DataType::Float64
                } else {
                    first.data_type().clone()
                };
                fields.push(Field::new(a.name.clone(), t, true));
                state += width;
            }
        }
    }
    unique_names(&fields, "group_by/agg")?;
    Ok(Arc::new(Schema::new(fields)))
}

fn unique_names(fields: &[Field], context: &str) -> Result<()> {
    let mut seen = HashSet::new();
    for f in fields {
        if !seen.insert(f.name().as_str()) {
            return Err(PlanError::DuplicateColumn {
                name: f.name().clone(),
                context: context.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{count, mean, sum};
    use crate::expr::{col, lit, lower, words};
    use crate::ids::StageId;
    use crate::plan::{CsvOptions, ScanNode, SourceFormat, StageRead};

    fn text() -> PlanNode {
        PlanNode::Scan(ScanNode {
            format: SourceFormat::Text,
            files: vec![],
            schema: ScanNode::text_schema(),
            csv: CsvOptions::default(),
        })
    }

    fn word_count() -> PlanNode {
        let words = PlanNode::Project {
            input: Box::new(text()),
            exprs: vec![words(col("line")).alias("word")],
        };
        let exploded = PlanNode::Explode {
            input: Box::new(words),
            column: "word".into(),
        };
        let lowered = PlanNode::Project {
            input: Box::new(exploded),
            exprs: vec![lower(col("word")).alias("word")],
        };
        PlanNode::Aggregate {
            input: Box::new(lowered),
            keys: vec![col("word")],
            aggregates: vec![count().alias("count")],
            mode: AggregateMode::Single,
            filter: None,
        }
    }

    #[test]
    fn word_count_schema() {
        let s = word_count().schema().unwrap();
        assert_eq!(s.field(0).name(), "word");
        assert_eq!(s.field(0).data_type(), &DataType::Utf8);
        assert_eq!(s.field(1).name(), "count");
        assert_eq!(s.field(1).data_type(), &DataType::Int64);
    }

    #[test]
    fn partial_then_final_gives_the_single_schema() {
        let input = PlanNode::Project {
            input: Box::new(text()),
            exprs: vec![col("line"), lit(2).alias("x")],
        };
        let aggs = vec![sum(col("x")).alias("s"), mean(col("x")).alias("m"), count()];
        let partial = PlanNode::Aggregate {
            input: Box::new(input.clone()),
            keys: vec![col("line")],
            aggregates: aggs.clone(),
            mode: AggregateMode::Partial,
            filter: None,
        };
        let partial_schema = partial.schema().unwrap();
        assert_eq!(partial_schema.fields().len(), 5);
        let fin = PlanNode::Aggregate {
            input: Box::new(PlanNode::StageRead(StageRead::Shuffle {
                stage: StageId(0),
                schema: partial_schema,
            })),
            keys: vec![col("line")],
            aggregates: aggs.clone(),
            mode: AggregateMode::Final,
            filter: None,
        };
        let single = PlanNode::Aggregate {
            input: Box::new(input),
            keys: vec![col("line")],
            aggregates: aggs,
            mode: AggregateMode::Single,
            filter: None,
        };
        assert_eq!(fin.schema().unwrap(), single.schema().unwrap());
    }

    #[test]
    fn explode_needs_a_list() {
        let bad = PlanNode::Explode {
            input: Box::new(text()),
            column: "line".into(),
        };
        assert!(bad.schema().unwrap_err().to_string().contains("list"));
    }

    #[test]
    fn filter_needs_a_boolean() {
        let bad = PlanNode::Filter {
            input: Box::new(text()),
            predicate: col("line"),
        };
        assert!(bad.schema().is_err());
    }
}
