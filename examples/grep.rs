//! Grep: the lines of text files matching a regular expression, with file and line number.
//!
//! ```text
//! cargo run --release --example grep                          # a rare word, generated text
//! cargo run --release --example grep -- --scale 1 --pattern 'ba(ko|ru)\d'
//! cargo run --release --example grep -- --input logs/ --pattern 'ERROR .* timeout'
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use quiver_examples::jobs::{
    ClusterArgs, ExampleCluster, collect_named, generated_dir, grep, init_logging,
};

/// Find lines matching a regex.
#[derive(Parser, Debug)]
struct Args {
    /// Text files or directories (default: a generated corpus).
    #[arg(long, num_args = 1..)]
    input: Vec<PathBuf>,
    /// The regular expression (Rust `regex` syntax; default: a rare word of the generated
    /// corpus).
    #[arg(long)]
    pattern: Option<String>,
    /// GiB of text to generate when no --input is given.
    #[arg(long, default_value_t = 0.25)]
    scale: f64,
    /// Also write the matches (path, offset, line) as Parquet into this directory.
    #[arg(long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    let args = Args::parse();
    let inputs = if args.input.is_empty() {
        let bytes = (args.scale * (1u64 << 30) as f64) as u64;
        vec![generated_dir(&format!("quiver-corpus-{bytes}"), |dir| {
            quiver_examples::generate_corpus(dir, bytes, 8, 42, false)?;
            Ok(())
        })?]
    } else {
        args.input.clone()
    };
    let pattern = args
        .pattern
        .clone()
        .unwrap_or_else(|| format!(r"\b{}\b", quiver_examples::rare_word(42)));
    let cluster = ExampleCluster::connect(&args.cluster).await?;
    let started = Instant::now();
    let job = grep::grep_job(&inputs, &pattern)?;
    let batches = collect_named(&cluster.client, &job, "grep")
        .await
        .context("grep failed")?;
    let matches = grep::number_lines(&batches)?;
    let elapsed = started.elapsed();
    for m in matches.iter().take(20) {
        println!("{}:{}: {}", m.path, m.line_number, m.line);
    }
    if matches.len() > 20 {
        println!("... and {} more", matches.len() - 20);
    }
    println!(
        "{} matching lines of /{pattern}/ in {:.2} s",
        matches.len(),
        elapsed.as_secs_f64()
    );
    if let Some(dir) = &args.output {
        job.write_parquet(&cluster.client, dir)
            .name("grep-write")
            .await?;
        println!("wrote Parquet to {}", dir.display());
    }
    cluster.shutdown().await;
    Ok(())
}
