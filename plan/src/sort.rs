//! Sort orders: one [`SortExpr`] per sort key, each ascending or descending with nulls first
//! or last.
//!
//! A global sort runs in three stages (see the coordinator's stage planner): a sample of the
//! sort keys, a range shuffle whose boundaries come from that sample, and a local sort of each
//! range. This module only describes the order; the worker compares rows with Arrow's row
//! format, which encodes exactly these options.

use std::fmt;

use arrow::datatypes::Schema;

use crate::error::{PlanError, Result};
use crate::expr::Expr;

/// One sort key.
#[derive(Clone, Debug, PartialEq)]
pub struct SortExpr {
    pub expr: Expr,
    pub descending: bool,
    /// Whether NULLs come before every value (the default for descending orders) or after.
    pub nulls_first: bool,
}

impl SortExpr {
    /// Ascending, nulls last.
    pub fn asc(expr: Expr) -> Self {
        SortExpr {
            expr,
            descending: false,
            nulls_first: false,
        }
    }

    /// Descending, nulls first.
    pub fn desc(expr: Expr) -> Self {
        SortExpr {
            expr,
            descending: true,
            nulls_first: true,
        }
    }

    /// Puts NULLs first.
    pub fn nulls_first(mut self) -> Self {
        self.nulls_first = true;
        self
    }

    /// Puts NULLs last.
    pub fn nulls_last(mut self) -> Self {
        self.nulls_first = false;
        self
    }

    /// Checks the key against `schema`: it must exist and have an orderable type.
    pub fn validate(&self, schema: &Schema) -> Result<()> {
        let t = self.expr.data_type(schema, "sort")?;
        if t.is_nested() {
            return Err(PlanError::type_mismatch(
                self,
                format!("cannot sort by a value of type {t}"),
            ));
        }
        Ok(())
    }
}

/// Sorts by `expr` ascending, nulls last (`.nulls_first()` to change).
pub fn asc(expr: Expr) -> SortExpr {
    SortExpr::asc(expr)
}

/// Sorts by `expr` descending, nulls first (`.nulls_last()` to change).
pub fn desc(expr: Expr) -> SortExpr {
    SortExpr::desc(expr)
}

impl From<Expr> for SortExpr {
    fn from(expr: Expr) -> Self {
        SortExpr::asc(expr)
    }
}

impl fmt::Display for SortExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} nulls {}",
            self.expr,
            if self.descending { "desc" } else { "asc" },
            if self.nulls_first { "first" } else { "last" }
        )
    }
}
