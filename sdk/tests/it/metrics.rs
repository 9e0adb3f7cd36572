//! Both daemons' `/metrics` after a real job: a word count whose user function fails its
//! first call (one failed attempt, retried) runs on a local cluster serving its HTTP
//! endpoints; then the coordinator's and the workers' `/metrics`, scraped over HTTP, must
//! agree with what the job's own status says (attempts, the one failure and its reason, shuffle
//! bytes), histograms must be well formed, and a job name with quotes, a backslash and a
//! newline must come out escaped.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use quiver::prelude::*;
use quiver::{JobOptions, TaskAttemptState};

use crate::cluster::http_get;
use crate::corpus::{reference_counts, result_counts, write_corpus};
use crate::user_functions::{flaky_on_first_call, flaky_word_count};

/// The samples of a metrics page, by `name{labels}` as written; checks that every line is a
/// comment or a sample with a number.
fn samples(page: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in page
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("not a number: {line}")),
        };
        assert!(
            out.insert(series.to_string(), value).is_none(),
            "twice: {series}"
        );
    }
    out
}

fn get(s: &HashMap<String, f64>, series: &str) -> f64 {
    *s.get(series)
        .unwrap_or_else(|| panic!("no {series} in {:#?}", s.keys().collect::<Vec<_>>()))
}

