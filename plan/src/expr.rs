//! Scalar expressions: what `filter`, `select` and `with_column` compute per row.
//!
//! Expressions are plain data. They are type-checked against a schema here (see
//! [`Expr::data_type`]) and evaluated over Arrow arrays by the worker.

use std::fmt;
use std::ops;

use arrow::datatypes::{DataType, Field, Schema};

use crate::error::{PlanError, Result};
use crate::types;

/// A constant.
#[derive(Clone, Debug, PartialEq)]
pub enum ScalarValue {
    Null,
    Boolean(bool),
    Int64(i64),
    Float64(f64),
    Utf8(String),
}

impl ScalarValue {
    /// The Arrow type of this constant.
    pub fn data_type(&self) -> DataType {
        match self {
            ScalarValue::Null => DataType::Null,
            ScalarValue::Boolean(_) => DataType::Boolean,
            ScalarValue::Int64(_) => DataType::Int64,
            ScalarValue::Float64(_) => DataType::Float64,
            ScalarValue::Utf8(_) => DataType::Utf8,
        }
    }
}

macro_rules! scalar_from {
    ($($t:ty => $variant:ident via $conv:expr),* $(,)?) => {
        $(impl From<$t> for ScalarValue {
            fn from(v: $t) -> Self {
                ScalarValue::$variant($conv(v))
            }
        })*
    };
}

scalar_from! {
    bool => Boolean via std::convert::identity,
    i32 => Int64 via i64::from,
    i64 => Int64 via std::convert::identity,
    u32 => Int64 via i64::from,
    f64 => Float64 via std::convert::identity,
    f32 => Float64 via f64::from,
    String => Utf8 via std::convert::identity,
    &str => Utf8 via str::to_string,
}

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    /// Always produces Float64, also for integers (as in Spark and Polars).
    Div,
    Mod,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
}

impl BinaryOp {
    /// The operator as written in SQL.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
        }
    }

    /// Arithmetic operators: `+ - * / %`.
    pub fn is_arithmetic(self) -> bool {
        matches!(
            self,
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod
        )
    }

    /// Comparison operators: `= != < <= > >=`.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq
                | BinaryOp::NotEq
                | BinaryOp::Lt
                | BinaryOp::LtEq
                | BinaryOp::Gt
                | BinaryOp::GtEq
        )
    }
}

/// A built-in scalar function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarFunction {
    /// Unicode lowercase of a string.
    Lower,
    /// Unicode uppercase of a string.
    Upper,
    /// Number of characters of a string.
    Length,
    /// Splits a string into words: maximal runs of Unicode alphanumeric characters. Returns a
    /// list of strings; `explode` turns it into one row per word.
    Words,
    /// `contains(s, pattern)`: whether `s` contains `pattern`.
    Contains,
    /// `starts_with(s, prefix)`.
    StartsWith,
    /// `ends_with(s, suffix)`.
    EndsWith,
    /// `regexp_like(s, pattern)`: whether the regular expression (a literal) matches.
    RegexpLike,
    /// `substring(s, start[, length])`: characters from 1-based `start` (literals).
    Substring,
    /// Year of a date or timestamp.
    Year,
    /// Month (1-12) of a date or timestamp.
    Month,
    /// Whether the value is NULL.
    IsNull,
    /// Whether the value is not NULL.
    IsNotNull,
    /// The first argument that is not NULL.
    Coalesce,
}

impl ScalarFunction {
    /// Every built-in function.
    pub const ALL: [ScalarFunction; 14] = [
        ScalarFunction::Lower,
        ScalarFunction::Upper,
        ScalarFunction::Length,
        ScalarFunction::Words,
        ScalarFunction::Contains,
        ScalarFunction::StartsWith,
        ScalarFunction::EndsWith,
        ScalarFunction::RegexpLike,
        ScalarFunction::Substring,
        ScalarFunction::Year,
        ScalarFunction::Month,
        ScalarFunction::IsNull,
        ScalarFunction::IsNotNull,
        ScalarFunction::Coalesce,
    ];

