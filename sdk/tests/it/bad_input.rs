//! Bad input gets a clear error naming the thing, and the cluster keeps serving other jobs.

use std::time::{Duration, Instant};

use quiver::Error;
use quiver::prelude::*;
use quiver_proto::v1 as pb;

use crate::cluster;
use crate::corpus::{reference_counts, write_corpus};

#[test]
fn a_missing_path_is_named() {
    let err = Dataset::read_text(&["/no/such/quiver/input"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/no/such/quiver/input") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn an_empty_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("_SUCCESS"), b"").unwrap();
    let err = Dataset::read_text(&[dir.path()]).unwrap_err().to_string();
    assert!(
        err.contains("contains no files") && err.contains(&*dir.path().to_string_lossy()),
        "{err}"
    );
}

#[test]
fn a_truncated_or_foreign_parquet_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    crate::operators::write_sample_parquet(&good, 100, 9);
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.parquet");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let foreign = dir.path().join("notes.parquet");
    std::fs::write(&foreign, "just some text, not parquet\n").unwrap();
    for bad in [&truncated, &foreign] {
        let err = Dataset::read_parquet(&[bad]).unwrap_err().to_string();
        assert!(
            err.contains(&*bad.to_string_lossy()) && err.contains("Parquet"),
            "{err}"
        );
    }
}

#[test]
fn an_unknown_column_is_rejected_before_submission() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.parquet");
    crate::operators::write_sample_parquet(&path, 10, 1);
    let err = Dataset::read_parquet(&[&path])
        .unwrap()
        .filter(col("prise").gt(lit(3)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("'prise'"), "{err}");
    assert!(
        err.contains("available columns: key, qty, price, note"),
        "{err}"
    );
    let err = Dataset::read_parquet(&[&path])
        .unwrap()
        .group_by(["nope"])
        .agg([count()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("'nope'"), "{err}");
}

#[tokio::test]
async fn an_unreachable_coordinator_fails_within_seconds() {
    // Bind a port, then free it, so nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let err = Client::connect(&url).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(err, Error::Connect { .. }));
    assert!(err.to_string().contains(&url), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_fails_the_job_naming_the_file_and_the_cluster_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("latin1.txt");
    std::fs::write(&bad, b"caf\xe9 au lait\n").unwrap();
    let cluster = cluster::local(2).await;
    let client = cluster.client().await.unwrap();
    let err = Dataset::read_text(&[&bad])
        .unwrap()
        .count(&client)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::JobFailed { .. }), "{msg}");
    assert!(
        msg.contains("latin1.txt") && msg.contains("UTF-8") && msg.contains("offset 3"),
        "{msg}"
    );
    assert!(msg.contains("not retryable"), "{msg}");

    // The same cluster still runs the next job.
    let good = write_corpus(&dir.path().join("good"), 2, 100, 8);
    let lines: usize = good
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().lines().count())
        .sum();
    assert_eq!(
        Dataset::read_text(&good)
            .unwrap()
            .count(&client)
            .await
            .unwrap(),
        lines as u64
    );
    assert!(!reference_counts(&good).is_empty());
    cluster.shutdown().await;
}

#[test]
fn a_memory_limit_too_small_to_make_progress_stops_the_worker_with_the_numbers() {
    let out = std::process::Command::new(cluster::binary("quiver-worker"))
        .args(["--memory-limit", "1M", "--slots", "2"])
        .args(["--coordinator", "http://127.0.0.1:1"])
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--memory-limit 1048576 bytes gives each of 2 task slots 524288 bytes")
            && err.contains("at least"),
        "{err}"
    );
}

#[test]
fn bad_joins_sorts_unions_and_distinct_counts_are_named_before_submission() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.parquet");
    crate::operators::write_sample_parquet(&path, 10, 1);
    let ds = || Dataset::read_parquet(&[&path]).unwrap();
    // key is Utf8, qty is Int64.
    let err = ds()
        .join_with(ds(), JoinOn::pairs([("key", "qty")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("incompatible join key types") && err.contains("key = qty"),
        "{err}"
    );
    assert!(err.contains("Utf8") && err.contains("Int64"), "{err}");
    let err = ds()
        .join(ds(), ["nope"], JoinType::Inner)
        .unwrap_err()
        .to_string();
    assert!(err.contains("'nope'") && err.contains("join"), "{err}");
    let err = ds()
        .join_with(
            ds(),
            JoinOn::columns(["key"])
                .how(JoinType::Full)
                .strategy(JoinStrategy::Broadcast),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("full join cannot broadcast"), "{err}");

    let err = ds().sort([desc(col("prise"))]).unwrap_err().to_string();
    assert!(err.contains("'prise'") && err.contains("sort"), "{err}");

    let err = ds()
        .union(ds().select([col("key")]).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("union input 1 has columns (key: Utf8)"),
        "{err}"
    );

    let err = ds()
        .group_by(["key"])
        .agg([count_distinct(col("qty")), sum(col("price"))])
        .unwrap_err()
        .to_string();
    assert!(err.contains("count_distinct cannot be mixed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_rejected_and_the_coordinator_stays_up() {
    let cluster = cluster::local(1).await;
    let channel = tonic::transport::Endpoint::from_shared(cluster.url().to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let bearer: tonic::metadata::MetadataValue<_> =
        format!("Bearer {}", cluster.token()).parse().unwrap();
    let mut raw = pb::coordinator_client::CoordinatorClient::with_interceptor(
        channel,
        move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", bearer.clone());
            Ok(r)
        },
    );
    let status = raw
        .submit_job(pb::SubmitJobRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("plan"), "{}", status.message());
    let status = raw
        .submit_job(pb::SubmitJobRequest {
            plan: Some(pb::PlanNode {
                node: Some(pb::plan_node::Node::Filter(Box::new(pb::FilterNode {
                    input: None,
                    predicate: None,
                }))),
            }),
            sink: Some((&Sink::Collect).into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        status.message().contains("filter.input"),
        "{}",
        status.message()
    );
    let status = raw
        .get_job(pb::GetJobRequest {
            job_id: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("job id"), "{}", status.message());
    let status = raw
        .get_job(pb::GetJobRequest {
            job_id: quiver_plan::JobId::random().0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    // Still serving.
    let client = cluster.client().await.unwrap();
    assert_eq!(client.list_workers().await.unwrap().len(), 1);
    cluster.shutdown().await;
}
