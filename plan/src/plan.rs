//! The plan tree and its schema inference.
//!
//! A [`PlanNode`] tree describes both what a user asked for (the logical plan the SDK submits)
//! and what one stage runs (the coordinator replaces each exchange by a
//! [`PlanNode::ShuffleRead`] and splits aggregations into partial and final steps).
//! [`PlanNode::schema`] validates a tree bottom-up and names the first thing that is wrong.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::aggregate::{AggregateExpr, AggregateFunction};
use crate::error::{PlanError, Result};
use crate::expr::{Expr, column_field};
use crate::ids::StageId;
use crate::join::{JoinStrategy, JoinType, join_layout};
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateMode {
    /// As the user wrote it; only valid in a logical plan.
    Single,
    /// Map side: group keys + partial states.
    Partial,
    /// Reduce side: merges partial states into final values.
    Final,
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
    Aggregate {
        input: Box<PlanNode>,
        keys: Vec<Expr>,
        aggregates: Vec<AggregateExpr>,
        mode: AggregateMode,
    },
    /// This task's bucket of every map output of `stage`.
    ShuffleRead {
        stage: StageId,
        schema: SchemaRef,
    },
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
    /// Every map output of `stage`, whole: the broadcast side of a join, or a sort's sample.
    BroadcastRead {
        stage: StageId,
        schema: SchemaRef,
    },
    /// In a submitted plan, a global sort (of the first `limit` rows only, when set). In a
    /// stage, a sort of this task's rows.
    Sort {
        input: Box<PlanNode>,
        order: Vec<SortExpr>,
        limit: Option<u64>,
    },
    /// A deterministic sample of at most `rows` rows of this task's input (sort planning).
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

impl PlanNode {
    /// The node's inputs: none for sources, two for a join, any number for a union.
    pub fn children(&self) -> Vec<&PlanNode> {
        match self {
            PlanNode::Scan(_) | PlanNode::ShuffleRead { .. } | PlanNode::BroadcastRead { .. } => {
                vec![]
            }
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

    /// Checks that a plan a client submitted holds only what a client may write: no shuffle or
    /// broadcast reads, samples or split aggregations (the planner makes those, and they refer
    /// to stages of a job that does not exist yet), and unions without task counts.
    pub fn check_submittable(&self) -> Result<()> {
        for node in self.nodes() {
            let planner_only = match node {
                PlanNode::ShuffleRead { .. } => Some("shuffle_read"),
                PlanNode::BroadcastRead { .. } => Some("broadcast_read"),
                PlanNode::Sample { .. } => Some("sample"),
                PlanNode::Aggregate { mode, .. } if *mode != AggregateMode::Single => {
                    Some("a partial or final aggregation")
                }
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
            match n {
                PlanNode::Filter { predicate, .. } => predicate.user_functions(&mut out),
                PlanNode::Project { exprs, .. } => {
                    exprs.iter().for_each(|e| e.user_functions(&mut out))
                }
                PlanNode::Aggregate {
                    keys, aggregates, ..
                } => {
                    keys.iter().for_each(|e| e.user_functions(&mut out));
                    for a in aggregates {
                        if let Some(e) = &a.input {
                            e.user_functions(&mut out);
                        }
                    }
                }
                PlanNode::MapBatches { function, .. } | PlanNode::FlatMap { function, .. } => {
                    out.push(function.clone())
                }
                PlanNode::Repartition { keys, .. } => {
                    keys.iter().for_each(|e| e.user_functions(&mut out))
                }
                PlanNode::Join {
                    left_keys,
                    right_keys,
                    ..
                } => left_keys
                    .iter()
                    .chain(right_keys)
                    .for_each(|e| e.user_functions(&mut out)),
                PlanNode::Sort { order, .. } => {
                    order.iter().for_each(|o| o.expr.user_functions(&mut out))
                }
                PlanNode::Scan(_)
                | PlanNode::Explode { .. }
                | PlanNode::ShuffleRead { .. }
                | PlanNode::BroadcastRead { .. }
                | PlanNode::Sample { .. }
                | PlanNode::Union { .. }
                | PlanNode::Limit { .. } => {}
            }
        }
        out.sort();
        out.dedup();
        out
    }

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
                ..
            } => format!(
                "{} aggregate by [{}] [{}]",
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
                    .join(", ")
            )
            .trim_start()
            .to_string(),
            PlanNode::ShuffleRead { stage, .. } => format!("shuffle read from stage {stage}"),
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
            PlanNode::BroadcastRead { stage, .. } => format!("broadcast read from stage {stage}"),
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

    /// Validates the tree and returns the schema of its output.
    pub fn schema(&self) -> Result<SchemaRef> {
        match self {
            PlanNode::Scan(scan) => Ok(scan.schema.clone()),
            PlanNode::ShuffleRead { schema, .. } => Ok(schema.clone()),
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
                let t = predicate.data_type(&schema, "filter")?;
                if !matches!(t, DataType::Boolean | DataType::Null) {
                    return Err(PlanError::expected_type(
                        predicate,
                        "a boolean predicate",
                        &t,
                    ));
                }
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
            } => {
                let schema = input.schema()?;
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
            PlanNode::BroadcastRead { schema, .. } => Ok(schema.clone()),
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
        };
        let partial_schema = partial.schema().unwrap();
        assert_eq!(partial_schema.fields().len(), 5);
        let fin = PlanNode::Aggregate {
            input: Box::new(PlanNode::ShuffleRead {
                stage: StageId(0),
                schema: partial_schema,
            }),
            keys: vec![col("line")],
            aggregates: aggs.clone(),
            mode: AggregateMode::Final,
        };
        let single = PlanNode::Aggregate {
            input: Box::new(input),
            keys: vec![col("line")],
            aggregates: aggs,
            mode: AggregateMode::Single,
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