    /// The name a plan uses for the function.
    pub fn name(self) -> &'static str {
        match self {
            ScalarFunction::Lower => "lower",
            ScalarFunction::Upper => "upper",
            ScalarFunction::Length => "length",
            ScalarFunction::Words => "words",
            ScalarFunction::Contains => "contains",
            ScalarFunction::StartsWith => "starts_with",
            ScalarFunction::EndsWith => "ends_with",
            ScalarFunction::RegexpLike => "regexp_like",
            ScalarFunction::Substring => "substring",
            ScalarFunction::Year => "year",
            ScalarFunction::Month => "month",
            ScalarFunction::IsNull => "is_null",
            ScalarFunction::IsNotNull => "is_not_null",
            ScalarFunction::Coalesce => "coalesce",
        }
    }

    /// Looks a function up by name.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| PlanError::UnknownFunction {
                name: name.to_string(),
                known: Self::ALL.iter().map(|f| f.name()).collect(),
            })
    }

    /// The smallest and largest number of arguments.
    pub fn arity(self) -> (usize, usize) {
        match self {
            ScalarFunction::Contains
            | ScalarFunction::StartsWith
            | ScalarFunction::EndsWith
            | ScalarFunction::RegexpLike => (2, 2),
            ScalarFunction::Substring => (2, 3),
            ScalarFunction::Coalesce => (1, usize::MAX),
            _ => (1, 1),
        }
    }
}

/// A scalar expression over the columns of one row.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Column(String),
    Literal(ScalarValue),
    Binary {
        left: Box<Expr>,
        op: BinaryOp,
        right: Box<Expr>,
    },
    Not(Box<Expr>),
    Function {
        function: ScalarFunction,
        args: Vec<Expr>,
    },
    Alias {
        expr: Box<Expr>,
        name: String,
    },
    /// Conversion to another type; a value that cannot be converted is an error.
    Cast {
        expr: Box<Expr>,
        to: DataType,
    },
    /// `CASE WHEN c1 THEN v1 ... ELSE otherwise END`.
    Case {
        branches: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    /// A user function registered by name on the workers, applied row by row.
    Udf {
        name: String,
        args: Vec<Expr>,
        return_type: DataType,
    },
}

/// A reference to a column by name.
pub fn col(name: impl Into<String>) -> Expr {
    Expr::Column(name.into())
}

/// A constant: `lit(3)`, `lit("a")`, `lit(true)`, `lit(2.5)`.
pub fn lit(value: impl Into<ScalarValue>) -> Expr {
    Expr::Literal(value.into())
}

fn call(function: ScalarFunction, arg: Expr) -> Expr {
    Expr::Function {
        function,
        args: vec![arg],
    }
}

/// Unicode lowercase of a string expression.
pub fn lower(e: Expr) -> Expr {
    call(ScalarFunction::Lower, e)
}

/// Unicode uppercase of a string expression.
pub fn upper(e: Expr) -> Expr {
    call(ScalarFunction::Upper, e)
}

/// Number of characters of a string expression.
pub fn length(e: Expr) -> Expr {
    call(ScalarFunction::Length, e)
}

/// The words of a string: maximal runs of Unicode alphanumeric characters, as a list.
pub fn words(e: Expr) -> Expr {
    call(ScalarFunction::Words, e)
}

fn call_n(function: ScalarFunction, args: Vec<Expr>) -> Expr {
    Expr::Function { function, args }
}

/// Whether string `s` contains `pattern`.
pub fn contains(s: Expr, pattern: Expr) -> Expr {
    call_n(ScalarFunction::Contains, vec![s, pattern])
}

/// Whether string `s` starts with `prefix`.
pub fn starts_with(s: Expr, prefix: Expr) -> Expr {
    call_n(ScalarFunction::StartsWith, vec![s, prefix])
}

/// Whether string `s` ends with `suffix`.
pub fn ends_with(s: Expr, suffix: Expr) -> Expr {
    call_n(ScalarFunction::EndsWith, vec![s, suffix])
}

/// Whether the regular expression `pattern` matches somewhere in `s`.
pub fn regexp_like(s: Expr, pattern: &str) -> Expr {
    call_n(ScalarFunction::RegexpLike, vec![s, lit(pattern)])
}

