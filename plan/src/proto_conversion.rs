//! Conversions between the model of this crate and the generated `quiver-proto` messages.
//!
//! Encoding never fails. Decoding validates: a missing field, an unknown enum value or an
//! undecodable schema becomes [`PlanError::MalformedProto`] naming the field, never a panic,
//! because these messages come from peers.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::convert::try_schema_from_flatbuffer_bytes;
use arrow::ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteOptions};
use quiver_proto::v1 as pb;

use crate::aggregate::{AggregateExpr, AggregateFunction};
use crate::error::{PlanError, Result};
use crate::expr::{BinaryOp, Expr, ScalarFunction, ScalarValue};
use crate::ids::{JobId, StageId, TaskAttempt, WorkerId};
use crate::join::{JoinStrategy, JoinType};
use crate::plan::{
    AggregateMode, CsvOptions, InputFile, PlanNode, ScanNode, SourceFormat, StageRead,
};
use crate::sort::SortExpr;
use crate::stage::{
    FileSplit, MapOutputLocation, ReadGrant, ShuffleInput, Sink, StageOutput, TaskDefinition,
};

/// Encodes a schema as an Arrow IPC schema message.
pub fn schema_to_bytes(schema: &Schema) -> Vec<u8> {
    IpcDataGenerator::default()
        .schema_to_bytes_with_dictionary_tracker(
            schema,
            &mut DictionaryTracker::new(false),
            &IpcWriteOptions::default(),
        )
        .ipc_message
}

/// Decodes a schema written by [`schema_to_bytes`].
pub fn schema_from_bytes(bytes: &[u8]) -> Result<SchemaRef> {
    if bytes.is_empty() {
        return Err(PlanError::missing("schema"));
    }
    try_schema_from_flatbuffer_bytes(bytes)
        .map(Arc::new)
        .map_err(|e| PlanError::MalformedProto {
            field: "schema",
            problem: e.to_string(),
        })
}

/// A data type travels as a one-field schema.
fn type_to_bytes(t: &arrow::datatypes::DataType) -> Vec<u8> {
    schema_to_bytes(&Schema::new(vec![arrow::datatypes::Field::new(
        "t",
        t.clone(),
        true,
    )]))
}

fn type_from_bytes(bytes: &[u8]) -> Result<arrow::datatypes::DataType> {
    let schema = schema_from_bytes(bytes)?;
    schema
        .fields()
        .first()
        .map(|f| f.data_type().clone())
        .ok_or_else(|| PlanError::missing("data type"))
}

fn required<'a, T>(field: &'static str, value: &'a Option<T>) -> Result<&'a T> {
    value.as_ref().ok_or_else(|| PlanError::missing(field))
}

fn enum_value<T: TryFrom<i32>>(field: &'static str, value: i32) -> Result<T> {
    T::try_from(value).map_err(|_| PlanError::MalformedProto {
        field,
        problem: format!("has unknown value {value}"),
    })
}

// ---- expressions ------------------------------------------------------------------------------

impl From<&ScalarValue> for pb::ScalarValue {
    fn from(v: &ScalarValue) -> Self {
        use pb::scalar_value::Value;
        let value = match v {
            ScalarValue::Null => Value::NullValue(true),
            ScalarValue::Boolean(b) => Value::BoolValue(*b),
            ScalarValue::Int64(i) => Value::Int64Value(*i),
            ScalarValue::Float64(x) => Value::Float64Value(*x),
            ScalarValue::Utf8(s) => Value::Utf8Value(s.clone()),
        };
        pb::ScalarValue { value: Some(value) }
    }
}

impl TryFrom<&pb::ScalarValue> for ScalarValue {
    type Error = PlanError;
    fn try_from(v: &pb::ScalarValue) -> Result<Self> {
        use pb::scalar_value::Value;
        Ok(match required("literal.value", &v.value)? {
            Value::NullValue(_) => ScalarValue::Null,
            Value::BoolValue(b) => ScalarValue::Boolean(*b),
            Value::Int64Value(i) => ScalarValue::Int64(*i),
            Value::Float64Value(x) => ScalarValue::Float64(*x),
            Value::Utf8Value(s) => ScalarValue::Utf8(s.clone()),
        })
    }
}

