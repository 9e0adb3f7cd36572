//! Conversions between the model of this crate and the generated `quiver-proto` messages.
//!
//! Encoding never fails. Decoding validates: a missing field, an enum left `Unspecified` or of
//! an unknown value, or an undecodable schema becomes [`PlanError::MalformedProto`] naming the
//! field, never a panic or a default, because these messages come from peers. Every enum is
//! converted by an exhaustive `match` in each direction.

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
use crate::plan::{AggregateMode, CsvOptions, InputFile, PlanNode, ScanNode, SourceFormat};
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

/// Decodes an enum field's number: a number this build does not know is an error naming the
/// field. Callers `match` the result exhaustively and refuse `Unspecified` with
/// [`unspecified`], so that a new variant does not compile until it is handled.
pub fn enum_value<T: TryFrom<i32>>(field: &'static str, value: i32) -> Result<T> {
    T::try_from(value).map_err(|_| PlanError::MalformedProto {
        field,
        problem: format!("has unknown value {value}"),
    })
}

/// The error for an enum field left at `Unspecified` (0, which is also what an absent field
/// decodes to).
pub fn unspecified(field: &'static str) -> PlanError {
    PlanError::missing(field)
}

// ---- enums ------------------------------------------------------------------------------------

fn binary_op_to_proto(op: BinaryOp) -> pb::BinaryOp {
    match op {
        BinaryOp::Add => pb::BinaryOp::Add,
        BinaryOp::Sub => pb::BinaryOp::Sub,
        BinaryOp::Mul => pb::BinaryOp::Mul,
        BinaryOp::Div => pb::BinaryOp::Div,
        BinaryOp::Mod => pb::BinaryOp::Mod,
        BinaryOp::Eq => pb::BinaryOp::Eq,
        BinaryOp::NotEq => pb::BinaryOp::NotEq,
        BinaryOp::Lt => pb::BinaryOp::Lt,
        BinaryOp::LtEq => pb::BinaryOp::LtEq,
        BinaryOp::Gt => pb::BinaryOp::Gt,
        BinaryOp::GtEq => pb::BinaryOp::GtEq,
        BinaryOp::And => pb::BinaryOp::And,
        BinaryOp::Or => pb::BinaryOp::Or,
    }
}

fn binary_op_from_proto(field: &'static str, value: i32) -> Result<BinaryOp> {
    Ok(match enum_value(field, value)? {
        pb::BinaryOp::Unspecified => return Err(unspecified(field)),
        pb::BinaryOp::Add => BinaryOp::Add,
        pb::BinaryOp::Sub => BinaryOp::Sub,
        pb::BinaryOp::Mul => BinaryOp::Mul,
        pb::BinaryOp::Div => BinaryOp::Div,
        pb::BinaryOp::Mod => BinaryOp::Mod,
        pb::BinaryOp::Eq => BinaryOp::Eq,
        pb::BinaryOp::NotEq => BinaryOp::NotEq,
        pb::BinaryOp::Lt => BinaryOp::Lt,
        pb::BinaryOp::LtEq => BinaryOp::LtEq,
        pb::BinaryOp::Gt => BinaryOp::Gt,
        pb::BinaryOp::GtEq => BinaryOp::GtEq,
        pb::BinaryOp::And => BinaryOp::And,
        pb::BinaryOp::Or => BinaryOp::Or,
    })
}

fn aggregate_function_to_proto(f: AggregateFunction) -> pb::AggregateFunction {
    match f {
        AggregateFunction::Count => pb::AggregateFunction::Count,
        AggregateFunction::Sum => pb::AggregateFunction::Sum,
        AggregateFunction::Min => pb::AggregateFunction::Min,
        AggregateFunction::Max => pb::AggregateFunction::Max,
        AggregateFunction::Mean => pb::AggregateFunction::Mean,
        AggregateFunction::CountDistinct => pb::AggregateFunction::CountDistinct,
    }
}

fn aggregate_function_from_proto(field: &'static str, value: i32) -> Result<AggregateFunction> {
    Ok(match enum_value(field, value)? {
        pb::AggregateFunction::Unspecified => return Err(unspecified(field)),
        pb::AggregateFunction::Count => AggregateFunction::Count,
        pb::AggregateFunction::Sum => AggregateFunction::Sum,
        pb::AggregateFunction::Min => AggregateFunction::Min,
        pb::AggregateFunction::Max => AggregateFunction::Max,
        pb::AggregateFunction::Mean => AggregateFunction::Mean,
        pb::AggregateFunction::CountDistinct => AggregateFunction::CountDistinct,
    })
}