/// The characters of `s` from 1-based `start`, at most `length` of them (all if `None`).
pub fn substring(s: Expr, start: i64, length: Option<i64>) -> Expr {
    let mut args = vec![s, lit(start)];
    args.extend(length.map(lit));
    call_n(ScalarFunction::Substring, args)
}

/// The year of a date or timestamp.
pub fn year(e: Expr) -> Expr {
    call(ScalarFunction::Year, e)
}

/// The month (1-12) of a date or timestamp.
pub fn month(e: Expr) -> Expr {
    call(ScalarFunction::Month, e)
}

/// The first of `args` that is not NULL.
pub fn coalesce(args: Vec<Expr>) -> Expr {
    call_n(ScalarFunction::Coalesce, args)
}

/// Starts a `CASE`: `when(c1, v1).when(c2, v2).otherwise(v3)`.
pub fn when(condition: Expr, value: Expr) -> CaseBuilder {
    CaseBuilder {
        branches: vec![(condition, value)],
    }
}

/// A `CASE` expression being built; finish with [`CaseBuilder::otherwise`] or
/// [`CaseBuilder::end`].
#[derive(Clone, Debug)]
pub struct CaseBuilder {
    branches: Vec<(Expr, Expr)>,
}

impl CaseBuilder {
    /// Another branch, tried after the earlier ones.
    pub fn when(mut self, condition: Expr, value: Expr) -> Self {
        self.branches.push((condition, value));
        self
    }

    /// The value when no branch matches.
    pub fn otherwise(self, value: Expr) -> Expr {
        Expr::Case {
            branches: self.branches,
            otherwise: Some(Box::new(value)),
        }
    }

    /// NULL when no branch matches.
    pub fn end(self) -> Expr {
        Expr::Case {
            branches: self.branches,
            otherwise: None,
        }
    }
}

impl Expr {
    fn binary(self, op: BinaryOp, other: Expr) -> Expr {
        Expr::Binary {
            left: Box::new(self),
            op,
            right: Box::new(other),
        }
    }

    /// Converts to `to`; a value that cannot be converted fails the task, naming it.
    pub fn cast(self, to: DataType) -> Expr {
        Expr::Cast {
            expr: Box::new(self),
            to,
        }
    }

    /// `self IS NULL`
    pub fn is_null(self) -> Expr {
        call(ScalarFunction::IsNull, self)
    }

    /// `self IS NOT NULL`
    pub fn is_not_null(self) -> Expr {
        call(ScalarFunction::IsNotNull, self)
    }

    /// Names the result column.
    pub fn alias(self, name: impl Into<String>) -> Expr {
        Expr::Alias {
            expr: Box::new(self),
            name: name.into(),
        }
    }

    /// `self = other`
    pub fn eq(self, other: Expr) -> Expr {
        self.binary(BinaryOp::Eq, other)
    }
    /// `self != other`
    pub fn not_eq(self, other: Expr) -> Expr {
        self.binary(BinaryOp::NotEq, other)
    }
    /// `self < other`
    pub fn lt(self, other: Expr) -> Expr {
        self.binary(BinaryOp::Lt, other)
    }
    /// `self <= other`
    pub fn lt_eq(self, other: Expr) -> Expr {
        self.binary(BinaryOp::LtEq, other)
    }
    /// `self > other`
    pub fn gt(self, other: Expr) -> Expr {
        self.binary(BinaryOp::Gt, other)
    }
    /// `self >= other`
    pub fn gt_eq(self, other: Expr) -> Expr {
        self.binary(BinaryOp::GtEq, other)
    }
    /// `self AND other` (SQL three-valued logic)
    pub fn and(self, other: Expr) -> Expr {
        self.binary(BinaryOp::And, other)
    }
    /// `self OR other` (SQL three-valued logic)
    pub fn or(self, other: Expr) -> Expr {
        self.binary(BinaryOp::Or, other)
    }
    /// `NOT self`
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Expr {
        Expr::Not(Box::new(self))
    }

    /// The column name this expression produces: its alias, its column, or its text.
    pub fn output_name(&self) -> String {
        match self {
            Expr::Column(name) | Expr::Alias { name, .. } => name.clone(),
            other => other.to_string(),
        }
    }

