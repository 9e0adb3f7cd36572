//! Evaluates a plan [`Expr`] over a [`RecordBatch`] with Arrow kernels.
//!
//! Operand types follow `quiver_plan::types`, the same rules the planner used to accept the
//! expression, so evaluation never disagrees with validation. Literals stay scalars (Arrow
//! `Scalar` datums) inside binary operators and are only expanded where a full column is needed.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Datum, Float64Array, Int64Array, NullArray, Scalar,
    StringArray, new_null_array,
};
use arrow::compute::kernels::comparison;
use arrow::compute::kernels::substring::substring_by_char;
use arrow::compute::kernels::temporal::{DatePart, date_part};
use arrow::compute::kernels::zip::zip;
use arrow::compute::kernels::{boolean, cmp, numeric};
use arrow::compute::{CastOptions, cast_with_options, prep_null_mask_filter};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use quiver_plan::types::{binary_types, common_type};
use quiver_plan::{BinaryOp, Expr, PlanError, ScalarFunction, ScalarValue};

use super::text_functions;
use crate::error::Result;
use crate::functions::FunctionRegistry;

/// A value computed for every row: a full column, or one value standing for all rows.
#[derive(Clone)]
enum Value {
    Array(ArrayRef),
    Scalar(ArrayRef),
}

impl Value {
    fn into_array(self, rows: usize) -> Result<ArrayRef> {
        match self {
            Value::Array(a) => Ok(a),
            Value::Scalar(s) => expand_scalar(&s, rows),
        }
    }

    fn cast_to(self, t: &DataType) -> Result<Value> {
        let conv = |a: ArrayRef| -> Result<ArrayRef> {
            Ok(if a.data_type() == t { a } else { cast(&a, t)? })
        };
        Ok(match self {
            Value::Array(a) => Value::Array(conv(a)?),
            Value::Scalar(s) => Value::Scalar(conv(s)?),
        })
    }

    fn datum(&self) -> Box<dyn Datum + '_> {
        match self {
            Value::Array(a) => Box::new(a),
            Value::Scalar(s) => Box::new(Scalar::new(s.clone())),
        }
    }
}

/// A one-element array holding `v`.
pub fn scalar_array(v: &ScalarValue) -> ArrayRef {
    match v {
        ScalarValue::Null => Arc::new(NullArray::new(1)),
        ScalarValue::Boolean(b) => Arc::new(BooleanArray::from(vec![*b])),
        ScalarValue::Int64(i) => Arc::new(Int64Array::from(vec![*i])),
        ScalarValue::Float64(x) => Arc::new(Float64Array::from(vec![*x])),
        ScalarValue::Utf8(s) => Arc::new(StringArray::from(vec![s.as_str()])),
    }
}

fn expand_scalar(s: &ArrayRef, rows: usize) -> Result<ArrayRef> {
    if s.is_null(0) {
        return Ok(new_null_array(s.data_type(), rows));
    }
    let indices = arrow::array::UInt32Array::from(vec![0u32; rows]);
    Ok(arrow::compute::take(s.as_ref(), &indices, None)?)
}

/// Evaluates `expr` over `batch`, giving one value per row.
pub fn evaluate(
    expr: &Expr,
    batch: &RecordBatch,
    functions: &FunctionRegistry,
) -> Result<ArrayRef> {
    eval(expr, batch, functions)?.into_array(batch.num_rows())
}

/// Evaluates each of `exprs` over `batch`, computing a subexpression they share once (TPC-H
/// Q1's `price * (1 - discount)` appears alone and inside `price * (1 - discount) * (1 +
/// tax)`): binary operators are remembered, everything else is evaluated as it comes.
pub fn evaluate_shared(
    exprs: &[&Expr],
    batch: &RecordBatch,
    functions: &FunctionRegistry,
) -> Result<Vec<ArrayRef>> {
    let mut seen = Vec::new();
    exprs
        .iter()
        .map(|e| eval_shared(e, batch, functions, &mut seen)?.into_array(batch.num_rows()))
        .collect()
}

