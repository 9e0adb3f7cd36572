//! Filter, computed columns and aggregates over Parquet and CSV, and writing Parquet, checked
//! against row-by-row references.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use quiver::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cluster;

/// Rows of (key: Utf8, qty: Int64 with nulls, price: Float64, note: Utf8), in row groups of 1000.
pub fn sample_batch(rows: usize, seed: u64) -> RecordBatch {
    let mut rng = StdRng::seed_from_u64(seed);
    let keys: Vec<String> = (0..rows)
        .map(|_| format!("k{}", rng.random_range(0..13)))
        .collect();
    let qty: Vec<Option<i64>> = (0..rows)
        .map(|_| (rng.random_range(0..8) > 0).then(|| rng.random_range(-50..500)))
        .collect();
    let price: Vec<f64> = (0..rows)
        .map(|_| (rng.random_range(0..100_000) as f64) / 100.0)
        .collect();
    let note: Vec<String> = (0..rows).map(|i| format!("Note {i} ÄÖ")).collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("qty", DataType::Int64, true),
            Field::new("price", DataType::Float64, false),
            Field::new("note", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(StringArray::from(keys)),
            Arc::new(Int64Array::from(qty)),
            Arc::new(Float64Array::from(price)),
            Arc::new(StringArray::from(note)),
        ],
    )
    .unwrap()
}

pub fn write_sample_parquet(path: &Path, rows: usize, seed: u64) -> RecordBatch {
    let batch = sample_batch(rows, seed);
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(1000))
        .build();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        batch.schema(),
        Some(props),
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    batch
}

#[derive(Debug, Default, PartialEq)]
struct Group {
    n: i64,
    qty_sum: Option<i64>,
    qty_max: Option<i64>,
    value_min: Option<f64>,
    price_mean: f64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_with_column_and_aggregates_over_parquet_match_reference() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_sample_parquet(&dir.path().join("a.parquet"), 4500, 21);
    let b = write_sample_parquet(&dir.path().join("b.parquet"), 2500, 22);

    // Reference: keep rows with price > 100 and key != 'k3'; value = qty * 2 + price.
    // Per key: rows, non-null qty values, computed values, prices.
    type Rows = (i64, Vec<i64>, Vec<f64>, Vec<f64>);
    let mut groups: BTreeMap<String, Rows> = BTreeMap::new();
    for batch in [&a, &b] {
        let key = batch.column(0).as_string::<i32>();
        let qty = batch.column(1).as_primitive::<Int64Type>();
        let price = batch.column(2).as_primitive::<Float64Type>();
        for r in 0..batch.num_rows() {
            if price.value(r) > 100.0 && key.value(r) != "k3" {
                let g = groups.entry(key.value(r).to_string()).or_default();
                g.0 += 1;
                g.3.push(price.value(r));
                if qty.is_valid(r) {
                    g.1.push(qty.value(r));
                    g.2.push(qty.value(r) as f64 * 2.0 + price.value(r));
                }
            }
        }
    }
    let expected: BTreeMap<String, Group> = groups
        .into_iter()
        .map(|(k, (n, qty, values, prices))| {
            (
                k,
                Group {
                    n,
                    qty_sum: (!qty.is_empty()).then(|| qty.iter().sum()),
                    qty_max: qty.iter().copied().max(),
                    value_min: values.iter().copied().reduce(f64::min),
                    price_mean: prices.iter().sum::<f64>() / prices.len() as f64,
                },
            )
        })
        .collect();

    let cluster = cluster::local(2).await;
    let client = cluster.client().await.unwrap();
    let ds = Dataset::read_parquet(&[dir.path()])
        .unwrap()
        .filter(col("price").gt(lit(100)).and(col("key").not_eq(lit("k3"))))
        .unwrap()
        .with_column("value", col("qty") * lit(2) + col("price"))
        .unwrap()
        .group_by(["key"])
        .agg([
            count().alias("n"),
            sum(col("qty")).alias("qty_sum"),
            max(col("qty")).alias("qty_max"),
            min(col("value")).alias("value_min"),
            mean(col("price")).alias("price_mean"),
        ])
        .unwrap();
    let check = |batches: &[RecordBatch]| {
        let mut got = BTreeMap::new();
        for b in batches {
            let key = b.column(0).as_string::<i32>();
            let n = b.column(1).as_primitive::<Int64Type>();
            let qs = b.column(2).as_primitive::<Int64Type>();
            let qm = b.column(3).as_primitive::<Int64Type>();
            let vm = b.column(4).as_primitive::<Float64Type>();
            let pm = b.column(5).as_primitive::<Float64Type>();
            for r in 0..b.num_rows() {
                got.insert(
                    key.value(r).to_string(),
                    Group {
                        n: n.value(r),
                        qty_sum: qs.is_valid(r).then(|| qs.value(r)),
                        qty_max: qm.is_valid(r).then(|| qm.value(r)),
                        value_min: vm.is_valid(r).then(|| vm.value(r)),
                        price_mean: pm.value(r),
                    },
                );
            }
        }
        assert_eq!(got.len(), expected.len());
        for (k, e) in &expected {
            let g = &got[k];
            assert_eq!(
                (g.n, g.qty_sum, g.qty_max),
                (e.n, e.qty_sum, e.qty_max),
                "{k}"
            );
            assert!(
                (g.value_min.unwrap() - e.value_min.unwrap()).abs() < 1e-9,
                "{k}"
            );
            assert!((g.price_mean - e.price_mean).abs() < 1e-9, "{k}");
        }
    };
    check(&ds.collect(&client).await.unwrap());