    /// Whether evaluating this expression over `schema`'s rows can never fail, whatever the
    /// values: columns, literals, comparisons, boolean logic, floating-point arithmetic and
    /// the total string functions. Integer arithmetic (overflow, division by zero), casts,
    /// `CASE`, the other functions and user functions may fail on some row, so they answer
    /// false. The planner fuses a filter into the aggregation after it only when the
    /// aggregation's expressions cannot fail: fused, they are evaluated on the rows the
    /// filter drops too.
    pub fn cannot_fail(&self, schema: &Schema) -> bool {
        match self {
            Expr::Column(_) | Expr::Literal(_) => true,
            Expr::Alias { expr, .. } | Expr::Not(expr) => expr.cannot_fail(schema),
            Expr::Binary { left, op, right } => {
                let operands = left.cannot_fail(schema) && right.cannot_fail(schema);
                if op.is_arithmetic() {
                    operands && matches!(self.data_type(schema, "check"), Ok(DataType::Float64))
                } else {
                    operands
                }
            }
            Expr::Function { function, args } => {
                let total = match function {
                    ScalarFunction::Lower
                    | ScalarFunction::Upper
                    | ScalarFunction::Length
                    | ScalarFunction::Contains
                    | ScalarFunction::StartsWith
                    | ScalarFunction::EndsWith
                    | ScalarFunction::IsNull
                    | ScalarFunction::IsNotNull
                    | ScalarFunction::Coalesce => true,
                    ScalarFunction::Words
                    | ScalarFunction::RegexpLike
                    | ScalarFunction::Substring
                    | ScalarFunction::Year
                    | ScalarFunction::Month => false,
                };
                total && args.iter().all(|a| a.cannot_fail(schema))
            }
            Expr::Cast { .. } | Expr::Case { .. } | Expr::Udf { .. } => false,
        }
    }

    /// Checks the expression against `schema` and returns its result type. `context` names
    /// where the expression is used, for error messages ("filter", "select", ...).
    pub fn data_type(&self, schema: &Schema, context: &str) -> Result<DataType> {
        match self {
            Expr::Column(name) => Ok(column_field(schema, name, context)?.data_type().clone()),
            Expr::Literal(v) => Ok(v.data_type()),
            Expr::Alias { expr, .. } => expr.data_type(schema, context),
            Expr::Not(inner) => {
                let t = inner.data_type(schema, context)?;
                if matches!(t, DataType::Boolean | DataType::Null) {
                    Ok(DataType::Boolean)
                } else {
                    Err(PlanError::expected_type(self, "a boolean", &t))
                }
            }
            Expr::Binary { left, op, right } => {
                let l = left.data_type(schema, context)?;
                let r = right.data_type(schema, context)?;
                types::binary_types(*op, &l, &r)
                    .map(|t| t.result)
                    .ok_or_else(|| {
                        PlanError::type_mismatch(
                            self,
                            format!("operator {} cannot combine {l} and {r}", op.symbol()),
                        )
                    })
            }
            Expr::Udf {
                args, return_type, ..
            } => {
                for a in args {
                    a.data_type(schema, context)?;
                }
                Ok(return_type.clone())
            }
            Expr::Function { function, args } => {
                let (min, max) = function.arity();
                if args.len() < min || args.len() > max {
                    return Err(PlanError::WrongArgumentCount {
                        function: function.name(),
                        expected: min,
                        got: args.len(),
                    });
                }
                let types = args
                    .iter()
                    .map(|a| a.data_type(schema, context))
                    .collect::<Result<Vec<_>>>()?;
                types::function_type(*function, &types, args)
                    .map_err(|message| PlanError::type_mismatch(self, message))
            }
            Expr::Cast { expr, to } => {
                let from = expr.data_type(schema, context)?;
                if arrow::compute::can_cast_types(&from, to) {
                    Ok(to.clone())
                } else {
                    Err(PlanError::type_mismatch(
                        self,
                        format!("cannot cast {from} to {to}"),
                    ))
                }
            }
            Expr::Case {
                branches,
                otherwise,
            } => {
                let mut result = DataType::Null;
                for (condition, value) in branches {
                    let c = condition.data_type(schema, context)?;
                    if !matches!(c, DataType::Boolean | DataType::Null) {
                        return Err(PlanError::expected_type(
                            condition,
                            "a boolean condition",
                            &c,
                        ));
                    }
                    let v = value.data_type(schema, context)?;
                    result = types::common_type(&result, &v).ok_or_else(|| {
                        PlanError::type_mismatch(self, format!("branches give {result} and {v}"))
                    })?;
                }
                if let Some(o) = otherwise {
                    let v = o.data_type(schema, context)?;
                    result = types::common_type(&result, &v).ok_or_else(|| {
                        PlanError::type_mismatch(self, format!("branches give {result} and {v}"))
                    })?;
                }
                Ok(result)
            }
        }
    }