fn source_format_to_proto(f: SourceFormat) -> pb::SourceFormat {
    match f {
        SourceFormat::Text => pb::SourceFormat::Text,
        SourceFormat::Parquet => pb::SourceFormat::Parquet,
        SourceFormat::Csv => pb::SourceFormat::Csv,
    }
}

fn source_format_from_proto(field: &'static str, value: i32) -> Result<SourceFormat> {
    Ok(match enum_value(field, value)? {
        pb::SourceFormat::Unspecified => return Err(unspecified(field)),
        pb::SourceFormat::Text => SourceFormat::Text,
        pb::SourceFormat::Parquet => SourceFormat::Parquet,
        pb::SourceFormat::Csv => SourceFormat::Csv,
    })
}

fn aggregate_mode_to_proto(m: AggregateMode) -> pb::AggregateMode {
    match m {
        AggregateMode::Single => pb::AggregateMode::Single,
        AggregateMode::Partial => pb::AggregateMode::Partial,
        AggregateMode::Final => pb::AggregateMode::Final,
    }
}

fn aggregate_mode_from_proto(field: &'static str, value: i32) -> Result<AggregateMode> {
    Ok(match enum_value(field, value)? {
        pb::AggregateMode::Unspecified => return Err(unspecified(field)),
        pb::AggregateMode::Single => AggregateMode::Single,
        pb::AggregateMode::Partial => AggregateMode::Partial,
        pb::AggregateMode::Final => AggregateMode::Final,
    })
}

fn join_type_to_proto(t: JoinType) -> pb::JoinType {
    match t {
        JoinType::Inner => pb::JoinType::Inner,
        JoinType::Left => pb::JoinType::Left,
        JoinType::Right => pb::JoinType::Right,
        JoinType::Full => pb::JoinType::Full,
        JoinType::LeftSemi => pb::JoinType::LeftSemi,
        JoinType::LeftAnti => pb::JoinType::LeftAnti,
    }
}

fn join_type_from_proto(field: &'static str, value: i32) -> Result<JoinType> {
    Ok(match enum_value(field, value)? {
        pb::JoinType::Unspecified => return Err(unspecified(field)),
        pb::JoinType::Inner => JoinType::Inner,
        pb::JoinType::Left => JoinType::Left,
        pb::JoinType::Right => JoinType::Right,
        pb::JoinType::Full => JoinType::Full,
        pb::JoinType::LeftSemi => JoinType::LeftSemi,
        pb::JoinType::LeftAnti => JoinType::LeftAnti,
    })
}

fn join_strategy_to_proto(s: JoinStrategy) -> pb::JoinStrategy {
    match s {
        JoinStrategy::Auto => pb::JoinStrategy::Auto,
        JoinStrategy::Shuffle => pb::JoinStrategy::Shuffle,
        JoinStrategy::Broadcast => pb::JoinStrategy::Broadcast,
    }
}