const BINARY_OPS: [(BinaryOp, pb::BinaryOp); 13] = [
    (BinaryOp::Add, pb::BinaryOp::Add),
    (BinaryOp::Sub, pb::BinaryOp::Sub),
    (BinaryOp::Mul, pb::BinaryOp::Mul),
    (BinaryOp::Div, pb::BinaryOp::Div),
    (BinaryOp::Mod, pb::BinaryOp::Mod),
    (BinaryOp::Eq, pb::BinaryOp::Eq),
    (BinaryOp::NotEq, pb::BinaryOp::NotEq),
    (BinaryOp::Lt, pb::BinaryOp::Lt),
    (BinaryOp::LtEq, pb::BinaryOp::LtEq),
    (BinaryOp::Gt, pb::BinaryOp::Gt),
    (BinaryOp::GtEq, pb::BinaryOp::GtEq),
    (BinaryOp::And, pb::BinaryOp::And),
    (BinaryOp::Or, pb::BinaryOp::Or),
];

impl From<&Expr> for pb::Expr {
    fn from(e: &Expr) -> Self {
        use pb::expr::Kind;
        let kind = match e {
            Expr::Column(c) => Kind::Column(c.clone()),
            Expr::Literal(v) => Kind::Literal(v.into()),
            Expr::Binary { left, op, right } => Kind::Binary(Box::new(pb::BinaryExpr {
                left: Some(Box::new(left.as_ref().into())),
                op: BINARY_OPS
                    .iter()
                    .find(|(o, _)| o == op)
                    .map_or(pb::BinaryOp::Unspecified, |(_, p)| *p) as i32,
                right: Some(Box::new(right.as_ref().into())),
            })),
            Expr::Not(inner) => Kind::Not(Box::new(pb::NotExpr {
                input: Some(Box::new(inner.as_ref().into())),
            })),
            Expr::Function { function, args } => Kind::Function(pb::FunctionCall {
                name: function.name().to_string(),
                args: args.iter().map(Into::into).collect(),
            }),
            Expr::Alias { expr, name } => Kind::Alias(Box::new(pb::AliasExpr {
                input: Some(Box::new(expr.as_ref().into())),
                name: name.clone(),
            })),
            Expr::Cast { expr, to } => Kind::Cast(Box::new(pb::CastExpr {
                input: Some(Box::new(expr.as_ref().into())),
                to_type: type_to_bytes(to),
            })),
            Expr::Case {
                branches,
                otherwise,
            } => Kind::Case(Box::new(pb::CaseExpr {
                branches: branches
                    .iter()
                    .map(|(c, v)| pb::CaseBranch {
                        when: Some(c.into()),
                        then: Some(v.into()),
                    })
                    .collect(),
                otherwise: otherwise.as_ref().map(|o| Box::new(o.as_ref().into())),
            })),
            Expr::Udf {
                name,
                args,
                return_type,
            } => Kind::Udf(pb::UdfCall {
                name: name.clone(),
                args: args.iter().map(Into::into).collect(),
                return_type: type_to_bytes(return_type),
            }),
        };
        pb::Expr { kind: Some(kind) }
    }
}

fn boxed_expr(field: &'static str, e: &Option<Box<pb::Expr>>) -> Result<Box<Expr>> {
    Ok(Box::new(Expr::try_from(required(field, e)?.as_ref())?))
}

