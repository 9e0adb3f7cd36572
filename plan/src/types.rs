//! The type rules of expressions, shared by validation (here) and evaluation (in the worker),
//! so that what the planner accepts is exactly what the worker computes.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field};

use crate::expr::{BinaryOp, ScalarFunction};

/// How a binary operator is computed: both operands are cast to `operand`, and the result has
/// type `result`.
#[derive(Clone, Debug, PartialEq)]
pub struct BinaryTypes {
    pub operand: DataType,
    pub result: DataType,
}

/// Is `t` an integer or floating-point type?
pub fn is_numeric(t: &DataType) -> bool {
    t.is_integer() || t.is_floating()
}

/// Is `t` a string type?
pub fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// The common type two operands are cast to before a comparison or arithmetic: integers
/// widen to Int64, any float makes Float64, strings become Utf8, equal types stay as they are,
/// and NULL takes the other side's type.
pub fn common_type(l: &DataType, r: &DataType) -> Option<DataType> {
    match (l, r) {
        (DataType::Null, DataType::Null) => Some(DataType::Null),
        (DataType::Null, other) | (other, DataType::Null) => common_type(other, other),
        (a, b) if is_numeric(a) && is_numeric(b) => {
            if a.is_floating() || b.is_floating() {
                Some(DataType::Float64)
            } else {
                Some(DataType::Int64)
            }
        }
        (a, b) if is_string(a) && is_string(b) => Some(DataType::Utf8),
        (a, b) if a == b => Some(a.clone()),
        _ => None,
    }
}

/// Operand and result types of `l op r`, or `None` where the operator does not apply.
pub fn binary_types(op: BinaryOp, l: &DataType, r: &DataType) -> Option<BinaryTypes> {
    if op.is_arithmetic() {
        let operand = common_type(l, r)?;
        if !(is_numeric(&operand) || operand == DataType::Null) {
            return None;
        }
        let operand = if op == BinaryOp::Div || operand == DataType::Null {
            DataType::Float64
        } else {
            operand
        };
        Some(BinaryTypes {
            result: operand.clone(),
            operand,
        })
    } else if op.is_comparison() {
        let operand = common_type(l, r)?;
        Some(BinaryTypes {
            operand,
            result: DataType::Boolean,
        })
    } else {
        let boolish = |t: &DataType| matches!(t, DataType::Boolean | DataType::Null);
        (boolish(l) && boolish(r)).then_some(BinaryTypes {
            operand: DataType::Boolean,
            result: DataType::Boolean,
        })
    }
}

/// The result type of a built-in function applied to an argument of type `arg`.
pub fn function_type(function: ScalarFunction, arg: &DataType) -> Option<DataType> {
    if !(is_string(arg) || arg == &DataType::Null) {
        return None;
    }
    Some(match function {
        ScalarFunction::Lower | ScalarFunction::Upper => DataType::Utf8,
        ScalarFunction::Length => DataType::Int64,
        ScalarFunction::Words => words_type(),
    })
}

/// `List<Utf8>`, the type [`ScalarFunction::Words`] produces.
pub fn words_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}
