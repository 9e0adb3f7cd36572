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
        // A date compared with a string literal: the string is read as a date.
        (a, b) if a.is_temporal() && is_string(b) => Some(a.clone()),
        (a, b) if is_string(a) && b.is_temporal() => Some(b.clone()),
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

/// The result type of a built-in function over arguments of these types, or why it does not
/// apply. `args` are the argument expressions (some functions need literals).
pub fn function_type(
    function: ScalarFunction,
    types: &[DataType],
    args: &[crate::Expr],
) -> Result<DataType, String> {
    let stringish = |t: &DataType| is_string(t) || *t == DataType::Null;
    let need_strings = |n: usize| -> Result<(), String> {
        match types.iter().take(n).find(|t| !stringish(t)) {
            Some(t) => Err(format!("{} takes strings, got {t}", function.name())),
            None => Ok(()),
        }
    };
    let literal_int = |i: usize| {
        matches!(
            args.get(i),
            Some(crate::Expr::Literal(crate::ScalarValue::Int64(_)))
        )
    };
    Ok(match function {
        ScalarFunction::Lower | ScalarFunction::Upper => {
            need_strings(1)?;
            DataType::Utf8
        }
        ScalarFunction::Length => {
            need_strings(1)?;
            DataType::Int64
        }
        ScalarFunction::Words => {
            need_strings(1)?;
            words_type()
        }
        ScalarFunction::Contains | ScalarFunction::StartsWith | ScalarFunction::EndsWith => {
            need_strings(2)?;
            DataType::Boolean
        }
        ScalarFunction::RegexpLike => {
            need_strings(1)?;
            if !matches!(
                args.get(1),
                Some(crate::Expr::Literal(crate::ScalarValue::Utf8(_)))
            ) {
                return Err("regexp_like needs a literal pattern".into());
            }
            DataType::Boolean
        }
        ScalarFunction::Substring => {
            need_strings(1)?;
            if !(1..args.len()).all(literal_int) {
                return Err("substring needs literal integer start and length".into());
            }
            DataType::Utf8
        }
        ScalarFunction::Year | ScalarFunction::Month => {
            if !(types[0].is_temporal() || types[0] == DataType::Null) {
                return Err(format!(
                    "{} takes a date or timestamp, got {}",
                    function.name(),
                    types[0]
                ));
            }
            DataType::Int64
        }
        ScalarFunction::IsNull | ScalarFunction::IsNotNull => DataType::Boolean,
        ScalarFunction::Coalesce => {
            let mut result = DataType::Null;
            for t in types {
                result = common_type(&result, t)
                    .ok_or_else(|| format!("coalesce cannot combine {result} and {t}"))?;
            }
            result
        }
    })
}

/// `List<Utf8>`, the type [`ScalarFunction::Words`] produces.
pub fn words_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}