impl TryFrom<&pb::Expr> for Expr {
    type Error = PlanError;
    fn try_from(e: &pb::Expr) -> Result<Self> {
        use pb::expr::Kind;
        Ok(match required("expr.kind", &e.kind)? {
            Kind::Column(c) => Expr::Column(c.clone()),
            Kind::Literal(v) => Expr::Literal(v.try_into()?),
            Kind::Binary(b) => {
                let op: pb::BinaryOp = enum_value("binary.op", b.op)?;
                let op = BINARY_OPS
                    .iter()
                    .find(|(_, p)| *p == op)
                    .map(|(o, _)| *o)
                    .ok_or_else(|| PlanError::missing("binary.op"))?;
                Expr::Binary {
                    left: boxed_expr("binary.left", &b.left)?,
                    op,
                    right: boxed_expr("binary.right", &b.right)?,
                }
            }
            Kind::Not(n) => Expr::Not(boxed_expr("not.input", &n.input)?),
            Kind::Function(f) => Expr::Function {
                function: ScalarFunction::from_name(&f.name)?,
                args: f.args.iter().map(Expr::try_from).collect::<Result<_>>()?,
            },
            Kind::Alias(a) => Expr::Alias {
                expr: boxed_expr("alias.input", &a.input)?,
                name: a.name.clone(),
            },
            Kind::Cast(c) => Expr::Cast {
                expr: boxed_expr("cast.input", &c.input)?,
                to: type_from_bytes(&c.to_type)?,
            },
            Kind::Case(c) => Expr::Case {
                branches: c
                    .branches
                    .iter()
                    .map(|b| {
                        Ok((
                            Expr::try_from(required("case.when", &b.when)?)?,
                            Expr::try_from(required("case.then", &b.then)?)?,
                        ))
                    })
                    .collect::<Result<_>>()?,
                otherwise: c
                    .otherwise
                    .as_ref()
                    .map(|o| Expr::try_from(o.as_ref()).map(Box::new))
                    .transpose()?,
            },
            Kind::Udf(u) => {
                if u.name.is_empty() {
                    return Err(PlanError::missing("udf.name"));
                }
                Expr::Udf {
                    name: u.name.clone(),
                    args: exprs_from(&u.args)?,
                    return_type: type_from_bytes(&u.return_type)?,
                }
            }
        })
    }
}

fn exprs_from(exprs: &[pb::Expr]) -> Result<Vec<Expr>> {
    exprs.iter().map(Expr::try_from).collect()
}

const AGGREGATE_FUNCTIONS: [(AggregateFunction, pb::AggregateFunction); 6] = [
    (
        AggregateFunction::CountDistinct,
        pb::AggregateFunction::CountDistinct,
    ),
    (AggregateFunction::Count, pb::AggregateFunction::Count),
    (AggregateFunction::Sum, pb::AggregateFunction::Sum),
    (AggregateFunction::Min, pb::AggregateFunction::Min),
    (AggregateFunction::Max, pb::AggregateFunction::Max),
    (AggregateFunction::Mean, pb::AggregateFunction::Mean),
];

impl From<&AggregateExpr> for pb::AggregateExpr {
    fn from(a: &AggregateExpr) -> Self {
        pb::AggregateExpr {
            function: AGGREGATE_FUNCTIONS
                .iter()
                .find(|(f, _)| *f == a.function)
                .map_or(pb::AggregateFunction::Unspecified, |(_, p)| *p)
                as i32,
            input: a.input.as_ref().map(Into::into),
            name: a.name.clone(),
        }
    }
}

impl TryFrom<&pb::AggregateExpr> for AggregateExpr {
    type Error = PlanError;
    fn try_from(a: &pb::AggregateExpr) -> Result<Self> {
        let function: pb::AggregateFunction = enum_value("aggregate.function", a.function)?;
        let function = AGGREGATE_FUNCTIONS
            .iter()
            .find(|(_, p)| *p == function)
            .map(|(f, _)| *f)
            .ok_or_else(|| PlanError::missing("aggregate.function"))?;
        Ok(AggregateExpr {
            function,
            input: a.input.as_ref().map(Expr::try_from).transpose()?,
            name: a.name.clone(),
        })
    }
}

// ---- plans ------------------------------------------------------------------------------------

const JOIN_TYPES: [(JoinType, pb::JoinType); 6] = [
    (JoinType::Inner, pb::JoinType::Inner),
    (JoinType::Left, pb::JoinType::Left),
    (JoinType::Right, pb::JoinType::Right),
    (JoinType::Full, pb::JoinType::Full),
    (JoinType::LeftSemi, pb::JoinType::LeftSemi),
    (JoinType::LeftAnti, pb::JoinType::LeftAnti),
];

const JOIN_STRATEGIES: [(JoinStrategy, pb::JoinStrategy); 3] = [
    (JoinStrategy::Auto, pb::JoinStrategy::Auto),
    (JoinStrategy::Shuffle, pb::JoinStrategy::Shuffle),
    (JoinStrategy::Broadcast, pb::JoinStrategy::Broadcast),
];

/// Looks `key` up in a table of pairs, in either direction.
fn lookup<A: PartialEq + Copy, B: PartialEq + Copy>(table: &[(A, B)], key: A) -> Option<B> {
    table.iter().find(|(a, _)| *a == key).map(|(_, b)| *b)
}

