//! PageRank over a generated edge list, as an iterative job: one Quiver job per round, each
//! reading the previous round's ranks from Parquet and writing the next.
//!
//! Each round: every node sends `rank / out_degree` along each of its edges; a node's new rank
//! is `(1 - d) / N + d * (sum of what it received)`, with damping `d = 0.85`. Nodes without
//! out-edges keep their rank to themselves (their mass is not redistributed), as in the
//! classic map-reduce formulation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{AsArray, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use quiver::functions::*;
use quiver::{Client, Dataset, JoinOn, JoinType, WriteMode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const DAMPING: f64 = 0.85;

pub fn edge_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("src", DataType::Int64, false),
        Field::new("dst", DataType::Int64, false),
    ]))
}

fn rank_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("node", DataType::Int64, false),
        Field::new("rank", DataType::Float64, false),
    ]))
}

/// Writes `edges_per_node` out-edges for each of `nodes` nodes into `dir/edges.parquet`;
/// destinations favour low node numbers (a few popular pages), and some nodes get no edges.
pub fn generate(dir: &Path, nodes: u64, edges_per_node: u32, seed: u64) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut src, mut dst) = (Vec::new(), Vec::new());
    for n in 0..nodes as i64 {
        if rng.random_range(0..10) == 0 {
            continue; // a dangling node
        }
        for _ in 0..rng.random_range(1..=edges_per_node * 2) {
            // Squaring a uniform number skews destinations towards 0.
            let u: f64 = rng.random();
            src.push(n);
            dst.push(((u * u) * nodes as f64) as i64);
        }
    }
    let batch = RecordBatch::try_new(
        edge_schema(),
        vec![
            Arc::new(Int64Array::from(src)),
            Arc::new(Int64Array::from(dst)),
        ],
    )?;
    super::write_parquet_file(&dir.join("edges.parquet"), edge_schema(), [batch], 1 << 18)
}

/// Runs `rounds` rounds over the edges in `edges` of a graph of `nodes` nodes, keeping each
/// round's ranks under `work`. Returns the directory of the last ranks.
pub async fn run(
    client: &Client,
    edges: &Path,
    nodes: u64,
    rounds: u32,
    work: &Path,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(work)?;
    // Once: each edge weighted by 1 / out-degree of its source.
    let degrees = Dataset::read_parquet(&[edges])?
        .group_by(["src"])
        .agg([count().alias("degree")])?;
    let weighted = Dataset::read_parquet(&[edges])?
        .join(degrees, ["src"], JoinType::Inner)?
        .select([
            col("src"),
            col("dst"),
            (lit(1.0) / col("degree")).alias("weight"),
        ])?;
    let weighted_dir = work.join("weighted");
    // Scratch files of this run: a run in the same work directory replaces them.
    weighted
        .write_parquet(client, &weighted_dir)
        .mode(WriteMode::Overwrite)
        .name("pagerank-weights")
        .await?;
    // Round 0: every node has rank 1 / N.
    let mut ranks = work.join("ranks-0");
    std::fs::create_dir_all(&ranks)?;
    let start = RecordBatch::try_new(
        rank_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..nodes as i64)),
            Arc::new(Float64Array::from(vec![1.0 / nodes as f64; nodes as usize])),
        ],
    )?;
    super::write_parquet_file(
        &ranks.join("part-00000.parquet"),
        rank_schema(),
        [start],
        1 << 18,
    )?;
    for round in 1..=rounds {
        let current = Dataset::read_parquet(&[&ranks])?;
        let sent = Dataset::read_parquet(&[&weighted_dir])?
            .join_with(current.clone(), JoinOn::pairs([("src", "node")]))?
            .select([
                col("dst").alias("node"),
                (col("rank") * col("weight")).alias("received"),
            ])?;
        // Every node appears, even with nothing received.
        let everyone = current.select([col("node"), lit(0.0).alias("received")])?;
        let next = sent
            .union(everyone)?
            .group_by(["node"])
            .agg([sum(col("received")).alias("received")])?
            .select([
                col("node"),
                (lit((1.0 - DAMPING) / nodes as f64) + lit(DAMPING) * col("received"))
                    .alias("rank"),
            ])?;
        let dir = work.join(format!("ranks-{round}"));
        next.write_parquet(client, &dir)
            .mode(WriteMode::Overwrite)
            .name(format!("pagerank-round-{round}"))
            .await?;
        ranks = dir;
    }
    Ok(ranks)
}

/// The ranks in a ranks directory, by node.
pub fn read_ranks(dir: &Path) -> anyhow::Result<HashMap<i64, f64>> {
    let mut out = HashMap::new();
    for file in super::parquet_files(dir)? {
        for b in super::read_parquet_file(&file)? {
            let b = b?;
            let (n, r) = (
                b.column(0).as_primitive::<Int64Type>(),
                b.column(1).as_primitive::<Float64Type>(),
            );
            for i in 0..n.len() {
                out.insert(n.value(i), r.value(i));
            }
        }
    }
    Ok(out)
}

/// The same rounds computed on one thread from the edge file: the reference.
pub fn reference(edges: &Path, nodes: u64, rounds: u32) -> anyhow::Result<Vec<f64>> {
    let mut list = Vec::new();
    for b in super::read_parquet_file(&edges.join("edges.parquet"))? {
        let b = b?;
        let (s, d) = (
            b.column(0).as_primitive::<Int64Type>(),
            b.column(1).as_primitive::<Int64Type>(),
        );
        list.extend((0..s.len()).map(|i| (s.value(i) as usize, d.value(i) as usize)));
    }
    let n = nodes as usize;
    let mut degree = vec![0u32; n];
    for &(s, _) in &list {
        degree[s] += 1;
    }
    let mut rank = vec![1.0 / n as f64; n];
    for _ in 0..rounds {
        let mut received = vec![0.0; n];
        for &(s, d) in &list {
            received[d] += rank[s] / f64::from(degree[s]);
        }
        rank = received
            .iter()
            .map(|r| (1.0 - DAMPING) / n as f64 + DAMPING * r)
            .collect();
    }
    Ok(rank)
}
