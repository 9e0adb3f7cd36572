//! Which string columns a scan feeding an aggregation straight away reads as dictionaries.
//!
//! Parquet stores low-cardinality strings (flags, status codes: TPC-H Q1's `l_returnflag,
//! l_linestatus`) dictionary-encoded. Decoded as `Utf8`, every row's string is copied out of
//! the dictionary, and the aggregation then reads the bytes back to find the row's group: a
//! fifth of Q1's time. Decoded as `Dictionary(Int32, Utf8)`, a row is one small integer, and
//! [`GroupKeys`] finds its group from the keys (see [`PackedKeys`]).
//!
//! Only columns the aggregation uses as plain group keys and nowhere else qualify, so no
//! expression ever sees a dictionary where the plan says `Utf8`; the aggregation's output
//! keys are `Utf8` as the plan says.
//!
//! [`GroupKeys`]: super::group_keys::GroupKeys
//! [`PackedKeys`]: super::packed_keys::PackedKeys

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use quiver_plan::{AggregateExpr, Expr, ScanNode, SourceFormat};

/// The type a qualifying column is read as.
pub fn dictionary_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// `scan` with its qualifying columns typed as dictionaries, if it reads Parquet and any
/// column qualifies: a `Utf8` column that is one of `keys` as it is (`Expr::Column`) and that
/// no other key, aggregate input or `filter` reads.
pub fn scan_with_dictionary_keys(
    scan: &ScanNode,
    keys: &[Expr],
    aggregates: &[AggregateExpr],
    filter: Option<&Expr>,
) -> Option<ScanNode> {
    if scan.format != SourceFormat::Parquet {
        return None;
    }
    let mut other_uses: Vec<&str> = Vec::new();
    for k in keys.iter().filter(|k| !matches!(k, Expr::Column(_))) {
        other_uses.extend(k.columns());
    }
    for input in aggregates.iter().filter_map(|a| a.input.as_ref()) {
        other_uses.extend(input.columns());
    }
    if let Some(f) = filter {
        other_uses.extend(f.columns());
    }
    let chosen: Vec<&str> = keys
        .iter()
        .filter_map(|k| match k {
            Expr::Column(name) => Some(name.as_str()),
            _ => None,
        })
        .filter(|name| !other_uses.contains(name))
        .filter(|name| {
            scan.schema
                .field_with_name(name)
                .is_ok_and(|f| f.data_type() == &DataType::Utf8)
        })
        .collect();
    if chosen.is_empty() {
        return None;
    }
    let fields: Vec<Field> = scan
        .schema
        .fields()
        .iter()
        .map(|f| {
            if chosen.contains(&f.name().as_str()) {
                f.as_ref().clone().with_data_type(dictionary_type())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Some(ScanNode {
        schema: Arc::new(Schema::new_with_metadata(
            fields,
            scan.schema.metadata().clone(),
        )),
        ..scan.clone()
    })
}

#[cfg(test)]
mod tests {
    use quiver_plan::AggregateFunction;
    use quiver_plan::expr::{col, lit};

    use super::*;

    fn scan(format: SourceFormat) -> ScanNode {
        ScanNode {
            format,
            files: vec![],
            schema: Arc::new(Schema::new(vec![
                Field::new("flag", DataType::Utf8, false),
                Field::new("status", DataType::Utf8, false),
                Field::new("n", DataType::Int64, false),
                Field::new("id", DataType::Int64, false),
            ])),
            csv: Default::default(),
        }
    }

    fn sum_of(e: Expr) -> AggregateExpr {
        AggregateExpr {
            function: AggregateFunction::Sum,
            input: Some(e),
            name: "s".into(),
        }
    }

    fn types(s: &ScanNode) -> Vec<DataType> {
        s.schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect()
    }

    #[test]
    fn only_string_keys_used_nowhere_else_become_dictionaries() {
        let keys = [col("flag"), col("status"), col("id")];
        let aggs = [sum_of(col("n"))];
        let filter = col("status").eq(lit("F"));
        let got =
            scan_with_dictionary_keys(&scan(SourceFormat::Parquet), &keys, &aggs, Some(&filter))
                .expect("flag qualifies");
        assert_eq!(
            types(&got),
            [
                dictionary_type(),
                DataType::Utf8,
                DataType::Int64,
                DataType::Int64
            ]
        );
        // Used by an aggregate input: not a dictionary.
        let aggs = [
            sum_of(col("n")),
            AggregateExpr {
                function: AggregateFunction::Max,
                input: Some(col("flag")),
                name: "m".into(),
            },
        ];
        assert!(
            scan_with_dictionary_keys(&scan(SourceFormat::Parquet), &keys[..1], &aggs, None)
                .is_none()
        );
        // Not Parquet: unchanged.
        assert!(scan_with_dictionary_keys(&scan(SourceFormat::Csv), &keys, &[], None).is_none());
    }
}
