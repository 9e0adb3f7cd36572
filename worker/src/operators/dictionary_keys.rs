//! Which string columns a scan feeding an aggregation straight away reads as dictionaries.
//!
//! Parquet stores low-cardinality strings (flags, status codes: TPC-H Q1's `l_returnflag,
//! l_linestatus`) dictionary-encoded. Decoded as `Utf8`, every row's string is copied out of
//! the dictionary, and the aggregation then reads the bytes back to find the row's group: a
//! fifth of Q1's time. Decoded as `Dictionary(Int32, Utf8)`, a row is one small integer, and
//! [`GroupKeys`] finds its group from the keys (see [`PackedKeys`]).
//!
//! Only where every key is a `Utf8` column and there are several (the keys [`PackedKeys`]
//! takes; one string key is interned from its bytes, which a dictionary would not speed up),
//! and only columns the aggregation uses as group keys and nowhere else, so no expression
//! ever sees a dictionary where the plan says `Utf8`; the aggregation's output keys are
//! `Utf8` as the plan says.
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

/// `scan` with its qualifying columns typed as dictionaries, if it reads Parquet, `keys` are
/// several `Utf8` columns (`Expr::Column`), and one of them is read by no aggregate input
/// and not by `filter`.
pub fn scan_with_dictionary_keys(
    scan: &ScanNode,
    keys: &[Expr],
    aggregates: &[AggregateExpr],
    filter: Option<&Expr>,
) -> Option<ScanNode> {
    let string_column = |k: &Expr| match k {
        Expr::Column(name) => scan
            .schema
            .field_with_name(name)
            .is_ok_and(|f| f.data_type() == &DataType::Utf8),
        _ => false,
    };
    if scan.format != SourceFormat::Parquet || keys.len() < 2 || !keys.iter().all(string_column) {
        return None;
    }
    let mut other_uses: Vec<&str> = Vec::new();
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
        let keys = [col("flag"), col("status")];
        let aggs = [sum_of(col("n"))];
        let parquet = scan(SourceFormat::Parquet);
        let got = scan_with_dictionary_keys(&parquet, &keys, &aggs, None).expect("both qualify");
        let (dict, utf8, int) = (dictionary_type(), DataType::Utf8, DataType::Int64);
        assert_eq!(
            types(&got),
            [dict.clone(), dict.clone(), int.clone(), int.clone()]
        );
        // Read by the filter: stays a string.
        let filter = col("status").eq(lit("F"));
        let got = scan_with_dictionary_keys(&parquet, &keys, &aggs, Some(&filter))
            .expect("flag qualifies");
        assert_eq!(
            types(&got),
            [dict.clone(), utf8.clone(), int.clone(), int.clone()]
        );
        // Read by an aggregate input: stays a string.
        let max_flag = AggregateExpr {
            function: AggregateFunction::Max,
            input: Some(col("flag")),
            name: "m".into(),
        };
        let got = scan_with_dictionary_keys(&parquet, &keys, &[max_flag], None).expect("status");
        assert_eq!(types(&got), [utf8, dict, int.clone(), int]);
        // One string key, a key that is not a string column, or not Parquet: unchanged.
        assert!(scan_with_dictionary_keys(&parquet, &keys[..1], &aggs, None).is_none());
        let with_id = [col("flag"), col("status"), col("id")];
        assert!(scan_with_dictionary_keys(&parquet, &with_id, &aggs, None).is_none());
        let csv = scan(SourceFormat::Csv);
        assert!(scan_with_dictionary_keys(&csv, &keys, &aggs, None).is_none());
    }
}
