//! Equality joins: their kinds, how their keys are typed, and which columns they output.
//!
//! Both the coordinator (which shuffles each side by its keys) and the worker (which builds a
//! hash table on the right side and probes it with the left) take their key types and output
//! layout from here, so that the two sides of a shuffle always hash the same values the same
//! way.
//!
//! # Output columns
//! All columns of the left side, then those of the right side (semi and anti joins output the
//! left side only). Two rules keep names unique:
//! - in inner and left joins, a right key column with the same name as its left key (as in
//!   `join(&other, ["id"], ..)`) is left out: it holds the same values as the left one;
//! - any other right column whose name is already taken gets the suffix `_right` (repeated
//!   until unique).
//!
//! Columns of the side that may have no match (the right side of a left join, both sides of
//! a full join, ...) become nullable.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{PlanError, Result};
use crate::expr::Expr;
use crate::types::common_type;

/// Which rows an equality join keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JoinType {
    /// Pairs of rows whose keys are equal.
    Inner,
    /// Inner rows, plus left rows without a match (right columns NULL).
    Left,
    /// Inner rows, plus right rows without a match (left columns NULL).
    Right,
    /// Inner rows, plus unmatched rows of both sides.
    Full,
    /// Left rows that have at least one match, once each; left columns only.
    LeftSemi,
    /// Left rows that have no match (including rows with a NULL key); left columns only.
    LeftAnti,
}

impl JoinType {
    /// The join's name as written in plans and errors.
    pub fn name(self) -> &'static str {
        match self {
            JoinType::Inner => "inner",
            JoinType::Left => "left",
            JoinType::Right => "right",
            JoinType::Full => "full",
            JoinType::LeftSemi => "left_semi",
            JoinType::LeftAnti => "left_anti",
        }
    }

    /// Whether the output has the right side's columns.
    pub fn outputs_right(self) -> bool {
        !matches!(self, JoinType::LeftSemi | JoinType::LeftAnti)
    }

    /// Whether right rows without a match are output (so every build row must be seen once:
    /// the right side cannot be broadcast).
    pub fn keeps_unmatched_right(self) -> bool {
        matches!(self, JoinType::Right | JoinType::Full)
    }

    /// Whether left rows without a match are output with NULL right columns.
    pub fn keeps_unmatched_left(self) -> bool {
        matches!(self, JoinType::Left | JoinType::Full)
    }
}

impl fmt::Display for JoinType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the coordinator moves the two sides together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum JoinStrategy {
    /// Broadcast the right side when it is estimated below the job's broadcast threshold and
    /// the join type allows it; otherwise shuffle both sides.
    #[default]
    Auto,
    /// Hash-partition both sides by their keys.
    Shuffle,
    /// Send the whole right side to every task of the left side (inner, left, semi and anti
    /// joins only).
    Broadcast,
}

impl JoinStrategy {
    /// The strategy's name as written in plans.
    pub fn name(self) -> &'static str {
        match self {
            JoinStrategy::Auto => "auto",
            JoinStrategy::Shuffle => "shuffle",
            JoinStrategy::Broadcast => "broadcast",
        }
    }
}

/// The suffix given to a right column whose name the left side already uses.
pub const RIGHT_SUFFIX: &str = "_right";

/// The type both sides' keys are cast to, pair by pair, or an error naming the first pair
/// that cannot be compared.
pub fn join_key_types(
    left: &Schema,
    right: &Schema,
    left_keys: &[Expr],
    right_keys: &[Expr],
) -> Result<Vec<DataType>> {
    if left_keys.is_empty() || left_keys.len() != right_keys.len() {
        return Err(PlanError::InvalidPlan(format!(
            "a join needs the same number (at least one) of left and right keys, got {} and {}",
            left_keys.len(),
            right_keys.len()
        )));
    }
    left_keys
        .iter()
        .zip(right_keys)
        .map(|(l, r)| {
            let lt = l.data_type(left, "join (left key)")?;
            let rt = r.data_type(right, "join (right key)")?;
            let common = common_type(&lt, &rt).filter(|t| *t != DataType::Null);
            common.ok_or_else(|| {
                PlanError::type_mismatch(
                    format!("join key {l} = {r}"),
                    format!("incompatible join key types: left is {lt}, right is {rt}"),
                )
            })
        })
        .collect()
}

