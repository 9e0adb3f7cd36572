//! TeraSort: sorts 100-byte records (10-byte key, 90-byte payload) by key, writes them as
//! Parquet, and checks the output's global order and record count.
//!
//! ```text
//! cargo run --release --example terasort                       # 0.25 GiB generated
//! cargo run --release --example terasort -- --scale 1          # 1 GiB (10.7 M records)
//! cargo run --release --example terasort -- --input dir/ --output sorted/
//! cargo run --release --example terasort -- --coordinator http://127.0.0.1:50050
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, ensure};
use clap::Parser;
use quiver_examples::jobs::{ClusterArgs, ExampleCluster, generated_dir, init_logging, terasort};

/// Sort 100-byte records by their 10-byte key.
#[derive(Parser, Debug)]
struct Args {
    /// Parquet files (or directories) of `key` and `payload` binary columns (default:
    /// generated records).
    #[arg(long, num_args = 1..)]
    input: Vec<PathBuf>,
    /// GiB of records to generate when no --input is given.
    #[arg(long, default_value_t = 0.25)]
    scale: f64,
    /// Directory for the sorted Parquet files (default: a temporary directory).
    #[arg(long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    let args = Args::parse();
    let records = (args.scale * terasort::RECORDS_PER_SCALE as f64) as u64;
    let input = if args.input.is_empty() {
        vec![generated_dir(
            &format!("quiver-terasort-{records}"),
            |dir| terasort::generate(dir, records, 8, 42),
        )?]
    } else {
        args.input.clone()
    };
    let scratch = tempfile_dir("quiver-terasort-out")?;
    let output = args.output.clone().unwrap_or_else(|| scratch.clone());
    let cluster = ExampleCluster::connect(&args.cluster).await?;

    let started = Instant::now();
    let sorted = terasort::sort_job(&input)?;
    let job = sorted
        .write_parquet(&cluster.client, &output)
        .name("terasort")
        .submit()
        .await?;
    job.wait_with_progress().await.context("sort failed")?;
    let elapsed = started.elapsed();
    let count = terasort::validate(&output)?;
    if args.input.is_empty() {
        ensure!(
            count == records,
            "wrote {count} records, expected {records}"
        );
    }
    println!(
        "sorted {count} records ({:.2} GiB) in {:.2} s",
        count as f64 * 100.0 / (1u64 << 30) as f64,
        elapsed.as_secs_f64()
    );
    println!("output {} is in global key order", output.display());
    if args.output.is_none() {
        std::fs::remove_dir_all(&scratch)?;
    }
    cluster.shutdown().await;
    Ok(())
}

fn tempfile_dir(prefix: &str) -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(dir)
}
