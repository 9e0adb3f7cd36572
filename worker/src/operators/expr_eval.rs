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
use arrow::compute::kernels::{boolean, cmp, numeric};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use quiver_plan::types::binary_types;
use quiver_plan::{BinaryOp, Expr, PlanError, ScalarFunction, ScalarValue};

use super::text_functions;
use crate::error::Result;
use crate::functions::FunctionRegistry;

/// A value computed for every row: a full column, or one value standing for all rows.
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

/// Keeps the rows of `batch` for which `predicate` is true (NULL counts as false).
pub fn filter(
    batch: &RecordBatch,
    predicate: &Expr,
    functions: &FunctionRegistry,
) -> Result<RecordBatch> {
    let mask = evaluate(predicate, batch, functions)?;
    let mask = match mask.data_type() {
        DataType::Boolean => mask.as_boolean().clone(),
        DataType::Null => BooleanArray::new_null(batch.num_rows()),
        other => {
            return Err(PlanError::TypeMismatch {
                expr: predicate.to_string(),
                message: format!("filter predicate must be boolean, got {other}"),
            }
            .into());
        }
    };
    Ok(filter_record_batch(batch, &mask)?)
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
            let arg = args.first().ok_or(PlanError::WrongArgumentCount {
                function: function.name(),
                expected: 1,
                got: 0,
            })?;
            let arg = eval(arg, batch, functions)?;
            let (array, scalar) = match arg {
                Value::Array(a) => (a, false),
                Value::Scalar(s) => (s, true),
            };
            let array = if array.data_type() == &DataType::Null {
                cast(&array, &DataType::Utf8)?
            } else {
                array
            };
            let out = match function {
                ScalarFunction::Lower => text_functions::lower(&array)?,
                ScalarFunction::Upper => text_functions::upper(&array)?,
                ScalarFunction::Length => text_functions::length(&array)?,
                ScalarFunction::Words => text_functions::words(&array)?,
            };
            if scalar {
                Value::Scalar(out)
            } else {
                Value::Array(out)
            }
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
    let (lt, rt) = (value_type(&l), value_type(&r));
    let types = binary_types(op, &lt, &rt).ok_or_else(|| PlanError::TypeMismatch {
        expr: expr.to_string(),
        message: format!("operator {} cannot combine {lt} and {rt}", op.symbol()),
    })?;
    let both_scalar = matches!((&l, &r), (Value::Scalar(_), Value::Scalar(_)));
    let l = l.cast_to(&types.operand)?;
    let r = r.cast_to(&types.operand)?;
    let rows = if both_scalar { 1 } else { batch.num_rows() };
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

fn value_type(v: &Value) -> DataType {
    match v {
        Value::Array(a) | Value::Scalar(a) => a.data_type().clone(),
    }
}