fn join_strategy_from_proto(field: &'static str, value: i32) -> Result<JoinStrategy> {
    Ok(match enum_value(field, value)? {
        pb::JoinStrategy::Unspecified => return Err(unspecified(field)),
        pb::JoinStrategy::Auto => JoinStrategy::Auto,
        pb::JoinStrategy::Shuffle => JoinStrategy::Shuffle,
        pb::JoinStrategy::Broadcast => JoinStrategy::Broadcast,
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

impl From<&Expr> for pb::Expr {
    fn from(e: &Expr) -> Self {
        use pb::expr::Kind;
        let kind = match e {
            Expr::Column(c) => Kind::Column(c.clone()),
            Expr::Literal(v) => Kind::Literal(v.into()),
            Expr::Binary { left, op, right } => Kind::Binary(Box::new(pb::BinaryExpr {
                left: Some(Box::new(left.as_ref().into())),
                op: binary_op_to_proto(*op) as i32,
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
            Kind::Binary(b) => Expr::Binary {
                left: boxed_expr("binary.left", &b.left)?,
                op: binary_op_from_proto("binary.op", b.op)?,
                right: boxed_expr("binary.right", &b.right)?,
            },
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

impl From<&AggregateExpr> for pb::AggregateExpr {
    fn from(a: &AggregateExpr) -> Self {
        pb::AggregateExpr {
            function: aggregate_function_to_proto(a.function) as i32,
            input: a.input.as_ref().map(Into::into),
            name: a.name.clone(),
        }
    }
}

impl TryFrom<&pb::AggregateExpr> for AggregateExpr {
    type Error = PlanError;
    fn try_from(a: &pb::AggregateExpr) -> Result<Self> {
        Ok(AggregateExpr {
            function: aggregate_function_from_proto("aggregate.function", a.function)?,
            input: a.input.as_ref().map(Expr::try_from).transpose()?,
            name: a.name.clone(),
        })
    }
}

// ---- plans ------------------------------------------------------------------------------------

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

impl From<&PlanNode> for pb::PlanNode {
    fn from(node: &PlanNode) -> Self {
        use pb::plan_node::Node;
        let input = |n: &PlanNode| Some(Box::new(pb::PlanNode::from(n)));
        let node = match node {
            PlanNode::Scan(s) => Node::Scan(pb::ScanNode {
                format: source_format_to_proto(s.format) as i32,
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
            } => Node::Aggregate(Box::new(pb::AggregateNode {
                input: input(i),
                keys: keys.iter().map(Into::into).collect(),
                aggregates: aggregates.iter().map(Into::into).collect(),
                mode: aggregate_mode_to_proto(*mode) as i32,
            })),
            PlanNode::ShuffleRead { stage, schema } => Node::ShuffleRead(pb::ShuffleReadNode {
                stage_id: stage.0,
                schema: schema_to_bytes(schema),
            }),
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
                join_type: join_type_to_proto(*join_type) as i32,
                strategy: join_strategy_to_proto(*strategy) as i32,
            })),
            PlanNode::BroadcastRead { stage, schema } => {
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

/// CSV options; a delimiter must be one byte.
fn csv_options_from_proto(c: &pb::CsvOptions) -> Result<CsvOptions> {
    Ok(CsvOptions {
        has_header: c.has_header,
        delimiter: u8::try_from(c.delimiter).map_err(|_| PlanError::MalformedProto {
            field: "scan.csv.delimiter",
            problem: format!("is {}, not one byte", c.delimiter),
        })?,
    })
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
                let format = source_format_from_proto("scan.format", s.format)?;
                let csv = s
                    .csv
                    .as_ref()
                    .map_or(Ok(CsvOptions::default()), csv_options_from_proto)?;
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
                mode: aggregate_mode_from_proto("aggregate.mode", a.mode)?,
            },
            Node::ShuffleRead(r) => PlanNode::ShuffleRead {
                stage: StageId(r.stage_id),
                schema: schema_from_bytes(&r.schema)?,
            },
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
                join_type: join_type_from_proto("join.join_type", j.join_type)?,
                strategy: join_strategy_from_proto("join.strategy", j.strategy)?,
            },
            Node::BroadcastRead(r) => PlanNode::BroadcastRead {
                stage: StageId(r.stage_id),
                schema: schema_from_bytes(&r.schema)?,
            },
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

/// The bytes of the Arrow Flight `Ticket` that asks a worker for `ticket`'s bucket. A Flight
/// ticket is opaque bytes by protocol; this is the one place that encodes a [`pb::ShuffleTicket`]
/// into one, and [`flight_ticket_from_bytes`] the one place that decodes it.
pub fn flight_ticket_bytes(ticket: &pb::ShuffleTicket) -> Vec<u8> {
    prost::Message::encode_to_vec(ticket)
}

/// Decodes the bytes of a Flight `Ticket` written by [`flight_ticket_bytes`].
pub fn flight_ticket_from_bytes(
    bytes: &[u8],
) -> std::result::Result<pb::ShuffleTicket, prost::DecodeError> {
    <pb::ShuffleTicket as prost::Message>::decode(bytes)
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
            // As the coordinator resolved it; `Limits::check_task` refuses 0.
            batch_size: t.batch_size as usize,
        })
    }
}

/// Checks of an enum's wire conversion, for the tests of each kind of message.
#[cfg(test)]
pub(crate) mod enum_checks {
    use crate::error::Result;

    /// `LtEq` as the proto spells it: `LT_EQ`.
    fn screaming_snake(name: &str) -> String {
        let mut out = String::new();
        for (i, c) in name.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        out
    }

    /// Checks that `all` (every variant of a model enum) and the proto enum whose values are
    /// `proto_name` maps to names (`None` for a number the proto does not define) correspond
    /// one to one, by name: each variant encodes to the proto value of its own name
    /// (`{prefix}{NAME}`) and decodes back to itself, every proto value but `Unspecified` is
    /// some variant's, and decoding `Unspecified` or an unknown number is an error naming
    /// `field`.
    pub(crate) fn check_enum<T: Copy + std::fmt::Debug + PartialEq>(
        all: &[T],
        prefix: &str,
        field: &'static str,
        encode: impl Fn(T) -> i32,
        decode: impl Fn(&'static str, i32) -> Result<T>,
        proto_name: impl Fn(i32) -> Option<&'static str>,
    ) {
        let mut numbers = Vec::new();
        for &v in all {
            let n = encode(v);
            let expected = format!("{prefix}{}", screaming_snake(&format!("{v:?}")));
            assert_eq!(
                proto_name(n),
                Some(expected.as_str()),
                "{v:?} encodes as {n}"
            );
            assert_eq!(decode(field, n).unwrap(), v, "{v:?} decodes back");
            numbers.push(n);
        }
        let defined: Vec<i32> = (1..1000).filter(|&n| proto_name(n).is_some()).collect();
        numbers.sort_unstable();
        assert_eq!(
            numbers, defined,
            "every proto value of {prefix}* is a variant's, once"
        );
        assert_eq!(proto_name(0), Some(format!("{prefix}UNSPECIFIED").as_str()));
        let err = decode(field, 0).unwrap_err().to_string();
        assert!(err.contains(field) && err.contains("missing"), "{err}");
        let err = decode(field, 1000).unwrap_err().to_string();
        assert!(
            err.contains(field) && err.contains("unknown value 1000"),
            "{err}"
        );
        let err = decode(field, -1).unwrap_err().to_string();
        assert!(
            err.contains(field) && err.contains("unknown value -1"),
            "{err}"
        );
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

    use super::enum_checks::check_enum;

    /// Every variant of `$t`, through a `match` that stops compiling when one is added.
    macro_rules! all_variants {
        ($t:ident: $($v:ident),+ $(,)?) => {{
            let all = [$($t::$v),+];
            for v in all {
                match v {
                    $($t::$v)|+ => {}
                }
            }
            all
        }};
    }

    #[test]
    fn binary_ops_cross_the_wire_one_to_one() {
        let all = all_variants!(BinaryOp: Add, Sub, Mul, Div, Mod, Eq, NotEq, Lt, LtEq, Gt, GtEq, And, Or);
        check_enum(
            &all,
            "BINARY_OP_",
            "binary.op",
            |v| binary_op_to_proto(v) as i32,
            binary_op_from_proto,
            |n| pb::BinaryOp::try_from(n).ok().map(|p| p.as_str_name()),
        );
    }

    #[test]
    fn aggregate_functions_cross_the_wire_one_to_one() {
        let all = all_variants!(AggregateFunction: Count, Sum, Min, Max, Mean, CountDistinct);
        check_enum(
            &all,
            "AGGREGATE_FUNCTION_",
            "aggregate.function",
            |v| aggregate_function_to_proto(v) as i32,
            aggregate_function_from_proto,
            |n| {
                pb::AggregateFunction::try_from(n)
                    .ok()
                    .map(|p| p.as_str_name())
            },
        );
    }

    #[test]
    fn source_formats_cross_the_wire_one_to_one() {
        let all = all_variants!(SourceFormat: Text, Parquet, Csv);
        check_enum(
            &all,
            "SOURCE_FORMAT_",
            "scan.format",
            |v| source_format_to_proto(v) as i32,
            source_format_from_proto,
            |n| pb::SourceFormat::try_from(n).ok().map(|p| p.as_str_name()),
        );
    }

    #[test]
    fn aggregate_modes_cross_the_wire_one_to_one() {
        let all = all_variants!(AggregateMode: Single, Partial, Final);
        check_enum(
            &all,
            "AGGREGATE_MODE_",
            "aggregate.mode",
            |v| aggregate_mode_to_proto(v) as i32,
            aggregate_mode_from_proto,
            |n| pb::AggregateMode::try_from(n).ok().map(|p| p.as_str_name()),
        );
    }

    #[test]
    fn join_types_cross_the_wire_one_to_one() {
        let all = all_variants!(JoinType: Inner, Left, Right, Full, LeftSemi, LeftAnti);
        check_enum(
            &all,
            "JOIN_TYPE_",
            "join.join_type",
            |v| join_type_to_proto(v) as i32,
            join_type_from_proto,
            |n| pb::JoinType::try_from(n).ok().map(|p| p.as_str_name()),
        );
    }

    #[test]
    fn join_strategies_cross_the_wire_one_to_one() {
        let all = all_variants!(JoinStrategy: Auto, Shuffle, Broadcast);
        check_enum(
            &all,
            "JOIN_STRATEGY_",
            "join.strategy",
            |v| join_strategy_to_proto(v) as i32,
            join_strategy_from_proto,
            |n| pb::JoinStrategy::try_from(n).ok().map(|p| p.as_str_name()),
        );
    }

    /// A scan node of one CSV file with `csv`.
    fn csv_scan(csv: pb::CsvOptions) -> pb::PlanNode {
        let schema = Schema::new(vec![Field::new("a", DataType::Int64, true)]);
        pb::PlanNode {
            node: Some(pb::plan_node::Node::Scan(pb::ScanNode {
                format: pb::SourceFormat::Csv as i32,
                files: vec![],
                schema: schema_to_bytes(&schema),
                csv: Some(csv),
            })),
        }
    }

    #[test]
    fn a_csv_delimiter_must_be_one_byte() {
        for (delimiter, byte) in [(u32::from(b'|'), b'|'), (0, 0), (255, 255)] {
            let scan = PlanNode::try_from(&csv_scan(pb::CsvOptions {
                has_header: true,
                delimiter,
            }))
            .unwrap();
            let PlanNode::Scan(s) = scan else {
                panic!("not a scan: {scan:?}")
            };
            assert_eq!(s.csv.delimiter, byte);
            assert!(s.csv.has_header);
        }
        for delimiter in [256, 0x1_002c, u32::MAX] {
            let err = PlanNode::try_from(&csv_scan(pb::CsvOptions {
                has_header: false,
                delimiter,
            }))
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("scan.csv.delimiter") && err.contains(&delimiter.to_string()),
                "{err}"
            );
        }
    }

    #[test]
    fn an_unspecified_enum_inside_a_plan_is_refused_by_name() {
        let mut node = pb::PlanNode::from(&PlanNode::Join {
            left: Box::new(PlanNode::Scan(ScanNode {
                format: SourceFormat::Text,
                files: vec![],
                schema: ScanNode::text_schema(),
                csv: CsvOptions::default(),
            })),
            right: Box::new(PlanNode::Scan(ScanNode {
                format: SourceFormat::Text,
                files: vec![],
                schema: ScanNode::text_schema(),
                csv: CsvOptions::default(),
            })),
            left_keys: vec![col("line")],
            right_keys: vec![col("line")],
            join_type: JoinType::Inner,
            strategy: JoinStrategy::Auto,
        });
        let Some(pb::plan_node::Node::Join(j)) = node.node.as_mut() else {
            panic!("not a join")
        };
        j.strategy = 0;
        let err = PlanNode::try_from(&node).unwrap_err().to_string();
        assert!(err.contains("join.strategy is missing"), "{err}");
    }

    #[test]
    fn a_task_carries_its_batch_size_as_resolved() {
        let task = TaskDefinition {
            attempt: TaskAttempt {
                job: JobId::parse("3f2b8c1e-5d4a-4e2f-9b7c-0a1d2e3f4a5b").unwrap(),
                stage: StageId(2),
                partition: 3,
                attempt: 1,
            },
            plan: PlanNode::ShuffleRead {
                stage: StageId(1),
                schema: ScanNode::text_schema(),
            },
            output: StageOutput::Collect,
            splits: vec![],
            inputs: vec![],
            batch_size: 97,
        };
        let wire = pb::TaskDefinition::from(&task);
        assert_eq!(wire.batch_size, 97);
        let back = TaskDefinition::try_from(&wire).unwrap();
        assert_eq!(back.batch_size, 97);
        // 0 is not "the default" any more: it decodes as 0, which the limits refuse.
        let zero = TaskDefinition::try_from(&pb::TaskDefinition {
            batch_size: 0,
            ..wire
        })
        .unwrap();
        assert_eq!(zero.batch_size, 0);
        let err = crate::Limits::default().check_task(&zero).unwrap_err();
        assert!(
            err.to_string().contains("batch_size must be at least 1"),
            "{err}"
        );
    }

    #[test]
    fn a_shuffle_ticket_survives_the_flight_ticket_bytes() {
        let ticket = pb::ShuffleTicket {
            job_id: "3f2b8c1e-5d4a-4e2f-9b7c-0a1d2e3f4a5b".into(),
            stage_id: 4,
            map_partition: 7,
            bucket: 2,
            grant: Some(pb::ReadGrant {
                job_id: "3f2b8c1e-5d4a-4e2f-9b7c-0a1d2e3f4a5b".into(),
                stage_id: 4,
                expires_at_ms: 123,
                signature: vec![1, 2, 3],
            }),
        };
        let bytes = flight_ticket_bytes(&ticket);
        assert_eq!(flight_ticket_from_bytes(&bytes).unwrap(), ticket);
        assert!(flight_ticket_from_bytes(&[0xff, 0xff, 0xff]).is_err());
    }
}
