//! User functions end to end: this one binary is both the driver and its own workers.
//!
//! Rust closures cannot travel over the network, so workers must be built with the functions
//! compiled in. Run without arguments, this program starts a coordinator, then two worker
//! processes — itself, re-executed as `custom_udf worker --coordinator URL` — and runs two jobs
//! that use a row function, a batch function and a flat-map function:
//!
//! ```text
//! cargo run --release --example custom_udf                   # generated text
//! cargo run --release --example custom_udf -- --input dir/   # your own text files
//! ```
//!
//! To use your own cluster, start workers from this binary on each machine
//! (`custom_udf worker --coordinator http://host:50050`) and pass `--coordinator` to the driver.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use quiver::arrow::array::AsArray;
use quiver::arrow::datatypes::{Float64Type, Int64Type};
use quiver::prelude::*;
use quiver_examples::jobs::collect_named;
use quiver_examples::{custom_function_jobs, custom_functions, generate_corpus};

/// Row, batch and flat-map user functions on worker processes of this very binary.
#[derive(Parser, Debug)]
struct Args {
    /// Text files or directories (default: 16 MiB of generated text).
    #[arg(long, num_args = 1..)]
    input: Vec<PathBuf>,
    /// Use this coordinator (its workers must run this binary) instead of starting one.
    #[arg(long, env = "QUIVER_COORDINATOR")]
    coordinator: Option<String>,
    /// The token and TLS settings for --coordinator.
    #[command(flatten)]
    client: quiver::ClientArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("worker") {
        // Worker mode: the same flags as `quiver-worker`, with our functions registered.
        let flags = std::iter::once(argv[0].clone()).chain(argv[2..].iter().cloned());
        quiver::worker::run_worker(custom_functions(), flags).await?;
        return Ok(());
    }
    let args = Args::parse();
    let inputs = if args.input.is_empty() {
        let dir = std::env::temp_dir().join("quiver-custom-udf-input");
        generate_corpus(&dir, 16 << 20, 4, 7, false)?;
        vec![dir]
    } else {
        args.input
    };

    // A coordinator (in this process, unless one was given) and two workers of our own.
    let (cluster, url, options) = match args.coordinator {
        Some(url) => (None, url, args.client.options()),
        None => {
            let cluster = LocalCluster::builder().workers(0).start().await?;
            let url = cluster.url().to_string();
            let options = cluster.client_options();
            (Some(cluster), url, options)
        }
    };
    let mut workers: Vec<Child> = Vec::new();
    if let Some(cluster) = &cluster {
        for i in 0..2 {
            workers.push(
                Command::new(std::env::current_exe()?)
                    .args(["worker", "--coordinator", &url, "--slots", "1"])
                    // Each worker locks a work directory of its own.
                    .arg("--work-dir")
                    .arg(cluster.work_dir().join(format!("udf-worker-{i}")))
                    // The local cluster's own token, through the environment (never argv,
                    // which every user of the machine can read).
                    .env("QUIVER_TOKEN", cluster.token())
                    .stdout(Stdio::null())
                    .spawn()
                    .context("starting a worker process")?,
            );
        }
    }
    let client = Client::connect_with(&url, options).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while client
        .list_workers()
        .await?
        .iter()
        .filter(|w| !w.functions.is_empty())
        .count()
        < 2
    {
        anyhow::ensure!(Instant::now() < deadline, "workers did not register");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let started = Instant::now();
    let functions = custom_functions();
    let (by_length, bigrams) = custom_function_jobs(&inputs, &functions)?;
    println!("{:>6} {:>10} {:>12}", "length", "words", "vowel share");
    let mut rows: Vec<(i64, i64, f64)> = Vec::new();
    for b in collect_named(&client, &by_length, "udf-words-by-length").await? {
        let (len, n, share) = (
            b.column(0).as_primitive::<Int64Type>(),
            b.column(1).as_primitive::<Int64Type>(),
            b.column(2).as_primitive::<Float64Type>(),
        );
        rows.extend((0..b.num_rows()).map(|r| (len.value(r), n.value(r), share.value(r))));
    }
    rows.sort_by_key(|r| r.0);
    for (len, n, share) in rows.iter().take(12) {
        println!("{len:>6} {n:>10} {share:>12.3}");
    }
    let mut top: Vec<(String, i64)> = Vec::new();
    for b in collect_named(&client, &bigrams, "udf-bigrams").await? {
        let (g, n) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_primitive::<Int64Type>(),
        );
        top.extend((0..b.num_rows()).map(|r| (g.value(r).to_string(), n.value(r))));
    }
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let shown: Vec<String> = top
        .iter()
        .take(10)
        .map(|(g, n)| format!("{g} {n}"))
        .collect();
    println!("\nmost common bigrams: {}", shown.join(", "));
    println!("elapsed: {:.2} s", started.elapsed().as_secs_f64());

    for mut w in workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    if let Some(cluster) = cluster {
        cluster.shutdown().await;
    }
    Ok(())
}
