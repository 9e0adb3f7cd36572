//! Adaptive execution benchmark: a join whose right side the planner must shuffle (its files
//! are far larger than the broadcast threshold) but which a filter makes small, run with
//! adaptive execution (the right side runs first, is measured, and is broadcast: the left side
//! is never shuffled) and without it (`broadcast_threshold: Some(0)`: both sides shuffled),
//! alternately, on the same embedded cluster, in the same run.
//!
//! ```text
//! cargo run --release -p quiver-benches --bin adaptive -- --data /tmp/quiver-bench --runs 3
//! ```
//!
//! The query is the suite's join (lineitem ⋈ orders, revenue per customer, top 10) over 1% of
//! the customers (`o_custkey % 100 = 0`), on the suite's TPC-H files (`suite` generates them
//! under `--data`). Every run's result must equal the first one's. It prints a Markdown table:
//! each variant's median, and the speed-up of adaptive execution over the static plan.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use arrow::array::AsArray;
use arrow::datatypes::{Float64Type, Int64Type};
use arrow::record_batch::RecordBatch;
use clap::Parser;
use quiver::prelude::*;
use quiver::{JobOptions, LocalCluster};

#[derive(Parser, Debug)]
struct Args {
    /// The suite's data directory (its `tpch/lineitem` and `tpch/orders`).
    #[arg(long, default_value = "/tmp/quiver-bench")]
    data: PathBuf,
    /// Runs of each variant; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Workers of the embedded cluster (1 slot each).
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

/// The join over 1% of the customers.
fn query(args: &Args) -> anyhow::Result<Dataset> {
    let tpch = args.data.join("tpch");
    let orders = Dataset::read_parquet(&[tpch.join("orders")])?
        .filter((col("o_custkey") % lit(100i64)).eq(lit(0i64)))?;
    Ok(Dataset::read_parquet(&[tpch.join("lineitem")])?
        .select([
            col("l_orderkey"),
            (col("l_extendedprice") * (lit(1.0) - col("l_discount"))).alias("revenue"),
        ])?
        .join_with(orders, JoinOn::pairs([("l_orderkey", "o_orderkey")]))?
        .group_by(["o_custkey"])
        .agg([sum(col("revenue")).alias("revenue")])?
        .top_k([desc(col("revenue")), asc(col("o_custkey"))], 10)?)
}

/// (customer, revenue) rows of the result, in order.
fn top_customers(batches: &[RecordBatch]) -> Vec<(i64, f64)> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column(0).as_primitive::<Int64Type>().clone();
            let r = b.column(1).as_primitive::<Float64Type>().clone();
            (0..b.num_rows()).map(move |i| (c.value(i), r.value(i)))
        })
        .collect()
}

/// The same customers in the same order, with revenues equal up to float summation order.
fn same(a: &[(i64, f64)], b: &[(i64, f64)]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((ca, ra), (cb, rb))| {
            ca == cb && (ra - rb).abs() <= 1e-9 * ra.abs().max(rb.abs()).max(1.0)
        })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.data.join("tpch/orders").exists() {
        bail!(
            "no TPC-H data under {}: run the suite once (it generates it there)",
            args.data.display()
        );
    }
    tokio::runtime::Runtime::new()?.block_on(bench(&args))
}

async fn bench(args: &Args) -> anyhow::Result<()> {
    let cluster = LocalCluster::builder()
        .workers(args.workers)
        .slots_per_worker(1)
        .start()
        .await?;
    let client = cluster.client().await?;
    let ds = query(args)?;
    let variants = [
        ("adaptive (default)", JobOptions::default()),
        (
            "static: both sides shuffled",
            JobOptions {
                broadcast_threshold: Some(0),
                ..Default::default()
            },
        ),
    ];
    let mut times: Vec<Vec<Duration>> = vec![vec![]; variants.len()];
    let mut first: Option<Vec<(i64, f64)>> = None;
    for run in 0..args.runs {
        for (i, (name, options)) in variants.iter().enumerate() {
            let started = Instant::now();
            let job = client
                .submit_with(&ds, Sink::Collect, name, *options)
                .await?;
            let batches = job
                .collect()
                .await
                .with_context(|| format!("{name} failed"))?;
            times[i].push(started.elapsed());
            let status = job.status().await?;
            let decided: Vec<String> = status
                .stages
                .iter()
                .filter_map(|s| s.adaptive.as_ref().map(|a| format!("stage {}: {a}", s.id)))
                .collect();
            eprintln!(
                "run {run} {name}: {:.2} s; {}",
                times[i].last().map_or(0.0, Duration::as_secs_f64),
                decided.join(" | ")
            );
            let rows = top_customers(&batches);
            match &first {
                None => first = Some(rows),
                Some(f) if !same(f, &rows) => {
                    bail!("{name} gave another result than the first run: {rows:?}, not {f:?}")
                }
                Some(_) => {}
            }
        }
    }
    let medians: Vec<Duration> = times.into_iter().map(median).collect();
    println!("| variant | median s | × static |");
    println!("| --- | --- | --- |");
    for ((name, _), m) in variants.iter().zip(&medians) {
        println!(
            "| {name} | {:.2} | {:.2} |",
            m.as_secs_f64(),
            medians[1].as_secs_f64() / m.as_secs_f64()
        );
    }
    Ok(())
}