/// The body of `GET base/metrics` with `auth`, after checking it answered 200.
fn scrape(base: &str, auth: Option<&str>) -> String {
    let answer = http_get(base, "/metrics", auth);
    assert!(answer.starts_with("HTTP/1.1 200"), "{base}: {answer}");
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    body.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_of_both_daemons_match_what_a_job_with_a_retry_did() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 2, 300, 66);
    let (functions, _) = flaky_on_first_call();
    let cluster = LocalCluster::builder()
        .workers(2)
        .slots_per_worker(1)
        .functions(functions.clone())
        .serve_http(true)
        .start()
        .await
        .unwrap();
    let client = cluster.client().await.unwrap();
    let name = "count \"words\" \\ all\nof them";
    let job = client
        .submit_with(
            &flaky_word_count(&files, &functions),
            Sink::Collect,
            name,
            JobOptions {
                shuffle_partitions: Some(3),
                ..JobOptions::default()
            },
        )
        .await
        .unwrap();
    let batches = job.collect().await.unwrap();
    assert_eq!(result_counts(&batches), reference_counts(&files));
    let details = job.details().await.unwrap();
    let attempts: Vec<_> = details.stages.iter().flat_map(|s| &s.attempts).collect();
    let count = |state: TaskAttemptState| attempts.iter().filter(|a| a.state == state).count();
    let succeeded = count(TaskAttemptState::Succeeded) as f64;
    assert_eq!(count(TaskAttemptState::Failed), 1, "{attempts:#?}");
    let tasks: u32 = details.stages.iter().map(|s| s.tasks_total).sum();
    assert!(succeeded >= tasks as f64);
    let (read, fetched) = attempts
        .iter()
        .filter(|a| a.state == TaskAttemptState::Succeeded)
        .fold((0, 0), |(r, f), a| {
            (r + a.shuffle_bytes_read, f + a.shuffle_bytes_fetched)
        });
    assert!(read > 0);

    // The coordinator's.
    let dashboard = cluster.dashboard_url().expect("dashboard served");
    let auth = format!("Bearer {}", cluster.token());
    assert!(http_get(&dashboard, "/metrics", None).starts_with("HTTP/1.1 401"));
    let page = scrape(&dashboard, Some(&auth));
    let c = samples(&page);
    assert_eq!(
        get(&c, r#"quiver_task_attempts_total{outcome="succeeded"}"#),
        succeeded
    );
    assert_eq!(
        get(&c, r#"quiver_task_attempts_total{outcome="failed"}"#),
        1.0
    );
    assert_eq!(
        get(&c, r#"quiver_task_failures_total{reason="task_error"}"#),
        1.0
    );
    assert_eq!(
        get(&c, r#"quiver_task_retries_total{reason="task_error"}"#),
        1.0
    );
    for reason in ["not_retryable", "fetch_failed", "worker_lost"] {
        let series = format!("quiver_task_failures_total{{reason=\"{reason}\"}}");
        assert_eq!(get(&c, &series), 0.0);
    }
    assert_eq!(get(&c, "quiver_shuffle_bytes_read_total"), read as f64);
    assert_eq!(
        get(&c, "quiver_shuffle_bytes_fetched_total"),
        fetched as f64
    );
    // Histograms: cumulative buckets, the last one (+Inf) the count.
    assert_eq!(get(&c, "quiver_task_duration_seconds_count"), succeeded);
    let buckets: Vec<f64> = page
        .lines()
        .filter(|l| l.starts_with("quiver_task_duration_seconds_bucket"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert_eq!(buckets.last().copied(), Some(succeeded));
    assert_eq!(
        get(&c, r#"quiver_task_duration_seconds_bucket{le="+Inf"}"#),
        succeeded
    );
    assert_eq!(
        get(
            &c,
            r#"quiver_job_duration_seconds_count{state="succeeded"}"#
        ),
        1.0
    );
    assert!(get(&c, r#"quiver_job_duration_seconds_sum{state="succeeded"}"#) > 0.0);
    assert_eq!(get(&c, r#"quiver_jobs{state="succeeded"}"#), 1.0);
    assert_eq!(get(&c, r#"quiver_workers{state="alive"}"#), 2.0);
    assert_eq!(get(&c, r#"quiver_tasks{state="running"}"#), 0.0);
    assert_eq!(get(&c, "quiver_tasks_queued"), 0.0);
    // The name, escaped: \" for quotes, \\ for the backslash, \n for the newline.
    let info = format!(
        r#"quiver_job_info{{job="{}",name="count \"words\" \\ all\nof them",state="succeeded"}}"#,
        job.id()
    );
    assert_eq!(get(&c, &info), 1.0);
    let workers = client.list_workers().await.unwrap();
    for w in &workers {
        let age = format!(
            "quiver_worker_heartbeat_age_seconds{{worker=\"{}\"}}",
            w.worker_id
        );
        assert!(get(&c, &age) >= 0.0);
    }

    // Each worker's: it needs the token too.
    let mut served = 0.0;
    let (mut worker_succeeded, mut worker_failed, mut worker_fetched) = (0.0, 0.0, 0.0);
    for i in 0..2 {
        let base = cluster.worker_http_url(i).expect("worker endpoint served");
        assert!(http_get(&base, "/metrics", None).starts_with("HTTP/1.1 401"));
        let w = samples(&scrape(&base, Some(&auth)));
        assert_eq!(get(&w, "quiver_worker_slots"), 1.0);
        assert_eq!(get(&w, "quiver_worker_busy_slots"), 0.0);
        assert_eq!(get(&w, "quiver_worker_fetch_failures_total"), 0.0);
        assert_eq!(get(&w, "quiver_worker_registered"), 1.0);
        served += get(&w, "quiver_worker_shuffle_bytes_served_total");
        worker_fetched += get(&w, "quiver_worker_shuffle_bytes_fetched_total");
        worker_succeeded += get(
            &w,
            r#"quiver_worker_task_attempts_total{outcome="succeeded"}"#,
        );
        worker_failed += get(&w, r#"quiver_worker_task_attempts_total{outcome="failed"}"#);
    }
    // Served: the map output other workers fetched, and the results the driver collected.
    assert!(
        served >= fetched as f64 && served > 0.0,
        "{served} {fetched}"
    );
    assert_eq!(worker_fetched > 0.0, fetched > 0);
    assert_eq!(worker_failed, 1.0);
    // A worker may also finish an attempt the coordinator had stopped (a speculated task).
    assert!(worker_succeeded >= succeeded);

    // What the workers served reaches the coordinator with their heartbeats.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let workers = client.list_workers().await.unwrap();
        let reported: u64 = workers.iter().filter_map(|w| w.shuffle_bytes_served).sum();
        if reported as f64 == served {
            assert!(workers.iter().all(|w| w.memory_reserved_bytes.is_some()));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "heartbeats say {reported} bytes served; the workers say {served}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.shutdown().await;
}