fn reverse_lookup<A: PartialEq + Copy, B: PartialEq + Copy>(
    field: &'static str,
    table: &[(A, B)],
    key: B,
) -> Result<A> {
    table
        .iter()
        .find(|(_, b)| *b == key)
        .map(|(a, _)| *a)
        .ok_or_else(|| PlanError::missing(field))
}

impl From<&SortExpr> for pb::SortExpr {
    fn from(o: &SortExpr) -> Self {
        pb::SortExpr {
            expr: Some((&o.expr).into()),
            descending: o.descending,
            nulls_first: o.nulls_first,
        }
    }
}

impl TryFrom<&pb::SortExpr> for SortExpr {
    type Error = PlanError;
    fn try_from(o: &pb::SortExpr) -> Result<Self> {
        Ok(SortExpr {
            expr: required("sort.expr", &o.expr)?.try_into()?,
            descending: o.descending,
            nulls_first: o.nulls_first,
        })
    }
}

fn sort_exprs_from(order: &[pb::SortExpr]) -> Result<Vec<SortExpr>> {
    order.iter().map(SortExpr::try_from).collect()
}

fn format_to_proto(f: SourceFormat) -> pb::SourceFormat {
    match f {
        SourceFormat::Text => pb::SourceFormat::Text,
        SourceFormat::Parquet => pb::SourceFormat::Parquet,
        SourceFormat::Csv => pb::SourceFormat::Csv,
    }
}

fn mode_to_proto(m: AggregateMode) -> pb::AggregateMode {
    match m {
        AggregateMode::Single => pb::AggregateMode::Single,
        AggregateMode::Partial => pb::AggregateMode::Partial,
        AggregateMode::Final => pb::AggregateMode::Final,
    }
}

impl From<&PlanNode> for pb::PlanNode {
    fn from(node: &PlanNode) -> Self {
        use pb::plan_node::Node;
        let input = |n: &PlanNode| Some(Box::new(pb::PlanNode::from(n)));
        let node = match node {
            PlanNode::Scan(s) => Node::Scan(pb::ScanNode {
                format: format_to_proto(s.format) as i32,
                files: s
                    .files
                    .iter()
                    .map(|f| pb::InputFile {
                        path: f.path.clone(),
                        size: f.size,
                        row_groups: f.row_groups,
                    })
                    .collect(),
                schema: schema_to_bytes(&s.schema),
                csv: Some(pb::CsvOptions {
                    has_header: s.csv.has_header,
                    delimiter: u32::from(s.csv.delimiter),
                }),
            }),
            PlanNode::Filter {
                input: i,
                predicate,
            } => Node::Filter(Box::new(pb::FilterNode {
                input: input(i),
                predicate: Some(predicate.into()),
            })),
            PlanNode::Project { input: i, exprs } => Node::Project(Box::new(pb::ProjectNode {
                input: input(i),
                exprs: exprs.iter().map(Into::into).collect(),
            })),
            PlanNode::Explode { input: i, column } => Node::Explode(Box::new(pb::ExplodeNode {
                input: input(i),
                column: column.clone(),
            })),
            PlanNode::Aggregate {
                input: i,
                keys,
                aggregates,
                mode,
                filter,
            } => Node::Aggregate(Box::new(pb::AggregateNode {
                input: input(i),
                keys: keys.iter().map(Into::into).collect(),
                aggregates: aggregates.iter().map(Into::into).collect(),
                mode: mode_to_proto(*mode) as i32,
                filter: filter.as_ref().map(Into::into),
            })),
            PlanNode::StageRead(StageRead::Shuffle { stage, schema }) => {
                Node::ShuffleRead(pb::ShuffleReadNode {
                    stage_id: stage.0,
                    schema: schema_to_bytes(schema),
                })
            }
            PlanNode::MapBatches {
                input: i,
                function,
                schema,
            } => Node::MapBatches(Box::new(pb::UserFunctionNode {
                input: input(i),
                function: function.clone(),
                schema: schema_to_bytes(schema),
            })),
            PlanNode::Limit { input: i, n } => Node::Limit(Box::new(pb::LimitNode {
                input: input(i),
                n: *n,
            })),
            PlanNode::Repartition {
                input: i,
                partitions,
                keys,
            } => Node::Repartition(Box::new(pb::RepartitionNode {
                input: input(i),
                partitions: *partitions,
                keys: keys.iter().map(Into::into).collect(),
            })),
            PlanNode::FlatMap {
                input: i,
                function,
                schema,
            } => Node::FlatMap(Box::new(pb::UserFunctionNode {
                input: input(i),
                function: function.clone(),
                schema: schema_to_bytes(schema),
            })),
            PlanNode::Join {
                left,
                right,
                left_keys,
                right_keys,
                join_type,
                strategy,
            } => Node::Join(Box::new(pb::JoinNode {
                left: input(left),
                right: input(right),
                left_keys: left_keys.iter().map(Into::into).collect(),
                right_keys: right_keys.iter().map(Into::into).collect(),
                join_type: lookup(&JOIN_TYPES, *join_type).unwrap_or_default() as i32,
                strategy: lookup(&JOIN_STRATEGIES, *strategy).unwrap_or_default() as i32,
            })),
            PlanNode::StageRead(StageRead::Broadcast { stage, schema }) => {
                Node::BroadcastRead(pb::BroadcastReadNode {
                    stage_id: stage.0,
                    schema: schema_to_bytes(schema),
                })
            }
            PlanNode::Sort {
                input: i,
                order,
                limit,
            } => Node::Sort(Box::new(pb::SortNode {
                input: input(i),
                order: order.iter().map(Into::into).collect(),
                limit: *limit,
            })),
            PlanNode::Sample { input: i, rows } => Node::Sample(Box::new(pb::SampleNode {
                input: input(i),
                rows: *rows,
            })),
            PlanNode::Union { inputs, partitions } => Node::Union(pb::UnionNode {
                inputs: inputs.iter().map(pb::PlanNode::from).collect(),
                partitions: partitions.clone(),
            }),
        };
        pb::PlanNode { node: Some(node) }
    }
}

