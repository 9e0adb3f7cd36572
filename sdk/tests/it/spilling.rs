//! Jobs whose operator state is several times the workers' memory limit (8 MiB per slot, the
//! smallest allowed): aggregation, sort and join spill to disk and still give the reference
//! results, and their spill files are gone afterwards.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use arrow::record_batch::RecordBatch;
use quiver::prelude::*;
use quiver::{JobHandle, JobOptions, LocalCluster};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::joins::write_parquet;

const LIMIT: usize = 8 << 20;

async fn small_memory_cluster() -> LocalCluster {
    LocalCluster::builder()
        .workers(2)
        .slots_per_worker(1)
        .memory_limit(LIMIT)
        .start()
        .await
        .unwrap()
}

fn options() -> JobOptions {
    JobOptions {
        shuffle_partitions: Some(2),
        batch_size: Some(4096),
        broadcast_threshold: Some(0),
    }
}

/// Rows (k: Utf8 of `distinct` values, v: Int64, pad: 40-byte Utf8).
fn write_rows(path: &Path, rows: usize, distinct: usize, seed: u64) -> Vec<(String, i64)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let data: Vec<(String, i64)> = (0..rows)
        .map(|_| {
            (
                format!("key-{:08}", rng.random_range(0..distinct)),
                rng.random_range(-1000..1000),
            )
        })
        .collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int64, false),
            Field::new("pad", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(StringArray::from(
                data.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                data.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(vec!["x".repeat(40); rows])),
        ],
    )
    .unwrap();
    write_parquet(path, &batch, 50_000);
    data
}

/// Total spilled bytes of a finished job, and the cluster's spill directories are empty.
async fn spilled(job: &JobHandle, cluster: &LocalCluster) -> u64 {
    let status = job.wait().await.unwrap();
    let spill_files = walk(cluster.work_dir())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/spill/") && p.is_file())
        .count();
    assert_eq!(spill_files, 0, "spill files left behind");
    status.stages.iter().map(|s| s.spilled_bytes).sum()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregation_with_more_groups_than_memory_spills_and_matches() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_rows(&dir.path().join("a.parquet"), 600_000, 400_000, 1);
    let cluster = small_memory_cluster().await;
    let client = cluster.client().await.unwrap();
    let ds = Dataset::read_parquet(&[dir.path()])
        .unwrap()
        .group_by(["k"])
        .agg([sum(col("v")).alias("s"), count().alias("n")])
        .unwrap();
    let job = client
        .submit_with(&ds, Sink::Collect, "big agg", options())
        .await
        .unwrap();
    let batches = job.collect().await.unwrap();
    assert!(spilled(&job, &cluster).await > 0, "nothing spilled");
    let mut want: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for (k, v) in &data {
        let e = want.entry(k.as_str()).or_default();
        e.0 += v;
        e.1 += 1;
    }
    let mut got: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for b in &batches {
        let (k, s, n) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_primitive::<Int64Type>(),
            b.column(2).as_primitive::<Int64Type>(),
        );
        for i in 0..b.num_rows() {
            assert!(
                got.insert(k.value(i).to_string(), (s.value(i), n.value(i)))
                    .is_none(),
                "key {} twice",
                k.value(i)
            );
        }
    }
    assert_eq!(got.len(), want.len());
    assert!(want.iter().all(|(k, v)| got.get(*k) == Some(v)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sort_larger_than_memory_merges_spilled_runs_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_rows(&dir.path().join("a.parquet"), 400_000, 1_000_000, 2);
    let cluster = small_memory_cluster().await;
    let client = cluster.client().await.unwrap();
    let ds = Dataset::read_parquet(&[dir.path()])
        .unwrap()
        .sort([col("k"), col("v")])
        .unwrap()
        .select([col("k"), col("v")])
        .unwrap();
    let job = client
        .submit_with(&ds, Sink::Collect, "big sort", options())
        .await
        .unwrap();
    let batches = job.collect().await.unwrap();
    assert!(spilled(&job, &cluster).await > 0, "nothing spilled");
    let mut got = Vec::with_capacity(data.len());
    for b in &batches {
        let (k, v) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_primitive::<Int64Type>(),
        );
        got.extend((0..b.num_rows()).map(|i| (k.value(i).to_string(), v.value(i))));
    }
    let mut want = data;
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_whose_build_side_is_larger_than_memory_partitions_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("l")).unwrap();
    std::fs::create_dir_all(dir.path().join("r")).unwrap();
    let left = write_rows(&dir.path().join("l/l.parquet"), 100_000, 200_000, 3);
    let right = write_rows(&dir.path().join("r/r.parquet"), 300_000, 200_000, 4);
    let cluster = small_memory_cluster().await;
    let client = cluster.client().await.unwrap();
    let ds = Dataset::read_parquet(&[dir.path().join("l")])
        .unwrap()
        .select([col("k"), col("v")])
        .unwrap()
        .join(
            Dataset::read_parquet(&[dir.path().join("r")]).unwrap(),
            ["k"],
            JoinType::Left,
        )
        .unwrap()
        .group_by(["k"])
        .agg([
            count_of(col("v_right")).alias("matches"),
            sum(col("v_right")).alias("s"),
        ])
        .unwrap();
    let job = client
        .submit_with(&ds, Sink::Collect, "big join", options())
        .await
        .unwrap();
    let batches = job.collect().await.unwrap();
    assert!(spilled(&job, &cluster).await > 0, "nothing spilled");
    // Reference: per left row, its right partners.
    let mut right_by_key: HashMap<&str, (i64, i64)> = HashMap::new();
    for (k, v) in &right {
        let e = right_by_key.entry(k.as_str()).or_default();
        e.0 += 1;
        e.1 += v;
    }
    let mut want: BTreeMap<String, (i64, Option<i64>)> = BTreeMap::new();
    for (k, _) in &left {
        let e = want.entry(k.clone()).or_insert((0, None));
        if let Some((n, s)) = right_by_key.get(k.as_str()) {
            e.0 += n;
            e.1 = Some(e.1.unwrap_or(0) + s);
        }
    }
    let mut got: BTreeMap<String, (i64, Option<i64>)> = BTreeMap::new();
    for b in &batches {
        let (k, n, s) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_primitive::<Int64Type>(),
            b.column(2).as_primitive::<Int64Type>(),
        );
        for i in 0..b.num_rows() {
            got.insert(
                k.value(i).to_string(),
                (n.value(i), s.is_valid(i).then(|| s.value(i))),
            );
        }
    }
    assert_eq!(got, want);
}
