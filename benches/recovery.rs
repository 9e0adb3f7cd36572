//! Recovery benchmark: how much longer a job takes when one of its workers is killed (SIGKILL)
//! halfway through, or when its coordinator is killed halfway and started again at once on the
//! same job log (as a supervisor would), compared with the same job without failures, in the
//! same run.
//!
//! ```text
//! cargo run --release -p quiver-benches --bin recovery -- --size 512 --runs 3
//! ```
//!
//! It starts a coordinator and `--workers` workers as separate processes — this binary
//! re-executed in coordinator or worker mode — runs word count over generated text, and checks
//! that every run's output equals the failure-free output. It prints a Markdown table and a
//! JSON line. A worker kill's slowdown is mostly the failure detection time (the heartbeat
//! timeout, or the first failed launch on the dead worker) plus recomputing the lost map
//! outputs; a coordinator kill's is the restart, the workers registering again and the tasks
//! that were running at the kill (finished outputs are adopted, not recomputed).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use arrow::array::{AsArray, Int64Array};
use clap::{Parser, Subcommand};
use quiver::Client;
use quiver::prelude::*;
use quiver_benches::process_cluster::{ProcessCluster, spawn_self};

#[derive(Parser, Debug)]
struct Args {
    #[command(subcommand)]
    mode: Option<Mode>,
    /// MiB of generated text.
    #[arg(long, default_value_t = 512)]
    size: u64,
    /// Worker processes (1 slot each).
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// Runs of each variant; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The coordinator's heartbeat timeout, in seconds.
    #[arg(long, default_value_t = 2.0)]
    heartbeat_timeout: f64,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Internal: run as the coordinator.
    Coordinator {
        bind: String,
        heartbeat_timeout: f64,
        /// Its job log's directory, or `none`.
        state_dir: String,
    },
    /// Internal: run as a worker.
    Worker {
        coordinator: String,
        work_dir: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match args.mode {
        Some(Mode::Coordinator {
            bind,
            heartbeat_timeout,
            state_dir,
        }) => runtime.block_on(async {
            let c = quiver_coordinator::start(quiver_coordinator::CoordinatorConfig {
                bind: bind.parse()?,
                heartbeat_timeout: Duration::from_secs_f64(heartbeat_timeout),
                state_dir: (state_dir != "none").then(|| PathBuf::from(state_dir)),
                ..Default::default()
            })
            .await?;
            println!("listening on {}", c.url());
            std::future::pending::<()>().await;
            Ok(())
        }),
        Some(Mode::Worker {
            coordinator,
            work_dir,
        }) => runtime.block_on(async {
            let w = quiver_worker::start(quiver_worker::WorkerConfig {
                coordinator_url: coordinator,
                slots: 1,
                work_dir,
                heartbeat_interval: Duration::from_millis(500),
                ..Default::default()
            })
            .await?;
            println!("listening on {}", w.address());
            std::future::pending::<()>().await;
            Ok(())
        }),
        None => runtime.block_on(bench(&args)),
    }
}

/// The coordinator's arguments in child mode: bound to `bind`, its job log in `run_dir` (or
/// none, when `job_log` is false).
fn coordinator_args(
    args: &Args,
    bind: &str,
    run_dir: &std::path::Path,
    job_log: bool,
) -> Vec<String> {
    let state_dir = match job_log {
        true => run_dir.join("state").to_string_lossy().into_owned(),
        false => "none".into(),
    };
    vec![
        "coordinator".into(),
        bind.into(),
        args.heartbeat_timeout.to_string(),
        state_dir,
    ]
}

async fn start_cluster(
    args: &Args,
    run_dir: &std::path::Path,
    job_log: bool,
) -> anyhow::Result<ProcessCluster> {
    let dir = run_dir.join("work").to_string_lossy().into_owned();
    let coordinator = coordinator_args(args, "127.0.0.1:0", run_dir, job_log);
    let coordinator: Vec<&str> = coordinator.iter().map(String::as_str).collect();
    ProcessCluster::start(
        &coordinator,
        args.workers,
        |url| vec!["worker".into(), url.into(), dir.clone()],
        Duration::from_secs(20),
    )
    .await
}

/// What goes wrong halfway through a run.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Failure {
    None,
    /// None, and the coordinator keeps no job log (`--state-dir none`): what the log costs.
    NoneWithoutLog,
    /// Worker 0 is killed (SIGKILL).
    WorkerKilled,
    /// The coordinator is killed (SIGKILL) and started again at once on the same address and
    /// job log; the driver reconnects.
    CoordinatorKilled,
}

type Counts = HashMap<String, i64>;

fn counts(batches: &[RecordBatch]) -> anyhow::Result<Counts> {
    let mut out = HashMap::new();
    for b in batches {
        let w = b.column(0).as_string::<i32>();
        let n = b
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .context("count column")?;
        for i in 0..b.num_rows() {
            out.insert(w.value(i).to_string(), n.value(i));
        }
    }
    Ok(out)
}

