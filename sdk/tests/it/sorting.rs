//! Global sort (several keys, both directions, nulls first and last, a key holding half of
//! the rows, binary keys), top-k, union and count_distinct, checked against sorts and counts
//! written out plainly. One sort runs across real worker processes.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BinaryArray, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use arrow::record_batch::RecordBatch;
use quiver::JobOptions;
use quiver::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cluster;
use crate::joins::{rows_of, write_parquet};

#[derive(Clone, Debug, PartialEq)]
struct Row {
    k: Option<i64>,
    s: Option<String>,
    b: Vec<u8>,
}

/// Half of the rows have k = 42 (skew); some k and s are NULL; b is a random 10-byte key.
fn rows(n: usize, seed: u64) -> Vec<Row> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| Row {
            k: match rng.random_range(0..20) {
                0 => None,
                1..=10 => Some(42),
                _ => Some(rng.random_range(-500..500)),
            },
            s: (rng.random_range(0..10) > 0).then(|| format!("s{}", rng.random_range(0..40))),
            b: (0..10).map(|_| rng.random()).collect(),
        })
        .collect()
}

fn batch_of(rows: &[Row]) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Binary, false),
        ])),
        vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.k).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.s.clone()).collect::<Vec<_>>(),
            )),
            Arc::new(BinaryArray::from(
                rows.iter().map(|r| r.b.as_slice()).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

fn write_rows(dir: &Path, name: &str, rows: &[Row]) {
    write_parquet(&dir.join(name), &batch_of(rows), 500);
}

/// Compares optional values with NULLs first or last, ascending or descending.
fn compare<T: Ord>(a: &Option<T>, b: &Option<T>, descending: bool, nulls_first: bool) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => {
            if nulls_first {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        (Some(_), None) => {
            if nulls_first {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        (Some(x), Some(y)) => {
            if descending {
                y.cmp(x)
            } else {
                x.cmp(y)
            }
        }
    }
}

/// The (k, s) sequence of the result, in the order returned.
fn key_sequence(batches: &[RecordBatch]) -> Vec<(Option<i64>, Option<String>)> {
    let mut out = Vec::new();
    for b in batches {
        let k = b.column(0).as_primitive::<Int64Type>();
        let s = b.column(1).as_string::<i32>();
        for i in 0..b.num_rows() {
            out.push((
                k.is_valid(i).then(|| k.value(i)),
                s.is_valid(i).then(|| s.value(i).to_string()),
            ));
        }
    }
    out
}

fn options() -> JobOptions {
    JobOptions {
        shuffle_partitions: Some(4),
        batch_size: Some(128),
        broadcast_threshold: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_sort_orders_every_row_by_several_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = rows(5000, 3);
    write_rows(dir.path(), "a.parquet", &data[..3000]);
    write_rows(dir.path(), "b.parquet", &data[3000..]);
    let cluster = cluster::local(2).await;
    let client = cluster.client().await.unwrap();

    // k ascending with NULLs first, then s descending with NULLs last.
    let sorted = Dataset::read_parquet(&[dir.path()])
        .unwrap()
        .sort([asc(col("k")).nulls_first(), desc(col("s")).nulls_last()])
        .unwrap();
    let job = client
        .submit_with(&sorted, Sink::Collect, "sort", options())
        .await
        .unwrap();
    let batches = job.collect().await.unwrap();
    let mut want: Vec<_> = data.iter().map(|r| (r.k, r.s.clone())).collect();
    want.sort_by(|a, b| {
        compare(&a.0, &b.0, false, true).then_with(|| compare(&a.1, &b.1, true, false))
    });
    assert_eq!(key_sequence(&batches), want);
    // And no row was lost or invented.
    assert_eq!(rows_of(&batches), rows_of(&[batch_of(&data)]));

    // With the partitions left to the coordinator, the sorting stage's small ranges are
    // coalesced into one task: adjacent ranges, so the order holds.
    let job = client.submit(&sorted, Sink::Collect).await.unwrap();
    let batches = job.collect().await.unwrap();
    assert_eq!(key_sequence(&batches), want);
    let status = job.status().await.unwrap();
    let last = status.stages.last().unwrap();
    assert_eq!(last.tasks_total, 1, "{status:?}");
    assert!(
        last.adaptive
            .as_deref()
            .unwrap_or_default()
            .contains("coalesced")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorted_parquet_files_are_in_order_and_even_with_a_hot_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = rows(8000, 4);
    write_rows(dir.path(), "in.parquet", &data);
    let cluster = cluster::local(2).await;
    let client = cluster.client().await.unwrap();
    let out = dir.path().join("out");
    let sorted = Dataset::read_parquet(&[dir.path().join("in.parquet")])
        .unwrap()
        .sort([desc(col("k"))])
        .unwrap();
    client
        .submit_with(
            &sorted,
            Sink::WriteParquet {
                directory: out.to_string_lossy().into_owned(),
                mode: quiver::WriteMode::ErrorIfExists,
            },
            "sort to parquet",
            options(),
        )
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    // Read the files back in name order: the whole sequence is sorted.
    let mut names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 4);
    let mut keys = Vec::new();
    let mut sizes = Vec::new();
    for name in &names {
        let batches = Dataset::read_parquet(&[out.join(name)])
            .unwrap()
            .collect(&client)
            .await
            .unwrap();
        let before = keys.len();
        for b in &batches {
            let k = b.column(0).as_primitive::<Int64Type>();
            keys.extend((0..b.num_rows()).map(|i| k.is_valid(i).then(|| k.value(i))));
        }
        sizes.push(keys.len() - before);
    }
    let mut want: Vec<_> = data.iter().map(|r| r.k).collect();
    want.sort_by(|a, b| compare(a, b, true, true));
    assert_eq!(keys, want);
    // k = 42 holds half of the rows; its rows are spread, so no file gets much more than
    // its share.
    let share = data.len() / names.len();
    assert!(
        sizes.iter().all(|&n| n < share * 2),
        "partition sizes {sizes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_k_and_binary_keys_match_a_full_sort() {
    let dir = tempfile::tempdir().unwrap();
    let data = rows(6000, 5);
    write_rows(dir.path(), "a.parquet", &data);
    let cluster = cluster::local(2).await;
    let client = cluster.client().await.unwrap();
    let ds = || Dataset::read_parquet(&[dir.path()]).unwrap();

    let top = ds()
        .top_k([desc(col("k")).nulls_last(), asc(col("b"))], 25)
        .unwrap();
    let got = top.collect(&client).await.unwrap();
    let mut want: Vec<_> = data.iter().map(|r| (r.k, r.b.clone())).collect();
    want.sort_by(|a, b| compare(&a.0, &b.0, true, false).then_with(|| a.1.cmp(&b.1)));
    want.truncate(25);
    let got_keys: Vec<_> = got
        .iter()
        .flat_map(|b| {
            let k = b.column(0).as_primitive::<Int64Type>().clone();
            let bin = b.column(2).as_binary::<i32>().clone();
            (0..b.num_rows())
                .map(move |i| (k.is_valid(i).then(|| k.value(i)), bin.value(i).to_vec()))
        })
        .collect();
    assert_eq!(got_keys, want);

    // sort + limit is the same top-k.
    let limited = ds()
        .sort([desc(col("k")).nulls_last(), asc(col("b"))])
        .unwrap()
        .limit(25)
        .unwrap();
    assert_eq!(
        rows_of(&limited.collect(&client).await.unwrap()),
        rows_of(&got)
    );

    // A sort by a binary key alone (terasort's case).
    let by_bin = ds().sort([col("b")]).unwrap().select([col("b")]).unwrap();
    let got: Vec<Vec<u8>> = by_bin
        .collect(&client)
        .await
        .unwrap()
        .iter()
        .flat_map(|b| {
            let bin = b.column(0).as_binary::<i32>().clone();
            (0..b.num_rows()).map(move |i| bin.value(i).to_vec())
        })
        .collect();
    let mut want: Vec<_> = data.iter().map(|r| r.b.clone()).collect();
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn union_distinct_and_count_distinct_match_sets_built_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let a = rows(3000, 6);
    let b = rows(2000, 7);
    write_rows(dir.path(), "a.parquet", &a);
    write_rows(dir.path(), "b.parquet", &b);
    let cluster = cluster::local(2).await;
    let client = cluster.client().await.unwrap();
    let read = |name: &str| {
        Dataset::read_parquet(&[dir.path().join(name)])
            .unwrap()
            .select([col("k"), col("s")])
            .unwrap()
    };

    // union keeps duplicates; a filtered-out (empty) input adds nothing.
    let empty = read("b.parquet").filter(col("k").gt(lit(10_000))).unwrap();
    let union = read("a.parquet")
        .union(read("b.parquet"))
        .unwrap()
        .union(empty)
        .unwrap();
    let got = rows_of(&union.clone().collect(&client).await.unwrap());
    let both: Vec<Row> = a.iter().chain(&b).cloned().collect();
    let want = rows_of(&[batch_of(&both).project(&[0, 1]).unwrap()]);
    assert_eq!(got, want);

    // distinct over the union.
    let got = rows_of(
        &union
            .clone()
            .distinct()
            .unwrap()
            .collect(&client)
            .await
            .unwrap(),
    );
    let mut want: Vec<String> = want.clone();
    want.dedup();
    assert_eq!(got, want);

    // count_distinct of s per k (NULL s not counted; the NULL k group exists).
    let counted = union
        .group_by(["k"])
        .agg([count_distinct(col("s")).alias("n")])
        .unwrap();
    let got = rows_of(&counted.collect(&client).await.unwrap());
    let mut sets: BTreeMap<Option<i64>, BTreeSet<String>> = BTreeMap::new();
    for r in &both {
        let set = sets.entry(r.k).or_default();
        if let Some(s) = &r.s {
            set.insert(s.clone());
        }
    }
    let mut want: Vec<String> = sets
        .iter()
        .map(|(k, set)| {
            format!(
                "{}|{}",
                k.map_or("∅".to_string(), |k| k.to_string()),
                set.len()
            )
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sort_across_worker_processes_matches_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let data = rows(6000, 8);
    write_rows(dir.path(), "a.parquet", &data);
    let cluster = cluster::ProcessCluster::start(2).await;
    let client = cluster.client().await;
    let sorted = Dataset::read_parquet(&[dir.path()])
        .unwrap()
        .sort([asc(col("s")), asc(col("k"))])
        .unwrap()
        .select([col("k"), col("s")])
        .unwrap();
    let job = client
        .submit_with(&sorted, Sink::Collect, "sort", options())
        .await
        .unwrap();
    let got = key_sequence(&job.collect().await.unwrap());
    let mut want: Vec<_> = data.iter().map(|r| (r.k, r.s.clone())).collect();
    want.sort_by(|a, b| {
        compare(&a.1, &b.1, false, false).then_with(|| compare(&a.0, &b.0, false, false))
    });
    assert_eq!(got, want);
}