fn boxed_plan(field: &'static str, n: &Option<Box<pb::PlanNode>>) -> Result<Box<PlanNode>> {
    Ok(Box::new(PlanNode::try_from(required(field, n)?.as_ref())?))
}

impl TryFrom<&pb::PlanNode> for PlanNode {
    type Error = PlanError;
    fn try_from(node: &pb::PlanNode) -> Result<Self> {
        use pb::plan_node::Node;
        Ok(match required("plan.node", &node.node)? {
            Node::Scan(s) => {
                let format = match enum_value("scan.format", s.format)? {
                    pb::SourceFormat::Text => SourceFormat::Text,
                    pb::SourceFormat::Parquet => SourceFormat::Parquet,
                    pb::SourceFormat::Csv => SourceFormat::Csv,
                    pb::SourceFormat::Unspecified => return Err(PlanError::missing("scan.format")),
                };
                let csv = s
                    .csv
                    .as_ref()
                    .map_or_else(CsvOptions::default, |c| CsvOptions {
                        has_header: c.has_header,
                        delimiter: u8::try_from(c.delimiter).unwrap_or(b','),
                    });
                PlanNode::Scan(ScanNode {
                    format,
                    files: s
                        .files
                        .iter()
                        .map(|f| InputFile {
                            path: f.path.clone(),
                            size: f.size,
                            row_groups: f.row_groups,
                        })
                        .collect(),
                    schema: schema_from_bytes(&s.schema)?,
                    csv,
                })
            }
            Node::Filter(f) => PlanNode::Filter {
                input: boxed_plan("filter.input", &f.input)?,
                predicate: required("filter.predicate", &f.predicate)?.try_into()?,
            },
            Node::Project(p) => PlanNode::Project {
                input: boxed_plan("project.input", &p.input)?,
                exprs: exprs_from(&p.exprs)?,
            },
            Node::Explode(e) => PlanNode::Explode {
                input: boxed_plan("explode.input", &e.input)?,
                column: e.column.clone(),
            },
            Node::Aggregate(a) => PlanNode::Aggregate {
                input: boxed_plan("aggregate.input", &a.input)?,
                keys: exprs_from(&a.keys)?,
                aggregates: a
                    .aggregates
                    .iter()
                    .map(AggregateExpr::try_from)
                    .collect::<Result<_>>()?,
                mode: match enum_value("aggregate.mode", a.mode)? {
                    pb::AggregateMode::Single => AggregateMode::Single,
                    pb::AggregateMode::Partial => AggregateMode::Partial,
                    pb::AggregateMode::Final => AggregateMode::Final,
                    pb::AggregateMode::Unspecified => {
                        return Err(PlanError::missing("aggregate.mode"));
                    }
                },
                filter: a.filter.as_ref().map(Expr::try_from).transpose()?,
            },
            Node::ShuffleRead(r) => PlanNode::StageRead(StageRead::Shuffle {
                stage: StageId(r.stage_id),
                schema: schema_from_bytes(&r.schema)?,
            }),
            Node::MapBatches(m) => PlanNode::MapBatches {
                input: boxed_plan("map_batches.input", &m.input)?,
                function: m.function.clone(),
                schema: schema_from_bytes(&m.schema)?,
            },
            Node::Limit(l) => PlanNode::Limit {
                input: boxed_plan("limit.input", &l.input)?,
                n: l.n,
            },
            Node::Repartition(r) => PlanNode::Repartition {
                input: boxed_plan("repartition.input", &r.input)?,
                partitions: r.partitions,
                keys: exprs_from(&r.keys)?,
            },
            Node::FlatMap(m) => PlanNode::FlatMap {
                input: boxed_plan("flat_map.input", &m.input)?,
                function: m.function.clone(),
                schema: schema_from_bytes(&m.schema)?,
            },
            Node::Join(j) => PlanNode::Join {
                left: boxed_plan("join.left", &j.left)?,
                right: boxed_plan("join.right", &j.right)?,
                left_keys: exprs_from(&j.left_keys)?,
                right_keys: exprs_from(&j.right_keys)?,
                join_type: reverse_lookup(
                    "join.join_type",
                    &JOIN_TYPES,
                    enum_value("join.join_type", j.join_type)?,
                )?,
                strategy: reverse_lookup(
                    "join.strategy",
                    &JOIN_STRATEGIES,
                    enum_value("join.strategy", j.strategy)?,
                )?,
            },
            Node::BroadcastRead(r) => PlanNode::StageRead(StageRead::Broadcast {
                stage: StageId(r.stage_id),
                schema: schema_from_bytes(&r.schema)?,
            }),
            Node::Sort(o) => PlanNode::Sort {
                input: boxed_plan("sort.input", &o.input)?,
                order: sort_exprs_from(&o.order)?,
                limit: o.limit,
            },
            Node::Sample(m) => PlanNode::Sample {
                input: boxed_plan("sample.input", &m.input)?,
                rows: m.rows,
            },
            Node::Union(u) => PlanNode::Union {
                inputs: u
                    .inputs
                    .iter()
                    .map(PlanNode::try_from)
                    .collect::<Result<_>>()?,
                partitions: u.partitions.clone(),
            },
        })
    }
}