/// `keys`, each cast to its common join type where it differs: what both sides hash.
pub fn coerced_keys(keys: &[Expr], schema: &Schema, types: &[DataType]) -> Result<Vec<Expr>> {
    keys.iter()
        .zip(types)
        .map(|(k, t)| {
            Ok(if &k.data_type(schema, "join key")? == t {
                k.clone()
            } else {
                k.clone().cast(t.clone())
            })
        })
        .collect()
}

/// Where each output column of a join comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct JoinLayout {
    pub schema: SchemaRef,
    /// Indices of the right columns that are output, in order (after all left columns).
    pub right_columns: Vec<usize>,
}

/// The output schema of a join and which right columns it keeps (see the module docs).
pub fn join_layout(
    left: &Schema,
    right: &Schema,
    left_keys: &[Expr],
    right_keys: &[Expr],
    join_type: JoinType,
) -> Result<JoinLayout> {
    join_key_types(left, right, left_keys, right_keys)?;
    let left_nullable = matches!(join_type, JoinType::Right | JoinType::Full);
    let right_nullable = matches!(join_type, JoinType::Left | JoinType::Full);
    let mut fields: Vec<Field> = left
        .fields()
        .iter()
        .map(|f| {
            f.as_ref()
                .clone()
                .with_nullable(f.is_nullable() || left_nullable)
        })
        .collect();
    let mut right_columns = Vec::new();
    if join_type.outputs_right() {
        let merged_keys: Vec<&str> = if matches!(join_type, JoinType::Inner | JoinType::Left) {
            left_keys
                .iter()
                .zip(right_keys)
                .filter_map(|(l, r)| match (l, r) {
                    (Expr::Column(a), Expr::Column(b)) if a == b => Some(b.as_str()),
                    _ => None,
                })
                .collect()
        } else {
            vec![]
        };
        for (i, f) in right.fields().iter().enumerate() {
            if merged_keys.contains(&f.name().as_str()) {
                continue;
            }
            let mut name = f.name().clone();
            while fields.iter().any(|g| g.name() == &name) {
                name.push_str(RIGHT_SUFFIX);
            }
            fields.push(
                f.as_ref()
                    .clone()
                    .with_name(name)
                    .with_nullable(f.is_nullable() || right_nullable),
            );
            right_columns.push(i);
        }
    }
    Ok(JoinLayout {
        schema: Arc::new(Schema::new(fields)),
        right_columns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::col;

    fn schema(fields: &[(&str, DataType)]) -> Schema {
        Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), false))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn same_named_keys_merge_in_inner_joins_and_clashes_get_a_suffix() {
        let l = schema(&[("id", DataType::Int64), ("v", DataType::Utf8)]);
        let r = schema(&[("id", DataType::Int32), ("v", DataType::Float64)]);
        let inner = join_layout(&l, &r, &[col("id")], &[col("id")], JoinType::Inner).unwrap();
        let names: Vec<_> = inner
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["id", "v", "v_right"]);
        assert_eq!(inner.right_columns, [1]);
        let full = join_layout(&l, &r, &[col("id")], &[col("id")], JoinType::Full).unwrap();
        let names: Vec<_> = full
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["id", "v", "id_right", "v_right"]);
        assert!(full.schema.fields().iter().all(|f| f.is_nullable()));
        let semi = join_layout(&l, &r, &[col("id")], &[col("id")], JoinType::LeftSemi).unwrap();
        assert_eq!(semi.schema.fields().len(), 2);
    }

    #[test]
    fn key_types_are_coerced_or_rejected() {
        let l = schema(&[("a", DataType::Int32), ("s", DataType::Utf8)]);
        let r = schema(&[("b", DataType::Int64), ("t", DataType::Utf8)]);
        let types = join_key_types(&l, &r, &[col("a"), col("s")], &[col("b"), col("t")]).unwrap();
        assert_eq!(types, [DataType::Int64, DataType::Utf8]);
        let err = join_key_types(&l, &r, &[col("s")], &[col("b")]).unwrap_err();
        assert!(
            err.to_string().contains("incompatible join key types"),
            "{err}"
        );
        let err = join_key_types(&l, &r, &[col("nope")], &[col("b")]).unwrap_err();
        assert!(err.to_string().contains("unknown column 'nope'"), "{err}");
    }
}