/// One run on a fresh cluster; `failure` happens `after` the submission.
async fn run(
    args: &Args,
    inputs: &[PathBuf],
    failure: Failure,
    after: Duration,
) -> anyhow::Result<(Duration, Counts)> {
    let run_dir = std::env::temp_dir().join(format!("quiver-recovery-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    let job_log = failure != Failure::NoneWithoutLog;
    let mut cluster = start_cluster(args, &run_dir, job_log).await?;
    let client = Client::connect(&cluster.url).await?;
    let dataset = quiver_examples::word_count(inputs)?;
    let started = Instant::now();
    let job = client.submit(&dataset, Sink::Collect).await?;
    let collecting = tokio::spawn(async move { job.collect().await });
    match failure {
        Failure::None | Failure::NoneWithoutLog => {}
        Failure::WorkerKilled => {
            tokio::time::sleep(after).await;
            cluster.workers[0].kill()?;
        }
        Failure::CoordinatorKilled => {
            tokio::time::sleep(after).await;
            cluster.coordinator.kill()?;
            cluster.coordinator.wait()?;
            let bind = cluster
                .url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string();
            let again = coordinator_args(args, &bind, &run_dir, true);
            let again: Vec<&str> = again.iter().map(String::as_str).collect();
            cluster.coordinator = spawn_self(&again)?.0;
        }
    }
    let batches = collecting.await??;
    let elapsed = started.elapsed();
    drop(cluster);
    let _ = std::fs::remove_dir_all(&run_dir);
    Ok((elapsed, counts(&batches)?))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn bench(args: &Args) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("quiver-wordcount-{}mib", args.size));
    if !dir.join("_COMPLETE").exists() {
        eprintln!(
            "generating {} MiB of text in {} ...",
            args.size,
            dir.display()
        );
        quiver_examples::generate_corpus(&dir, args.size << 20, 8, 42, true)?;
        std::fs::write(dir.join("_COMPLETE"), b"")?;
    }
    let inputs = vec![dir];
    let mut clean = vec![];
    let mut unlogged = vec![];
    let mut reference: Option<Counts> = None;
    // Alternately, so that both see the same machine.
    for i in 0..args.runs {
        for (failure, times, what) in [
            (Failure::None, &mut clean, "no failure"),
            (
                Failure::NoneWithoutLog,
                &mut unlogged,
                "no failure, no job log",
            ),
        ] {
            let (t, c) = run(args, &inputs, failure, Duration::ZERO).await?;
            eprintln!("run {i}: {what}: {:.2} s", t.as_secs_f64());
            if reference.as_ref().is_some_and(|r| *r != c) {
                bail!("two failure-free runs disagree");
            }
            reference = Some(c);
            times.push(t);
        }
    }
    let reference = reference.context("no runs")?;
    let baseline = median(clean.clone());
    let mut killed = vec![];
    let mut restarted = vec![];
    for (failure, times, what) in [
        (Failure::WorkerKilled, &mut killed, "worker"),
        (Failure::CoordinatorKilled, &mut restarted, "coordinator"),
    ] {
        for i in 0..args.runs {
            let (t, c) = run(args, &inputs, failure, baseline / 2).await?;
            eprintln!(
                "run {i}: {what} killed at {:.2} s: {:.2} s",
                (baseline / 2).as_secs_f64(),
                t.as_secs_f64()
            );
            if c != reference {
                bail!("the run with a killed {what} gave a different result");
            }
            times.push(t);
        }
    }
    let with_kill = median(killed.clone());
    let ratio = with_kill.as_secs_f64() / baseline.as_secs_f64();
    let with_restart = median(restarted.clone());
    let restart_ratio = with_restart.as_secs_f64() / baseline.as_secs_f64();
    let fmt = |v: &[Duration]| {
        let min = v.iter().min().copied().unwrap_or_default().as_secs_f64();
        let max = v.iter().max().copied().unwrap_or_default().as_secs_f64();
        format!(
            "{:.2} s ({min:.2}–{max:.2})",
            median(v.to_vec()).as_secs_f64()
        )
    };
    println!(
        "| variant | wall time, median (min–max) of {} | ratio |",
        args.runs
    );
    println!("| --- | --- | --- |");
    let log_ratio = baseline.as_secs_f64() / median(unlogged.clone()).as_secs_f64();
    println!("| no failure | {} | 1.00 |", fmt(&clean));
    println!(
        "| no failure, coordinator without job log | {} | {:.2} |",
        fmt(&unlogged),
        1.0 / log_ratio
    );
    println!(
        "| 1 of {} workers killed halfway | {} | {ratio:.2} |",
        args.workers,
        fmt(&killed)
    );
    println!(
        "| coordinator killed halfway, restarted at once | {} | {restart_ratio:.2} |",
        fmt(&restarted)
    );
    println!(
        "{}",
        serde_json::json!({
            "benchmark": "recovery",
            "workload": "wordcount",
            "size_mib": args.size,
            "workers": args.workers,
            "heartbeat_timeout_s": args.heartbeat_timeout,
            "baseline_s": baseline.as_secs_f64(),
            "killed_s": with_kill.as_secs_f64(),
            "slowdown": ratio,
            "coordinator_restarted_s": with_restart.as_secs_f64(),
            "coordinator_restart_slowdown": restart_ratio,
            "without_job_log_s": median(unlogged.clone()).as_secs_f64(),
            "job_log_cost": log_ratio,
            "outputs_identical": true,
        })
    );
    Ok(())
}
