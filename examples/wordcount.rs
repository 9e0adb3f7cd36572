//! Word count, the classic map-reduce job.
//!
//! With no arguments it generates a text corpus, starts a local cluster of 2 workers, counts
//! the words, and prints the 20 most frequent ones:
//!
//! ```text
//! cargo run --release --example wordcount
//! cargo run --release --example wordcount -- --size 1024          # MiB of generated text
//! cargo run --release --example wordcount -- --input a.txt dir/   # your own files
//! cargo run --release --example wordcount -- --coordinator http://127.0.0.1:50050
//! cargo run --release --example wordcount -- --output counts/     # write the counts as Parquet
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use arrow::array::{AsArray, Int64Array};
use clap::Parser;
use quiver::arrow;
use quiver::prelude::*;
use quiver::{JobOptions, Sources};
use quiver_examples::jobs::{ClusterArgs, ExampleCluster, collect_named, init_logging};

/// Count the words of text files on a Quiver cluster.
#[derive(Parser, Debug)]
struct Args {
    /// Text files or directories to count (default: a generated corpus).
    #[arg(long, num_args = 1..)]
    input: Vec<PathBuf>,
    /// MiB of text to generate when no --input is given.
    #[arg(long, default_value_t = 256)]
    size: u64,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Write every (word, count) pair as Parquet into this directory (or object store URL);
    /// the top 20 are then read back from it.
    #[arg(long)]
    output: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    let args = Args::parse();

    let inputs = if args.input.is_empty() {
        let dir = std::env::temp_dir().join(format!("quiver-wordcount-{}mib", args.size));
        let marker = dir.join("_COMPLETE");
        if !marker.exists() {
            println!(
                "generating {} MiB of text in {} ...",
                args.size,
                dir.display()
            );
            quiver_examples::generate_corpus(&dir, args.size << 20, 8, 42, true)?;
            std::fs::write(&marker, b"")?;
        }
        vec![dir]
    } else {
        args.input.clone()
    };

    let cluster = ExampleCluster::connect(&args.cluster).await?;
    let client = &cluster.client;

    let started = Instant::now();
    let counts = quiver_examples::word_count(&inputs)?;
    // One pass over the text: with --output the job writes the counts, and the top 20 are
    // read back from what it wrote; without, it collects them.
    let batches = match &args.output {
        None => {
            let job = client
                .submit_with(&counts, Sink::Collect, "wordcount", JobOptions::default())
                .await?;
            job.wait_with_progress()
                .await
                .context("word count failed")?;
            job.collect().await.context("word count failed")?
        }
        Some(dir) => {
            let job = counts
                .write_parquet(client, dir)
                .name("wordcount")
                .submit()
                .await?;
            job.wait_with_progress()
                .await
                .context("word count failed")?;
            println!("wrote Parquet to {}", dir.display());
            let written = Sources::default().read_parquet(&[dir])?;
            collect_named(client, &written, "wordcount-read-back").await?
        }
    };
    let elapsed = started.elapsed();

    let mut pairs: Vec<(String, i64)> = Vec::new();
    for b in &batches {
        let words = b.column(0).as_string::<i32>();
        let n = b
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .context("count column is not Int64")?;
        pairs.extend((0..b.num_rows()).map(|i| (words.value(i).to_string(), n.value(i))));
    }
    pairs.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let total: i64 = pairs.iter().map(|p| p.1).sum();
    println!("\n{:>12}  word", "count");
    for (word, n) in pairs.iter().take(20) {
        println!("{n:>12}  {word}");
    }
    println!("\ndistinct words: {}", pairs.len());
    println!("total words:    {total}");
    println!("elapsed:        {:.2} s", elapsed.as_secs_f64());

    cluster.shutdown().await;
    Ok(())
}
