//! Jobs whose inputs are object store URLs: text, Parquet and CSV uploaded to a real moto S3
//! server, read by a `LocalCluster` through `s3://` URLs (prefixes and globs), checked against
//! references computed from the generated data. Skipped when moto is not installed.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use quiver::prelude::*;
use quiver::{JobOptions, Sources};
use quiver_storage::S3TestServer;

use crate::cluster;
use crate::corpus::{reference_counts, result_counts, write_corpus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_over_s3_splits_lines_like_local_files() {
    let Some(server) = S3TestServer::start() else {
        return;
    };
    server.create_bucket("text");
    let dir = tempfile::tempdir().unwrap();
    let mut files = write_corpus(dir.path(), 2, 2000, 11);
    // A file of ~9 MiB: more than one split (splits are at least 4 MiB) and more than one
    // ranged GET (8 MiB each), so lines straddle both kinds of boundary.
    let mut big = Vec::new();
    let pieces: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    while big.len() < 9 << 20 {
        for p in &pieces {
            big.extend_from_slice(p);
        }
    }
    let big_path = dir.path().join("part-99.txt");
    std::fs::write(&big_path, &big).unwrap();
    files.push(big_path);
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy();
        server.put(
            &format!("s3://text/corpus/{name}"),
            std::fs::read(f).unwrap(),
        );
    }
    // Skipped inside a directory, as for local ones.
    server.put("s3://text/corpus/_SUCCESS", b"not text".to_vec());
    server.put("s3://text/corpus/.hidden", b"zzz".to_vec());
    let expected = reference_counts(&files);

    let sources = Sources::with_storage(server.options());
    let lines = sources.read_text(&["s3://text/corpus/"]).unwrap();
    let Some(PlanNodeScan { files: listed }) = scan_files(&lines) else {
        panic!("not a scan");
    };
    assert_eq!(
        listed,
        vec![
            "s3://text/corpus/part-00.txt",
            "s3://text/corpus/part-01.txt",
            "s3://text/corpus/part-99.txt"
        ]
    );
    let counts = crate::wordcount::word_count_of(lines);
    let cluster = cluster::local(2).await;
    let client = cluster
        .client()
        .await
        .unwrap()
        .with_storage_options(server.options());
    let options = JobOptions {
        shuffle_partitions: Some(3),
        ..JobOptions::default()
    };
    let job = client
        .submit_with(&counts, Sink::Collect, "s3 wc", options)
        .await
        .unwrap();
    let done = job.wait().await.unwrap();
    assert!(
        done.stages[0].tasks_total > files.len() as u32,
        "the big file is read in several splits: {:?}",
        done.stages[0]
    );
    let got = result_counts(&job.collect().await.unwrap());
    assert_eq!(got, expected);
    cluster.shutdown().await;
}

/// The files a dataset's scan lists.
struct PlanNodeScan {
    files: Vec<String>,
}

fn scan_files(ds: &Dataset) -> Option<PlanNodeScan> {
    match ds.plan() {
        quiver_plan::PlanNode::Scan(s) => Some(PlanNodeScan {
            files: s.files.iter().map(|f| f.path.clone()).collect(),
        }),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_group_by_and_csv_glob_over_s3() {
    let Some(server) = S3TestServer::start() else {
        return;
    };
    server.create_bucket("tables");
    // Parquet: 3 files of 5000 rows in row groups of 700.
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Int64, false),
    ]));
    let mut expected: HashMap<String, (i64, i64)> = HashMap::new();
    for f in 0..3i64 {
        let keys: Vec<String> = (0..5000i64)
            .map(|i| format!("k{}", (i * 7 + f) % 37))
            .collect();
        let values: Vec<i64> = (0..5000i64).map(|i| i * f - 1000).collect();
        for (k, v) in keys.iter().zip(&values) {
            let e = expected.entry(k.clone()).or_default();
            e.0 += v;
            e.1 += 1;
        }
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(keys)),
                Arc::new(Int64Array::from(values)),
            ],
        )
        .unwrap();
        let mut bytes = Vec::new();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(700))
            .build();
        let mut writer = ArrowWriter::try_new(&mut bytes, schema.clone(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        server.put(&format!("s3://tables/sales/part-{f}.parquet"), bytes);
    }
    let sources = Sources::with_storage(server.options());
    let cluster = cluster::local(2).await;
    let client = cluster
        .client()
        .await
        .unwrap()
        .with_storage_options(server.options());
    let totals = sources
        .read_parquet(&["s3://tables/sales"])
        .unwrap()
        .group_by(["key"])
        .agg([sum(col("value")).alias("total"), count().alias("n")])
        .unwrap()
        .collect(&client)
        .await
        .unwrap();
    let mut got: HashMap<String, (i64, i64)> = HashMap::new();
    for b in &totals {
        let keys = b.column(0).as_string::<i32>();
        let total = b.column(1).as_primitive::<Int64Type>();
        let n = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            got.insert(keys.value(i).to_string(), (total.value(i), n.value(i)));
        }
    }
    assert_eq!(got, expected);

    // CSV: a glob picks two of three files.
    let mut csv_expected: HashMap<String, (i64, i64)> = HashMap::new();
    for day in 1..=2i64 {
        let mut text = String::from("city,amount\n");
        for i in 0..400i64 {
            text.push_str(&format!("c{},{}\n", i % 5, i * day));
            let e = csv_expected.entry(format!("c{}", i % 5)).or_default();
            e.0 += i * day;
            e.1 += 1;
        }
        server.put(&format!("s3://tables/csv/day-{day}.csv"), text.into_bytes());
    }
    server.put(
        "s3://tables/csv/other.csv",
        b"city,amount\nc1,1000000\n".to_vec(),
    );
    let rows = sources
        .read_csv(&["s3://tables/csv/day-*.csv"])
        .unwrap()
        .group_by(["city"])
        .agg([sum(col("amount")).alias("total"), count().alias("n")])
        .unwrap()
        .collect(&client)
        .await
        .unwrap();
    let mut got: HashMap<String, (i64, i64)> = HashMap::new();
    for b in &rows {
        let keys = b.column(0).as_string::<i32>();
        let total = b.column(1).as_primitive::<Int64Type>();
        let n = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            got.insert(keys.value(i).to_string(), (total.value(i), n.value(i)));
        }
    }
    assert_eq!(got, csv_expected);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_objects_are_errors_naming_the_url() {
    let Some(server) = S3TestServer::start() else {
        return;
    };
    server.create_bucket("sparse");
    let sources = Sources::with_storage(server.options());
    let e = sources
        .read_text(&["s3://sparse/missing.txt"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("s3://sparse/missing.txt"), "{e}");
    assert!(e.contains("does not exist"), "{e}");
    let e = sources
        .read_parquet(&["s3://sparse/logs/*.parquet"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("s3://sparse/logs/*.parquet"), "{e}");

    // Listed, then gone before the workers read it: the task's error names the URL.
    server.put("s3://sparse/gone.txt", b"a b c\n".to_vec());
    let lines = sources.read_text(&["s3://sparse/gone.txt"]).unwrap();
    server.delete("s3://sparse/gone.txt");
    let cluster = cluster::local(1).await;
    let client = cluster
        .client()
        .await
        .unwrap()
        .with_storage_options(server.options());
    let e = lines.collect(&client).await.unwrap_err().to_string();
    assert!(e.contains("s3://sparse/gone.txt"), "{e}");
    cluster.shutdown().await;
}
