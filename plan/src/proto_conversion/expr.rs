//! Wire conversion of scalars, expressions, aggregate expressions and sort keys, with their
//! enums (`BinaryOp`, `AggregateFunction`). Plan nodes and task messages are not here.

use arrow::datatypes::Schema;
use quiver_proto::v1 as pb;

use super::{enum_value, required, schema_from_bytes, schema_to_bytes, unspecified};
use crate::aggregate::{AggregateExpr, AggregateFunction};
use crate::error::{PlanError, Result};
use crate::expr::{BinaryOp, Expr, ScalarFunction, ScalarValue};
use crate::sort::SortExpr;

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

pub(super) fn exprs_from(exprs: &[pb::Expr]) -> Result<Vec<Expr>> {
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

pub(super) fn sort_exprs_from(order: &[pb::SortExpr]) -> Result<Vec<SortExpr>> {
    order.iter().map(SortExpr::try_from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto_conversion::enum_checks::{all_variants, check_enum};

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
}
