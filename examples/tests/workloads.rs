//! Every example workload at a small scale on a local cluster, checked against a reference
//! computed on one thread straight from the generated files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Float64Type, Int64Type};
use quiver::{LocalCluster, Sources};
use quiver_examples::jobs::{grep, pagerank, terasort, tpch};
use quiver_storage::S3TestServer;

async fn cluster() -> LocalCluster {
    LocalCluster::builder()
        .workers(2)
        .slots_per_worker(1)
        .start()
        .await
        .unwrap()
}

fn read_all(dir: &Path) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for f in quiver_examples::jobs::parquet_files(dir).unwrap() {
        out.extend(
            quiver_examples::jobs::read_parquet_file(&f)
                .unwrap()
                .map(Result::unwrap),
        );
    }
    out
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Moves every other Parquet file of `dir` into a new directory `to`: the examples take several
/// `--input` paths and must read them all.
fn split_inputs(dir: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let files = quiver_examples::jobs::parquet_files(dir).unwrap();
    assert!(files.len() >= 2);
    for f in files.iter().step_by(2) {
        std::fs::rename(f, to.join(f.file_name().unwrap())).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terasort_output_is_ordered_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    terasort::generate(&input, 60_000, 3, 7).unwrap();
    let second = dir.path().join("in2");
    split_inputs(&input, &second);
    let cluster = cluster().await;
    let client = cluster.client().await.unwrap();
    let out = dir.path().join("out");
    terasort::sort_job(&[&input, &second])
        .unwrap()
        .write_parquet(&client, &out)
        .await
        .unwrap();
    assert_sorted_and_complete(&out, 60_000);
}

/// A terasort output directory holds every one of `records` generated records once, keys
/// ascending across its files.
fn assert_sorted_and_complete(out: &Path, records: usize) {
    assert_eq!(terasort::validate(out).unwrap(), records as u64);
    // The same records: each record number once.
    let mut ids: Vec<String> = read_all(out)
        .iter()
        .flat_map(|b| {
            let p = b.column(1).as_binary::<i32>().clone();
            (0..p.len()).map(move |i| String::from_utf8_lossy(&p.value(i)[..20]).into_owned())
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_q1_and_top_customers_match_single_threaded_references() {
    let dir = tempfile::tempdir().unwrap();
    tpch::generate(dir.path(), 0.02, 3, 9).unwrap();
    let cluster = cluster().await;
    let client = cluster.client().await.unwrap();
    let lineitem = dir.path().join("lineitem");
    let lineitem_more = dir.path().join("lineitem-more");
    split_inputs(&lineitem, &lineitem_more);

    let got = tpch::q1(&[&lineitem, &lineitem_more])
        .unwrap()
        .collect(&client)
        .await
        .unwrap();
    let want = q1_reference(
        read_all(&lineitem)
            .into_iter()
            .chain(read_all(&lineitem_more)),
    );
    assert_q1(&got, &want);

    // Top customers reference.
    let mut customer_of: HashMap<i64, i64> = HashMap::new();
    for b in read_all(&dir.path().join("orders")) {
        let (k, c) = (
            b.column(0).as_primitive::<Int64Type>(),
            b.column(1).as_primitive::<Int64Type>(),
        );
        for i in 0..b.num_rows() {
            customer_of.insert(k.value(i), c.value(i));
        }
    }
    let mut revenue: HashMap<i64, f64> = HashMap::new();
    for b in read_all(&lineitem) {
        let key = b.column(0).as_primitive::<Int64Type>();
        let (price, disc) = (
            b.column(2).as_primitive::<Float64Type>(),
            b.column(3).as_primitive::<Float64Type>(),
        );
        for i in 0..b.num_rows() {
            if let Some(c) = customer_of.get(&key.value(i)) {
                *revenue.entry(*c).or_default() += price.value(i) * (1.0 - disc.value(i));
            }
        }
    }
    let mut want: Vec<(i64, f64)> = revenue.into_iter().collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    want.truncate(10);
    let got = tpch::top_customers(&dir.path().join("orders"), &lineitem, 10)
        .unwrap()
        .collect(&client)
        .await
        .unwrap();
    let got: Vec<(i64, f64)> = got
        .iter()
        .flat_map(|b| {
            let (c, r) = (
                b.column(0).as_primitive::<Int64Type>().clone(),
                b.column(1).as_primitive::<Float64Type>().clone(),
            );
            (0..c.len()).map(move |i| (c.value(i), r.value(i)))
        })
        .collect();
    assert_eq!(got.len(), 10);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.0, w.0);
        assert!(close(g.1, w.1), "{g:?} vs {w:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grep_finds_every_matching_line_with_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let files = quiver_examples::generate_corpus(dir.path(), 6 << 20, 3, 42, false).unwrap();
    let word = quiver_examples::rare_word(42);
    let cluster = cluster().await;
    let client = cluster.client().await.unwrap();
    // A commoner pattern than the rare word, so the test sees many matches.
    let pattern = format!(r"\b({word}|ze)\b");
    let batches = grep::grep_job(&files, &pattern)
        .unwrap()
        .collect(&client)
        .await
        .unwrap();
    let got = grep::number_lines(&batches).unwrap();
    let want = grep::grep_reference(&files, |line| {
        line.split(|c: char| !c.is_alphanumeric())
            .any(|w| w == word || w == "ze")
    })
    .unwrap();
    assert!(want.len() > 100, "{} matches", want.len());
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerank_rounds_match_the_single_threaded_iteration() {
    let dir = tempfile::tempdir().unwrap();
    pagerank::generate(dir.path(), 3000, 4, 5).unwrap();
    let cluster = cluster().await;
    let client = cluster.client().await.unwrap();
    let last = pagerank::run(&client, dir.path(), 3000, 4, &dir.path().join("work"))
        .await
        .unwrap();
    let got = pagerank::read_ranks(&last).unwrap();
    let want = pagerank::reference(dir.path(), 3000, 4).unwrap();
    assert_eq!(got.len(), 3000);
    for (node, rank) in got {
        assert!(
            close(rank, want[node as usize]),
            "node {node}: {rank} vs {}",
            want[node as usize]
        );
    }
}

/// Q1 computed on one thread from line item batches: per (return flag, line status), the sums
/// of quantity, price, discounted price and charge, and the row count.
fn q1_reference(
    lineitem: impl Iterator<Item = RecordBatch>,
) -> BTreeMap<(String, String), [f64; 5]> {
    let cutoff = 10471; // 1998-09-02 in days since 1970-01-01
    let mut want: BTreeMap<(String, String), [f64; 5]> = BTreeMap::new();
    for b in lineitem {
        let f = |c: usize| b.column(c).as_primitive::<Float64Type>().clone();
        let (qty, price, disc, tax) = (f(1), f(2), f(3), f(4));
        let (flag, status) = (
            b.column(5).as_string::<i32>(),
            b.column(6).as_string::<i32>(),
        );
        let ship = b.column(7).as_primitive::<Date32Type>();
        for i in 0..b.num_rows() {
            if ship.value(i) > cutoff {
                continue;
            }
            let e = want
                .entry((flag.value(i).into(), status.value(i).into()))
                .or_default();
            let dp = price.value(i) * (1.0 - disc.value(i));
            e[0] += qty.value(i);
            e[1] += price.value(i);
            e[2] += dp;
            e[3] += dp * (1.0 + tax.value(i));
            e[4] += 1.0;
        }
    }
    want
}

/// Q1's result rows match the reference, in order of flag and status, every group once.
fn assert_q1(got: &[RecordBatch], want: &BTreeMap<(String, String), [f64; 5]>) {
    let mut groups = Vec::new();
    for b in got {
        let (flag, status) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_string::<i32>(),
        );
        for i in 0..b.num_rows() {
            let v = |c: usize| b.column(c).as_primitive::<Float64Type>().value(i);
            let n = b.column(9).as_primitive::<Int64Type>().value(i);
            let key = (flag.value(i).to_string(), status.value(i).to_string());
            let w = want[&key];
            assert!(close(v(2), w[0]) && close(v(3), w[1]), "{key:?}");
            assert!(close(v(4), w[2]) && close(v(5), w[3]), "{key:?}");
            assert!(close(v(6), w[0] / w[4]), "{key:?} avg_qty");
            assert_eq!(n as f64, w[4]);
            groups.push(key);
        }
    }
    assert_eq!(groups, want.keys().cloned().collect::<Vec<_>>());
}

/// TPC-H Q1 and terasort with their inputs in a bucket of a real S3 server (moto) and their
/// outputs written there through the job-level commit, checked as the local runs are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_q1_and_terasort_read_from_and_write_to_a_bucket() {
    let Some(s3) = S3TestServer::start() else {
        return;
    };
    s3.create_bucket("warehouse");
    let dir = tempfile::tempdir().unwrap();
    tpch::generate(dir.path(), 0.01, 2, 9).unwrap();
    let lineitem = dir.path().join("lineitem");
    s3.upload_dir(&lineitem, "s3://warehouse/tpch/lineitem/");
    let records = dir.path().join("records");
    std::fs::create_dir_all(&records).unwrap();
    terasort::generate(&records, 30_000, 2, 7).unwrap();
    s3.upload_dir(&records, "s3://warehouse/terasort/in/");

    let cluster = cluster().await;
    let client = cluster
        .client()
        .await
        .unwrap()
        .with_storage_options(s3.options());
    let sources = Sources::with_storage(s3.options());

    tpch::q1_of(
        sources
            .read_parquet(&["s3://warehouse/tpch/lineitem/"])
            .unwrap(),
    )
    .unwrap()
    .write_parquet(&client, "s3://warehouse/tpch/q1")
    .await
    .unwrap();
    let q1 = dir.path().join("q1");
    let files = s3.download_dir("s3://warehouse/tpch/q1/", &q1);
    assert!(q1.join("_SUCCESS").is_file(), "{files:?}");
    assert_q1(
        &read_all(&q1),
        &q1_reference(read_all(&lineitem).into_iter()),
    );

    terasort::sort_records(
        sources
            .read_parquet(&["s3://warehouse/terasort/in/"])
            .unwrap(),
    )
    .unwrap()
    .write_parquet(&client, "s3://warehouse/terasort/out")
    .await
    .unwrap();
    let sorted = dir.path().join("sorted");
    s3.download_dir("s3://warehouse/terasort/out/", &sorted);
    assert!(sorted.join("_SUCCESS").is_file());
    assert_sorted_and_complete(&sorted, 30_000);
    cluster.shutdown().await;
}