fn eval_shared<'e>(
    expr: &'e Expr,
    batch: &RecordBatch,
    functions: &FunctionRegistry,
    seen: &mut Vec<(&'e Expr, Value)>,
) -> Result<Value> {
    match expr {
        Expr::Alias { expr, .. } => eval_shared(expr, batch, functions, seen),
        Expr::Binary { left, op, right } => {
            if let Some((_, v)) = seen.iter().find(|(e, _)| *e == expr) {
                return Ok(v.clone());
            }
            let l = eval_shared(left, batch, functions, seen)?;
            let r = eval_shared(right, batch, functions, seen)?;
            let v = binary_values(expr, l, *op, r, batch.num_rows())?;
            seen.push((expr, v.clone()));
            Ok(v)
        }
        other => eval(other, batch, functions),
    }
}

/// Keeps the rows of `batch` for which `predicate` is true (NULL counts as false).
pub fn filter(
    batch: &RecordBatch,
    predicate: &Expr,
    functions: &FunctionRegistry,
) -> Result<RecordBatch> {
    let mask = predicate_mask(batch, predicate, functions)?;
    Ok(filter_record_batch(batch, &mask)?)
}

/// Which rows of `batch` pass `predicate` (NULL means no), without copying them out.
pub fn predicate_mask(
    batch: &RecordBatch,
    predicate: &Expr,
    functions: &FunctionRegistry,
) -> Result<BooleanArray> {
    let mask = evaluate(predicate, batch, functions)?;
    Ok(match mask.data_type() {
        DataType::Boolean => mask.as_boolean().clone(),
        DataType::Null => BooleanArray::new_null(batch.num_rows()),
        other => {
            return Err(PlanError::TypeMismatch {
                expr: predicate.to_string(),
                message: format!("filter predicate must be boolean, got {other}"),
            }
            .into());
        }
    })
}

fn eval(expr: &Expr, batch: &RecordBatch, functions: &FunctionRegistry) -> Result<Value> {
    Ok(match expr {
        Expr::Column(name) => {
            let column = batch
                .column_by_name(name)
                .ok_or_else(|| PlanError::UnknownColumn {
                    column: name.clone(),
                    context: "evaluation".into(),
                    available: batch
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect(),
                })?;
            Value::Array(column.clone())
        }
        Expr::Literal(v) => Value::Scalar(scalar_array(v)),
        Expr::Alias { expr, .. } => eval(expr, batch, functions)?,
        Expr::Not(inner) => {
            let v = eval(inner, batch, functions)?.cast_to(&DataType::Boolean)?;
            let a = v.into_array(batch.num_rows())?;
            Value::Array(Arc::new(boolean::not(a.as_boolean())?))
        }
        Expr::Binary { left, op, right } => binary(expr, left, *op, right, batch, functions)?,
        Expr::Udf { name, args, .. } => {
            let rows = batch.num_rows();
            let args = args
                .iter()
                .map(|a| eval(a, batch, functions)?.into_array(rows))
                .collect::<Result<Vec<_>>>()?;
            Value::Array(functions.eval_scalar(name, &args, rows)?)
        }
        Expr::Function { function, args } => {
            let values = args
                .iter()
                .map(|a| eval(a, batch, functions))
                .collect::<Result<Vec<_>>>()?;
            let all_scalar = values.iter().all(|v| matches!(v, Value::Scalar(_)));
            let rows = if all_scalar { 1 } else { batch.num_rows() };
            let out = builtin(*function, args, values, rows)?;
            if all_scalar {
                Value::Scalar(out)
            } else {
                Value::Array(out)
            }
        }
        Expr::Cast { expr: inner, to } => {
            let options = CastOptions {
                safe: false,
                ..Default::default()
            };
            let convert = |a: &ArrayRef| -> Result<ArrayRef> {
                cast_with_options(a, to, &options).map_err(|e| {
                    PlanError::TypeMismatch {
                        expr: expr.to_string(),
                        message: e.to_string(),
                    }
                    .into()
                })
            };
            match eval(inner, batch, functions)? {
                Value::Array(a) => Value::Array(convert(&a)?),
                Value::Scalar(a) => Value::Scalar(convert(&a)?),
            }
        }
        Expr::Case {
            branches,
            otherwise,
        } => {
            let rows = batch.num_rows();
            let result_type = expr.data_type(&batch.schema(), "case")?;
            let mut result = match otherwise {
                Some(o) => eval(o, batch, functions)?
                    .cast_to(&result_type)?
                    .into_array(rows)?,
                None => new_null_array(&result_type, rows),
            };
            // The first matching branch wins: apply them from the last to the first.
            for (condition, value) in branches.iter().rev() {
                let mask = eval(condition, batch, functions)?
                    .cast_to(&DataType::Boolean)?
                    .into_array(rows)?;
                // NULL conditions count as false.
                let mask = prep_null_mask_filter(mask.as_boolean());
                let value = eval(value, batch, functions)?.cast_to(&result_type)?;
                result = zip(&mask, value.datum().as_ref(), &result)?;
            }
            Value::Array(result)
        }
    })
}