    /// The output field of this expression over `schema`.
    pub fn to_field(&self, schema: &Schema, context: &str) -> Result<Field> {
        let data_type = self.data_type(schema, context)?;
        Ok(Field::new(self.output_name(), data_type, true))
    }

    /// Every column this expression reads.
    pub fn columns(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_columns(&mut out);
        out
    }

    fn collect_columns<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Column(c) => out.push(c),
            Expr::Literal(_) => {}
            Expr::Binary { left, right, .. } => {
                left.collect_columns(out);
                right.collect_columns(out);
            }
            Expr::Not(e) | Expr::Alias { expr: e, .. } => e.collect_columns(out),
            Expr::Function { args, .. } | Expr::Udf { args, .. } => {
                args.iter().for_each(|a| a.collect_columns(out))
            }
            Expr::Cast { expr, .. } => expr.collect_columns(out),
            Expr::Case {
                branches,
                otherwise,
            } => {
                for (c, v) in branches {
                    c.collect_columns(out);
                    v.collect_columns(out);
                }
                if let Some(o) = otherwise {
                    o.collect_columns(out);
                }
            }
        }
    }

    /// Names of the user functions this expression calls.
    pub fn user_functions(&self, out: &mut Vec<String>) {
        match self {
            Expr::Udf { name, args, .. } => {
                out.push(name.clone());
                args.iter().for_each(|a| a.user_functions(out));
            }
            Expr::Column(_) | Expr::Literal(_) => {}
            Expr::Binary { left, right, .. } => {
                left.user_functions(out);
                right.user_functions(out);
            }
            Expr::Not(e) | Expr::Alias { expr: e, .. } => e.user_functions(out),
            Expr::Function { args, .. } => args.iter().for_each(|a| a.user_functions(out)),
            Expr::Cast { expr, .. } => expr.user_functions(out),
            Expr::Case {
                branches,
                otherwise,
            } => {
                for (c, v) in branches {
                    c.user_functions(out);
                    v.user_functions(out);
                }
                if let Some(o) = otherwise {
                    o.user_functions(out);
                }
            }
        }
    }
}

/// Finds `name` in `schema`, or says which columns exist.
pub fn column_field<'a>(schema: &'a Schema, name: &str, context: &str) -> Result<&'a Field> {
    schema
        .field_with_name(name)
        .map_err(|_| PlanError::UnknownColumn {
            column: name.to_string(),
            context: context.to_string(),
            available: schema.fields().iter().map(|f| f.name().clone()).collect(),
        })
}

macro_rules! arithmetic_op {
    ($trait:ident, $method:ident, $op:ident) => {
        impl ops::$trait for Expr {
            type Output = Expr;
            fn $method(self, rhs: Expr) -> Expr {
                self.binary(BinaryOp::$op, rhs)
            }
        }
    };
}

arithmetic_op!(Add, add, Add);
arithmetic_op!(Sub, sub, Sub);
arithmetic_op!(Mul, mul, Mul);
arithmetic_op!(Div, div, Div);
arithmetic_op!(Rem, rem, Mod);