// ---- sinks, stage outputs, tasks ----------------------------------------------------------------

impl From<&Sink> for pb::Sink {
    fn from(s: &Sink) -> Self {
        use pb::sink::Kind;
        let kind = match s {
            Sink::Collect => Kind::Collect(pb::CollectSink {}),
            Sink::WriteParquet { directory } => Kind::WriteParquet(pb::WriteParquetSink {
                directory: directory.clone(),
            }),
        };
        pb::Sink { kind: Some(kind) }
    }
}

impl TryFrom<&pb::Sink> for Sink {
    type Error = PlanError;
    fn try_from(s: &pb::Sink) -> Result<Self> {
        use pb::sink::Kind;
        Ok(match required("sink.kind", &s.kind)? {
            Kind::Collect(_) => Sink::Collect,
            Kind::WriteParquet(w) => Sink::WriteParquet {
                directory: w.directory.clone(),
            },
        })
    }
}

impl From<&StageOutput> for pb::StageOutput {
    fn from(o: &StageOutput) -> Self {
        use pb::stage_output::Kind;
        let kind = match o {
            StageOutput::HashShuffle { keys, partitions } => {
                Kind::HashShuffle(pb::HashShuffleOutput {
                    keys: keys.iter().map(Into::into).collect(),
                    partitions: *partitions,
                })
            }
            StageOutput::RangeShuffle {
                order,
                partitions,
                sample,
            } => Kind::RangeShuffle(pb::RangeShuffleOutput {
                order: order.iter().map(Into::into).collect(),
                partitions: *partitions,
                sample_stage: sample.0,
            }),
            StageOutput::Collect => Kind::Collect(pb::CollectSink {}),
            StageOutput::WriteParquet { directory } => Kind::WriteParquet(pb::WriteParquetSink {
                directory: directory.clone(),
            }),
        };
        pb::StageOutput { kind: Some(kind) }
    }
}