fn binary(
    expr: &Expr,
    left: &Expr,
    op: BinaryOp,
    right: &Expr,
    batch: &RecordBatch,
    functions: &FunctionRegistry,
) -> Result<Value> {
    let l = eval(left, batch, functions)?;
    let r = eval(right, batch, functions)?;
    binary_values(expr, l, op, r, batch.num_rows())
}

/// `l op r`, over values already evaluated for `rows` rows (`expr` names it in an error).
fn binary_values(expr: &Expr, l: Value, op: BinaryOp, r: Value, rows: usize) -> Result<Value> {
    let (lt, rt) = (value_type(&l), value_type(&r));
    let types = binary_types(op, &lt, &rt).ok_or_else(|| PlanError::TypeMismatch {
        expr: expr.to_string(),
        message: format!("operator {} cannot combine {lt} and {rt}", op.symbol()),
    })?;
    let both_scalar = matches!((&l, &r), (Value::Scalar(_), Value::Scalar(_)));
    let l = l.cast_to(&types.operand)?;
    let r = r.cast_to(&types.operand)?;
    let rows = if both_scalar { 1 } else { rows };
    let out: ArrayRef = match op {
        BinaryOp::And | BinaryOp::Or => {
            let la = l.into_array(rows)?;
            let ra = r.into_array(rows)?;
            let (la, ra) = (la.as_boolean(), ra.as_boolean());
            Arc::new(if op == BinaryOp::And {
                boolean::and_kleene(la, ra)?
            } else {
                boolean::or_kleene(la, ra)?
            })
        }
        _ => {
            let (ld, rd) = (l.datum(), r.datum());
            let (ld, rd) = (ld.as_ref(), rd.as_ref());
            match op {
                BinaryOp::Add => numeric::add(ld, rd)?,
                BinaryOp::Sub => numeric::sub(ld, rd)?,
                BinaryOp::Mul => numeric::mul(ld, rd)?,
                BinaryOp::Div => numeric::div(ld, rd)?,
                BinaryOp::Mod => numeric::rem(ld, rd)?,
                BinaryOp::Eq => Arc::new(cmp::eq(ld, rd)?),
                BinaryOp::NotEq => Arc::new(cmp::neq(ld, rd)?),
                BinaryOp::Lt => Arc::new(cmp::lt(ld, rd)?),
                BinaryOp::LtEq => Arc::new(cmp::lt_eq(ld, rd)?),
                BinaryOp::Gt => Arc::new(cmp::gt(ld, rd)?),
                BinaryOp::GtEq => Arc::new(cmp::gt_eq(ld, rd)?),
                BinaryOp::And | BinaryOp::Or => unreachable!("handled above"),
            }
        }
    };
    Ok(if both_scalar {
        Value::Scalar(out)
    } else {
        Value::Array(out)
    })
}