impl fmt::Display for ScalarValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScalarValue::Null => f.write_str("NULL"),
            ScalarValue::Boolean(b) => write!(f, "{b}"),
            ScalarValue::Int64(i) => write!(f, "{i}"),
            ScalarValue::Float64(x) => write!(f, "{x:?}"),
            ScalarValue::Utf8(s) => write!(f, "'{}'", s.replace('\'', "''")),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(c) => f.write_str(c),
            Expr::Literal(v) => write!(f, "{v}"),
            Expr::Binary { left, op, right } => write!(f, "({left} {} {right})", op.symbol()),
            Expr::Not(e) => write!(f, "NOT {e}"),
            Expr::Function { function, args } => {
                write!(f, "{}(", function.name())?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            Expr::Alias { expr, name } => write!(f, "{expr} AS {name}"),
            Expr::Cast { expr, to } => write!(f, "CAST({expr} AS {to})"),
            Expr::Case {
                branches,
                otherwise,
            } => {
                f.write_str("CASE")?;
                for (c, v) in branches {
                    write!(f, " WHEN {c} THEN {v}")?;
                }
                if let Some(o) = otherwise {
                    write!(f, " ELSE {o}")?;
                }
                f.write_str(" END")
            }
            Expr::Udf { name, args, .. } => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn every_function_is_in_all_once_and_found_by_its_name() {
        use ScalarFunction as F;
        // Adding a variant fails to compile here until it is listed, and the list is checked
        // against ALL: a function left out of ALL would not decode from the wire.
        let in_all = |f: ScalarFunction| match f {
            F::Lower
            | F::Upper
            | F::Length
            | F::Words
            | F::Contains
            | F::StartsWith
            | F::EndsWith
            | F::RegexpLike
            | F::Substring
            | F::Year
            | F::Month
            | F::IsNull
            | F::IsNotNull
            | F::Coalesce => ScalarFunction::ALL.iter().filter(|g| **g == f).count() == 1,
        };
        let listed = [
            F::Lower,
            F::Upper,
            F::Length,
            F::Words,
            F::Contains,
            F::StartsWith,
            F::EndsWith,
            F::RegexpLike,
            F::Substring,
            F::Year,
            F::Month,
            F::IsNull,
            F::IsNotNull,
            F::Coalesce,
        ];
        assert_eq!(listed.len(), ScalarFunction::ALL.len());
        for f in listed {
            assert!(
                in_all(f),
                "{f:?} is not in ScalarFunction::ALL exactly once"
            );
            assert_eq!(
                ScalarFunction::from_name(f.name()).expect("known by name"),
                f
            );
        }
    }

    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
        ])
    }

    #[test]
    fn unknown_column_names_the_column_and_the_alternatives() {
        let err = (col("nope") + lit(1))
            .data_type(&schema(), "filter")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("'nope'"), "{msg}");
        assert!(msg.contains("a, b, s"), "{msg}");
        assert!(msg.contains("filter"), "{msg}");
    }

    #[test]
    fn arithmetic_types_follow_coercion() {
        let s = schema();
        assert_eq!(
            (col("a") + lit(1)).data_type(&s, "t").unwrap(),
            DataType::Int64
        );
        assert_eq!(
            (col("a") * col("b")).data_type(&s, "t").unwrap(),
            DataType::Float64
        );
        assert_eq!(
            (col("a") / lit(2)).data_type(&s, "t").unwrap(),
            DataType::Float64
        );
        assert!((col("s") + lit(1)).data_type(&s, "t").is_err());
    }

    #[test]
    fn predicates_are_boolean() {
        let s = schema();
        let p = col("a").gt(lit(3)).and(lower(col("s")).eq(lit("x")));
        assert_eq!(p.data_type(&s, "t").unwrap(), DataType::Boolean);
        assert!(col("a").not().data_type(&s, "t").is_err());
    }

    #[test]
    fn words_returns_a_list_of_strings() {
        let t = words(col("s")).data_type(&schema(), "t").unwrap();
        assert!(matches!(t, DataType::List(f) if f.data_type() == &DataType::Utf8));
        assert!(words(col("a")).data_type(&schema(), "t").is_err());
    }

    #[test]
    fn unknown_function_lists_the_builtins() {
        let msg = ScalarFunction::from_name("frobnicate")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("'frobnicate'") && msg.contains("lower"),
            "{msg}"
        );
    }
}