impl TryFrom<&pb::StageOutput> for StageOutput {
    type Error = PlanError;
    fn try_from(o: &pb::StageOutput) -> Result<Self> {
        use pb::stage_output::Kind;
        Ok(match required("output.kind", &o.kind)? {
            Kind::HashShuffle(h) => {
                if h.partitions == 0 {
                    return Err(PlanError::MalformedProto {
                        field: "hash_shuffle.partitions",
                        problem: "is 0".into(),
                    });
                }
                StageOutput::HashShuffle {
                    keys: exprs_from(&h.keys)?,
                    partitions: h.partitions,
                }
            }
            Kind::RangeShuffle(r) => {
                if r.partitions == 0 {
                    return Err(PlanError::MalformedProto {
                        field: "range_shuffle.partitions",
                        problem: "is 0".into(),
                    });
                }
                StageOutput::RangeShuffle {
                    order: sort_exprs_from(&r.order)?,
                    partitions: r.partitions,
                    sample: StageId(r.sample_stage),
                }
            }
            Kind::Collect(_) => StageOutput::Collect,
            Kind::WriteParquet(w) => StageOutput::WriteParquet {
                directory: w.directory.clone(),
            },
        })
    }
}

impl From<&TaskDefinition> for pb::TaskDefinition {
    fn from(t: &TaskDefinition) -> Self {
        pb::TaskDefinition {
            job_id: t.attempt.job.0.clone(),
            stage_id: t.attempt.stage.0,
            partition: t.attempt.partition,
            attempt: t.attempt.attempt,
            plan: Some((&t.plan).into()),
            output: Some((&t.output).into()),
            splits: t
                .splits
                .iter()
                .map(|s| pb::FileSplit {
                    path: s.path.clone(),
                    start: s.start,
                    end: s.end,
                    row_groups: s.row_groups.clone(),
                })
                .collect(),
            inputs: t
                .inputs
                .iter()
                .map(|i| pb::ShuffleInput {
                    stage_id: i.stage.0,
                    locations: i
                        .locations
                        .iter()
                        .map(|l| pb::MapOutputLocation {
                            map_partition: l.map_partition,
                            worker_id: l.worker.0.clone(),
                            address: l.address.clone(),
                        })
                        .collect(),
                    grant: i.grant.as_ref().map(pb::ReadGrant::from),
                })
                .collect(),
            batch_size: u32::try_from(t.batch_size).unwrap_or(u32::MAX),
        }
    }
}

impl From<&ReadGrant> for pb::ReadGrant {
    fn from(g: &ReadGrant) -> Self {
        pb::ReadGrant {
            job_id: g.job.clone(),
            stage_id: g.stage.0,
            expires_at_ms: g.expires_at_ms,
            signature: g.signature.clone(),
        }
    }
}

impl From<&pb::ReadGrant> for ReadGrant {
    fn from(g: &pb::ReadGrant) -> Self {
        ReadGrant {
            job: g.job_id.clone(),
            stage: StageId(g.stage_id),
            expires_at_ms: g.expires_at_ms,
            signature: g.signature.clone(),
        }
    }
}

