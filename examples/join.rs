//! orders ⋈ lineitem on the order key: revenue per customer, top 10 customers.
//!
//! ```text
//! cargo run --release --example join                  # scale factor 0.5
//! cargo run --release --example join -- --scale 2
//! cargo run --release --example join -- --input tpch/ --output top/   # tpch/{orders,lineitem}/
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use quiver_examples::jobs::{
    ClusterArgs, ExampleCluster, collect_named, generated_dir, init_logging, tpch,
};

/// Revenue per customer over orders joined with line items.
#[derive(Parser, Debug)]
struct Args {
    /// A directory holding `orders/` and `lineitem/` Parquet tables (default: generated).
    #[arg(long)]
    input: Option<PathBuf>,
    /// TPC-H scale factor of the generated tables.
    #[arg(long, default_value_t = 0.5)]
    scale: f64,
    /// Also write the top customers as Parquet into this directory.
    #[arg(long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    let args = Args::parse();
    let tables = match &args.input {
        Some(p) => p.clone(),
        None => generated_dir(&format!("quiver-tpch-sf{}", args.scale), |dir| {
            tpch::generate(dir, args.scale, 8, 42)
        })?,
    };
    let cluster = ExampleCluster::connect(&args.cluster).await?;
    let started = Instant::now();
    let top = tpch::top_customers(&tables.join("orders"), &tables.join("lineitem"), 10)?;
    let batches = collect_named(&cluster.client, &top, "join-top-customers")
        .await
        .context("join failed")?;
    let elapsed = started.elapsed();
    println!("{}", quiver_examples::jobs::format_table(&batches));
    println!("elapsed: {:.2} s", elapsed.as_secs_f64());
    if let Some(dir) = &args.output {
        top.write_parquet(&cluster.client, dir)
            .name("join-top-customers-write")
            .await?;
        println!("wrote Parquet to {}", dir.display());
    }
    cluster.shutdown().await;
    Ok(())
}
