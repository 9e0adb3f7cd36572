//! Aggregate functions: their result types and the layout of their partial state.
//!
//! Every aggregation runs in two steps. The map side computes a *partial state* per group
//! (before the shuffle, so little data crosses the network); the reduce side merges the states
//! of each group and computes the final value. The state layout defined here is the contract
//! between the two: the partial step's output columns are the group keys followed by each
//! aggregate's state columns, in order.

use std::fmt;

use arrow::datatypes::{DataType, Field, Schema};

use crate::error::{PlanError, Result};
use crate::expr::Expr;
use crate::types::is_numeric;

/// An aggregate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateFunction {
    /// Number of rows (`count()`) or of non-null values (`count_of(expr)`).
    Count,
    /// Sum of non-null values: Int64 for integers, Float64 for floats; NULL if none.
    Sum,
    /// Smallest non-null value.
    Min,
    /// Largest non-null value.
    Max,
    /// Arithmetic mean of non-null values, as Float64.
    Mean,
    /// Number of distinct non-null values. The coordinator plans it as two aggregations (by
    /// the keys and the value, then by the keys), so it cannot be mixed with other aggregates
    /// or with a second distinct input in one `agg`.
    CountDistinct,
}

impl AggregateFunction {
    /// The function's name.
    pub fn name(self) -> &'static str {
        match self {
            AggregateFunction::Count => "count",
            AggregateFunction::Sum => "sum",
            AggregateFunction::Min => "min",
            AggregateFunction::Max => "max",
            AggregateFunction::Mean => "mean",
            AggregateFunction::CountDistinct => "count_distinct",
        }
    }
}

/// One aggregate in a `group_by(..).agg([..])`: a function, its input, and its output name.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregateExpr {
    pub function: AggregateFunction,
    /// `None` for `count()` (count of rows).
    pub input: Option<Expr>,
    pub name: String,
}

impl AggregateExpr {
    fn new(function: AggregateFunction, input: Option<Expr>) -> Self {
        let name = match &input {
            Some(e) => format!("{}({})", function.name(), e.output_name()),
            None => function.name().to_string(),
        };
        AggregateExpr {
            function,
            input,
            name,
        }
    }

    /// Names the output column.
    pub fn alias(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Type of the final value, checked against the input schema.
    pub fn output_type(&self, input_schema: &Schema) -> Result<DataType> {
        let context = format!("aggregate {self}");
        let input_type = match &self.input {
            Some(e) => Some(e.data_type(input_schema, &context)?),
            None => None,
        };
        let numeric = |t: &DataType| -> Result<()> {
            if is_numeric(t) {
                Ok(())
            } else {
                Err(PlanError::expected_type(self, "a numeric input", t))
            }
        };
        match (self.function, input_type) {
            (AggregateFunction::Count, _) => Ok(DataType::Int64),
            (AggregateFunction::CountDistinct, Some(t)) => {
                if t.is_nested() {
                    Err(PlanError::expected_type(self, "a scalar input", &t))
                } else {
                    Ok(DataType::Int64)
                }
            }
            (_, None) => Err(PlanError::type_mismatch(self, "needs an input expression")),
            (AggregateFunction::Sum, Some(t)) => {
                numeric(&t)?;
                Ok(if t.is_floating() {
                    DataType::Float64
                } else {
                    DataType::Int64
                })
            }
            (AggregateFunction::Mean, Some(t)) => {
                numeric(&t)?;
                Ok(DataType::Float64)
            }
            (AggregateFunction::Min | AggregateFunction::Max, Some(t)) => {
                if is_numeric(&t) || crate::types::is_string(&t) {
                    Ok(match t {
                        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
                        t if t.is_integer() => DataType::Int64,
                        t if t.is_floating() => DataType::Float64,
                        t => t,
                    })
                } else {
                    Err(PlanError::expected_type(
                        self,
                        "a numeric or string input",
                        &t,
                    ))
                }
            }
        }
    }

    /// The partial-state columns this aggregate adds to the map side's output.
    pub fn state_fields(&self, input_schema: &Schema) -> Result<Vec<Field>> {
        let output = self.output_type(input_schema)?;
        Ok(match self.function {
            AggregateFunction::Mean => vec![
                Field::new(format!("{}.sum", self.name), DataType::Float64, true),
                Field::new(format!("{}.count", self.name), DataType::Int64, true),
            ],
            _ => vec![Field::new(self.name.clone(), output, true)],
        })
    }
}

/// `count()`: the number of rows in each group.
pub fn count() -> AggregateExpr {
    AggregateExpr::new(AggregateFunction::Count, None)
}

/// The number of non-null values of `e` in each group.
pub fn count_of(e: Expr) -> AggregateExpr {
    AggregateExpr::new(AggregateFunction::Count, Some(e))
}

/// The number of distinct non-null values of `e` in each group.
pub fn count_distinct(e: Expr) -> AggregateExpr {
    AggregateExpr::new(AggregateFunction::CountDistinct, Some(e))
}

/// Sum of `e` in each group.
pub fn sum(e: Expr) -> AggregateExpr {
    AggregateExpr::new(AggregateFunction::Sum, Some(e))
}

/// Smallest value of `e` in each group.
pub fn min(e: Expr) -> AggregateExpr {
    AggregateExpr::new(AggregateFunction::Min, Some(e))
}

/// Largest value of `e` in each group.
pub fn max(e: Expr) -> AggregateExpr {
    AggregateExpr::new(AggregateFunction::Max, Some(e))
}

/// Mean of `e` in each group.
pub fn mean(e: Expr) -> AggregateExpr {
    AggregateExpr::new(AggregateFunction::Mean, Some(e))
}

impl fmt::Display for AggregateExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.input {
            Some(e) => write!(f, "{}({e})", self.function.name())?,
            None => write!(f, "{}(*)", self.function.name())?,
        }
        write!(f, " AS {}", self.name)
    }
}