    // Written as Parquet and read back, the rows are the same.
    let out = dir.path().join("out");
    ds.write_parquet(&client, &out).await.unwrap();
    assert!(out.join("_SUCCESS").exists());
    assert!(!out.join("_temporary").exists());
    let back = Dataset::read_parquet(&[&out])
        .unwrap()
        .collect(&client)
        .await
        .unwrap();
    check(&back);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_rows_are_counted_and_summed() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("city,temp\n");
    let mut expected = 0i64;
    for i in 0..5000 {
        let t = (i * 7919) % 41 - 10;
        if i % 3 == 0 {
            expected += t;
        }
        csv.push_str(&format!(
            "{},{t}\n",
            if i % 3 == 0 { "Zürich" } else { "Oslo" }
        ));
    }
    std::fs::write(dir.path().join("t.csv"), csv).unwrap();
    let cluster = cluster::local(2).await;
    let client = cluster.client().await.unwrap();
    let ds = Dataset::read_csv(&[dir.path()]).unwrap();
    assert_eq!(ds.clone().count(&client).await.unwrap(), 5000);
    let batches = ds
        .filter(col("city").eq(lit("Zürich")))
        .unwrap()
        .group_by(Vec::<String>::new())
        .agg([sum(col("temp")).alias("total")])
        .unwrap()
        .collect(&client)
        .await
        .unwrap();
    let total = batches[0].column(0).as_primitive::<Int64Type>().value(0);
    assert_eq!(total, expected);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_collect_streams_past_grpc_message_limits() {
    // ~24 MB of result rows, well past gRPC's default 4 MiB message limit.
    let dir = tempfile::tempdir().unwrap();
    let line = "x".repeat(199);
    let text: String = (0..120_000).map(|i| format!("{i:07}{line}\n")).collect();
    std::fs::write(dir.path().join("big.txt"), &text).unwrap();
    let cluster = cluster::local(2).await;
    let client = cluster.client().await.unwrap();
    let batches = Dataset::read_text(&[dir.path()])
        .unwrap()
        .collect(&client)
        .await
        .unwrap();
    let lines = column_strings(&batches);
    let expected: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(lines, expected);
    cluster.shutdown().await;
}

fn column_strings(batches: &[RecordBatch]) -> Vec<String> {
    let mut out: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            let c = b.column(0).as_string::<i32>();
            (0..b.num_rows())
                .map(|i| c.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_limit_and_repartition_match_reference() {
    use std::collections::{BTreeSet, HashMap};
    let dir = tempfile::tempdir().unwrap();
    let files = crate::corpus::write_corpus(dir.path(), 5, 300, 81);
    let counts = crate::corpus::reference_counts(&files);
    let mut every_word: Vec<String> = counts
        .iter()
        .flat_map(|(w, n)| std::iter::repeat_n(w.clone(), *n as usize))
        .collect();
    every_word.sort();
    let cluster = cluster::local(2).await;
    let client = cluster.client().await.unwrap();

    // distinct: each word once.
    let distinct = column_strings(
        &crate::corpus::lowercase_words(&files)
            .distinct()
            .unwrap()
            .collect(&client)
            .await
            .unwrap(),
    );
    let expected: Vec<String> = counts
        .keys()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(distinct, expected);

    // limit: exactly n rows (all rows when there are fewer), each one a word of the input.
    for n in [0u64, 1, 37, 10_000_000] {
        let got = column_strings(
            &crate::corpus::lowercase_words(&files)
                .limit(n)
                .unwrap()
                .collect(&client)
                .await
                .unwrap(),
        );
        assert_eq!(
            got.len() as u64,
            n.min(every_word.len() as u64),
            "limit {n}"
        );
        let mut available: HashMap<&str, i64> =
            counts.iter().map(|(w, c)| (w.as_str(), *c)).collect();
        for w in &got {
            let left = available.get_mut(w.as_str()).expect("a word of the input");
            *left -= 1;
            assert!(*left >= 0, "{w} appears more often than in the input");
        }
    }

    // repartition, by key and round-robin: the same rows, in as many partitions as asked.
    for keys in [vec!["word"], vec![]] {
        let job = client
            .submit(
                &crate::corpus::lowercase_words(&files)
                    .repartition(7, keys.clone())
                    .unwrap(),
                Sink::Collect,
            )
            .await
            .unwrap();
        let rows = column_strings(&job.collect().await.unwrap());
        assert_eq!(rows, every_word, "repartition by {keys:?}");
        let status = job.status().await.unwrap();
        assert_eq!(status.stages.len(), 2);
        assert_eq!(status.stages[1].tasks_total, 7);
    }
    cluster.shutdown().await;
}
