//! TPC-H Q1 (pricing summary report) over a lineitem-like Parquet table.
//!
//! ```text
//! cargo run --release --example tpch_q1                   # scale factor 0.5 (3 M rows)
//! cargo run --release --example tpch_q1 -- --scale 4      # 24 M rows
//! cargo run --release --example tpch_q1 -- --input lineitem/ --output q1/
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use quiver_examples::jobs::{
    ClusterArgs, ExampleCluster, collect_named, generated_dir, init_logging, tpch,
};

/// Run TPC-H Q1 on a Quiver cluster.
#[derive(Parser, Debug)]
struct Args {
    /// Parquet files (or a directory) of the lineitem table (default: generated).
    #[arg(long, num_args = 1..)]
    input: Vec<PathBuf>,
    /// TPC-H scale factor of the generated table (1 = 6 M line items).
    #[arg(long, default_value_t = 0.5)]
    scale: f64,
    /// Also write the result as Parquet into this directory.
    #[arg(long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    let args = Args::parse();
    let lineitem = if args.input.is_empty() {
        vec![
            generated_dir(&format!("quiver-tpch-sf{}", args.scale), |dir| {
                tpch::generate(dir, args.scale, 8, 42)
            })?
            .join("lineitem"),
        ]
    } else {
        args.input.clone()
    };
    let cluster = ExampleCluster::connect(&args.cluster).await?;
    let started = Instant::now();
    let q1 = tpch::q1(&lineitem)?;
    let batches = collect_named(&cluster.client, &q1, "tpch-q1")
        .await
        .context("Q1 failed")?;
    let elapsed = started.elapsed();
    println!("{}", quiver_examples::jobs::format_table(&batches));
    println!("elapsed: {:.2} s", elapsed.as_secs_f64());
    if let Some(dir) = &args.output {
        q1.write_parquet(&cluster.client, dir)
            .name("tpch-q1-write")
            .await?;
        println!("wrote Parquet to {}", dir.display());
    }
    cluster.shutdown().await;
    Ok(())
}
