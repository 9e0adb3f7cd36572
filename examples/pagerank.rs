//! PageRank over a generated edge list: an iterative job, one Quiver job per round.
//!
//! ```text
//! cargo run --release --example pagerank                        # 100 k nodes, 10 rounds
//! cargo run --release --example pagerank -- --scale 10 --rounds 5
//! cargo run --release --example pagerank -- --input graph/ --nodes 5000000
//! ```

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use quiver_examples::jobs::{ClusterArgs, ExampleCluster, generated_dir, init_logging, pagerank};

/// Rank the nodes of a graph.
#[derive(Parser, Debug)]
struct Args {
    /// A directory with `edges.parquet` (`src`, `dst` Int64; default: generated).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Nodes of the graph (node ids are 0..nodes); with --input, how many it has.
    #[arg(long)]
    nodes: Option<u64>,
    /// Size of the generated graph: 100 k nodes (about 1 M edges) per unit.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Rounds of the iteration.
    #[arg(long, default_value_t = 10)]
    rounds: u32,
    /// Where each round's ranks are written (default: a temporary directory).
    #[arg(long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    let args = Args::parse();
    let nodes = args
        .nodes
        .unwrap_or_else(|| (args.scale * 100_000.0).max(1.0) as u64);
    let edges = match &args.input {
        Some(p) => p.clone(),
        None => generated_dir(&format!("quiver-graph-{nodes}"), |dir| {
            pagerank::generate(dir, nodes, 5, 42)
        })?,
    };
    let work = args.output.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("quiver-pagerank-{}", std::process::id()))
    });
    let cluster = ExampleCluster::connect(&args.cluster).await?;
    let started = Instant::now();
    let last = pagerank::run(&cluster.client, &edges, nodes, args.rounds, &work).await?;
    let elapsed = started.elapsed();
    let ranks = pagerank::read_ranks(&last)?;
    let mut top: Vec<(i64, f64)> = ranks.into_iter().collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    println!("{:>10}  rank", "node");
    for (node, rank) in top.iter().take(10) {
        println!("{node:>10}  {rank:.6}");
    }
    if args.input.is_none() && nodes <= 1_000_000 {
        let reference = pagerank::reference(&edges, nodes, args.rounds)?;
        let worst = top
            .iter()
            .map(|(n, r)| (reference[*n as usize] - r).abs())
            .fold(0.0, f64::max);
        println!("largest difference from a single-threaded reference: {worst:.2e}");
    }
    println!(
        "{} rounds over {nodes} nodes in {:.2} s",
        args.rounds,
        elapsed.as_secs_f64()
    );
    if args.output.is_none() {
        std::fs::remove_dir_all(&work)?;
    }
    cluster.shutdown().await;
    Ok(())
}