/// A built-in function over evaluated arguments (`args` are their expressions, for the
/// functions that need literals).
fn builtin(
    function: ScalarFunction,
    args: &[Expr],
    values: Vec<Value>,
    rows: usize,
) -> Result<ArrayRef> {
    let string_arg = |i: usize| -> Result<ArrayRef> {
        let a = values[i].clone().into_array(rows)?;
        Ok(if a.data_type() == &DataType::Utf8 {
            a
        } else {
            cast(&a, &DataType::Utf8)?
        })
    };
    let literal_int = |i: usize| match args.get(i) {
        Some(Expr::Literal(ScalarValue::Int64(v))) => Some(*v),
        _ => None,
    };
    Ok(match function {
        ScalarFunction::Lower => text_functions::lower(&string_arg(0)?)?,
        ScalarFunction::Upper => text_functions::upper(&string_arg(0)?)?,
        ScalarFunction::Length => text_functions::length(&string_arg(0)?)?,
        ScalarFunction::Words => text_functions::words(&string_arg(0)?)?,
        ScalarFunction::Contains | ScalarFunction::StartsWith | ScalarFunction::EndsWith => {
            let s = values[0].clone().cast_to(&DataType::Utf8)?;
            let p = values[1].clone().cast_to(&DataType::Utf8)?;
            let (s, p) = (s.datum(), p.datum());
            let out = match function {
                ScalarFunction::Contains => comparison::contains(s.as_ref(), p.as_ref())?,
                ScalarFunction::StartsWith => comparison::starts_with(s.as_ref(), p.as_ref())?,
                _ => comparison::ends_with(s.as_ref(), p.as_ref())?,
            };
            Arc::new(out)
        }
        ScalarFunction::RegexpLike => {
            let pattern = match args.get(1) {
                Some(Expr::Literal(ScalarValue::Utf8(p))) => p.clone(),
                _ => {
                    return Err(PlanError::InvalidPlan(
                        "regexp_like needs a literal pattern".into(),
                    )
                    .into());
                }
            };
            let s = string_arg(0)?;
            Arc::new(super::regex_match::regexp_is_match(
                s.as_string::<i32>(),
                &pattern,
            )?)
        }
        ScalarFunction::Substring => {
            let s = string_arg(0)?;
            // SQL counts from 1; Arrow from 0.
            let start = literal_int(1).unwrap_or(1);
            let start = if start > 0 { start - 1 } else { start };
            let length = literal_int(2).map(|l| l.max(0) as u64);
            Arc::new(substring_by_char(s.as_string::<i32>(), start, length)?)
        }
        ScalarFunction::Year | ScalarFunction::Month => {
            let a = values[0].clone().into_array(rows)?;
            if a.data_type() == &DataType::Null {
                return Ok(new_null_array(&DataType::Int64, rows));
            }
            let part = if function == ScalarFunction::Year {
                DatePart::Year
            } else {
                DatePart::Month
            };
            cast(&date_part(a.as_ref(), part)?, &DataType::Int64)?
        }
        ScalarFunction::IsNull | ScalarFunction::IsNotNull => {
            let a = values[0].clone().into_array(rows)?;
            let nulls = if a.data_type() == &DataType::Null {
                BooleanArray::from(vec![true; rows])
            } else {
                boolean::is_null(a.as_ref())?
            };
            if function == ScalarFunction::IsNull {
                Arc::new(nulls)
            } else {
                Arc::new(boolean::not(&nulls)?)
            }
        }
        ScalarFunction::Coalesce => {
            let types: Vec<DataType> = values.iter().map(value_type).collect();
            let result_type = types
                .iter()
                .try_fold(DataType::Null, |acc, t| common_type(&acc, t))
                .ok_or_else(|| PlanError::InvalidPlan("coalesce of incompatible types".into()))?;
            let mut iter = values.into_iter().rev();
            let mut result = match iter.next() {
                Some(last) => last.cast_to(&result_type)?.into_array(rows)?,
                None => new_null_array(&result_type, rows),
            };
            for v in iter {
                let v = v.cast_to(&result_type)?.into_array(rows)?;
                let present = boolean::is_not_null(v.as_ref())?;
                result = zip(&present, &v, &result)?;
            }
            result
        }
    })
}

fn value_type(v: &Value) -> DataType {
    match v {
        Value::Array(a) | Value::Scalar(a) => a.data_type().clone(),
    }
}