/// Decodes a task definition. The job id must be a UUID (it names directories on the
/// worker); limits on sizes are checked separately, by [`crate::limits::Limits::check_task`].
impl TryFrom<&pb::TaskDefinition> for TaskDefinition {
    type Error = PlanError;
    fn try_from(t: &pb::TaskDefinition) -> Result<Self> {
        Ok(TaskDefinition {
            attempt: TaskAttempt {
                job: JobId::parse(&t.job_id)?,
                stage: StageId(t.stage_id),
                partition: t.partition,
                attempt: t.attempt,
            },
            plan: required("task.plan", &t.plan)?.try_into()?,
            output: required("task.output", &t.output)?.try_into()?,
            splits: t
                .splits
                .iter()
                .map(|s| FileSplit {
                    path: s.path.clone(),
                    start: s.start,
                    end: s.end,
                    row_groups: s.row_groups.clone(),
                })
                .collect(),
            inputs: t
                .inputs
                .iter()
                .map(|i| ShuffleInput {
                    stage: StageId(i.stage_id),
                    locations: i
                        .locations
                        .iter()
                        .map(|l| MapOutputLocation {
                            map_partition: l.map_partition,
                            worker: WorkerId(l.worker_id.clone()),
                            address: l.address.clone(),
                        })
                        .collect(),
                    grant: i.grant.as_ref().map(ReadGrant::from),
                })
                .collect(),
            batch_size: if t.batch_size == 0 {
                crate::DEFAULT_BATCH_SIZE
            } else {
                t.batch_size as usize
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{count, mean};
    use crate::expr::{col, lit, lower, words};
    use arrow::datatypes::{DataType, Field};

    #[test]
    fn plan_round_trips_through_proto() {
        let scan = PlanNode::Scan(ScanNode {
            format: SourceFormat::Csv,
            files: vec![InputFile {
                path: "/data/a.csv".into(),
                size: 10,
                row_groups: 0,
            }],
            schema: Arc::new(Schema::new(vec![
                Field::new("a", DataType::Int64, true),
                Field::new("s", DataType::Utf8, true),
            ])),
            csv: CsvOptions {
                has_header: false,
                delimiter: b';',
            },
        });
        let plan = PlanNode::Aggregate {
            input: Box::new(PlanNode::Explode {
                input: Box::new(PlanNode::Project {
                    input: Box::new(PlanNode::Filter {
                        input: Box::new(scan),
                        predicate: (col("a") % lit(3)).eq(lit(1)).or(lit(false).not()),
                    }),
                    exprs: vec![
                        words(lower(col("s"))).alias("w"),
                        col("a") / lit(2.5),
                        crate::expr::when(col("a").gt(lit(1)), lit("big"))
                            .when(col("a").is_null(), lit("none"))
                            .otherwise(crate::expr::substring(col("s"), 2, Some(3)))
                            .alias("c"),
                        crate::expr::coalesce(vec![col("a").cast(DataType::Float64), lit(0.5)])
                            .alias("k"),
                        crate::expr::regexp_like(col("s"), "^a+").alias("r"),
                    ],
                }),
                column: "w".into(),
            }),
            keys: vec![col("w")],
            aggregates: vec![count(), mean(col("a")).alias("m")],
            mode: AggregateMode::Single,
            filter: None,
        };
        let back = PlanNode::try_from(&pb::PlanNode::from(&plan)).unwrap();
        assert_eq!(back, plan);
    }

    #[test]
    fn user_functions_round_trip_and_are_listed() {
        let scan = PlanNode::Scan(ScanNode {
            format: SourceFormat::Text,
            files: vec![],
            schema: ScanNode::text_schema(),
            csv: CsvOptions::default(),
        });
        let out = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let plan = PlanNode::FlatMap {
            input: Box::new(PlanNode::MapBatches {
                input: Box::new(PlanNode::Filter {
                    input: Box::new(scan),
                    predicate: Expr::Udf {
                        name: "is_good".into(),
                        args: vec![col("line"), lit(3)],
                        return_type: DataType::Boolean,
                    },
                }),
                function: "enrich".into(),
                schema: out.clone(),
            }),
            function: "split".into(),
            schema: out,
        };
        let back = PlanNode::try_from(&pb::PlanNode::from(&plan)).unwrap();
        assert_eq!(back, plan);
        assert_eq!(back.user_functions(), vec!["enrich", "is_good", "split"]);
        assert_eq!(back.schema().unwrap().field(0).name(), "n");
    }

    #[test]
    fn missing_fields_are_named() {
        let err = PlanNode::try_from(&pb::PlanNode { node: None }).unwrap_err();
        assert!(err.to_string().contains("plan.node"), "{err}");
        let bad_fn = pb::Expr {
            kind: Some(pb::expr::Kind::Function(pb::FunctionCall {
                name: "nope".into(),
                args: vec![],
            })),
        };
        assert!(
            Expr::try_from(&bad_fn)
                .unwrap_err()
                .to_string()
                .contains("'nope'")
        );
    }
}
