//! The benchmark suite: five map-reduce workloads on generated data, each against a
//! single-threaded yardstick computing the same result from the same files, on several
//! cluster configurations. Every run's result is checked against the yardstick's.
//!
//! ```text
//! cargo run --release -p quiver-benches --bin suite                       # everything, scale 1
//! cargo run --release -p quiver-benches --bin suite -- --scale 0.25 --runs 1
//! cargo run --release -p quiver-benches --bin suite -- --workloads wordcount,join \
//!     --configs local:2,processes:2 --slots 1 --out results/
//! ```
//!
//! Output: a Markdown table on stdout, and `suite.json` + `suite.md` in `--out`.

mod clusters;
mod report;
mod workloads;
mod yardsticks;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use quiver::StageOutput;

use clusters::{BenchCluster, ClusterKind, Config};
use report::{Measurement, StageTime, YardstickTime, summary};
use workloads::{Inputs, Workload};

#[derive(Parser, Debug)]
struct Args {
    /// Input size: GiB of text and of terasort records; TPC-H scale factor 4 × this.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Runs of each measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Workloads to run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "wordcount,grep,terasort,tpch-q1,join"
    )]
    workloads: Vec<Workload>,
    /// Configurations, as `local:N` or `processes:N` (N workers).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "local:1,local:2,local:4,processes:1,processes:2,processes:4"
    )]
    configs: Vec<String>,
    /// Task slots per worker.
    #[arg(long, default_value_t = 1)]
    slots: usize,
    /// Each worker's memory limit (bytes, or with K/M/G).
    #[arg(long, default_value = "2G", value_parser = quiver_worker::memory::memory_pool::parse_bytes)]
    memory_limit: usize,
    /// Directory for suite.json and suite.md.
    #[arg(long, default_value = "target/bench-results")]
    out: PathBuf,
    /// Internal: run as a coordinator or worker process.
    #[arg(long, num_args = 1.., hide = true)]
    child: Vec<String>,
}

fn parse_config(text: &str, slots: usize, memory_limit: usize) -> anyhow::Result<Config> {
    let (kind, n) = text
        .split_once(':')
        .with_context(|| format!("configuration '{text}' is not local:N or processes:N"))?;
    let kind = match kind {
        "local" => ClusterKind::Local,
        "processes" => ClusterKind::Processes,
        other => bail!("unknown cluster kind '{other}' (local or processes)"),
    };
    Ok(Config {
        kind,
        workers: n
            .parse()
            .with_context(|| format!("bad worker count in '{text}'"))?,
        slots,
        memory_limit,
    })
}

fn main() -> anyhow::Result<()> {
    // Child processes are started as `suite coordinator` / `suite worker URL SLOTS MEMORY`.
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Runtime::new()?;
    if matches!(
        raw.first().map(String::as_str),
        Some("coordinator" | "worker")
    ) {
        return runtime.block_on(clusters::run_child(&raw));
    }
    let args = Args::parse();
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let configs = args
        .configs
        .iter()
        .map(|c| parse_config(c, args.slots, args.memory_limit))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let inputs = Inputs::prepare(args.scale)?;
    let scratch = tempfile::tempdir()?;
    let runs = args.runs.max(1);

    // The yardsticks first: their results are the reference for every Quiver run.
    let mut references = Vec::new();
    let mut yardsticks = Vec::new();
    for &w in &args.workloads {
        let mut times = Vec::new();
        let mut reference = None;
        for _ in 0..runs {
            let (out, t) = inputs.yardstick(w, scratch.path())?;
            times.push(t.as_secs_f64());
            reference.get_or_insert(out);
        }
        let input_bytes = inputs.input_bytes(w)?;
        eprintln!("yardstick {:<10} {:.2} s", w.name(), summary(&times).0);
        yardsticks.push(YardstickTime {
            workload: w,
            median_s: summary(&times).0,
            runs_s: times,
            input_bytes,
        });
        references.push((w, reference.context("no yardstick run")?));
    }

    let mut rows = Vec::new();
    for config in &configs {
        let cluster = BenchCluster::start(config).await?;
        let client = cluster.client().await?;
        for (w, reference) in &references {
            cluster.reset_peak_rss();
            let mut times = Vec::new();
            let mut progresses = Vec::new();
            for _ in 0..runs {
                let (out, t, progress) = inputs.quiver(*w, &client, scratch.path()).await?;
                out.check(reference).with_context(|| {
                    format!(
                        "{} on {}: result differs from the yardstick's",
                        w.name(),
                        config.label()
                    )
                })?;
                times.push(t.as_secs_f64());
                progresses.push((t, progress));
            }
            let (median, min, max) = summary(&times);
            let yardstick = yardsticks
                .iter()
                .find(|y| y.workload == *w)
                .map_or(0.0, |y| y.median_s);
            progresses.sort_by_key(|p| p.0);
            let progress = &progresses[progresses.len() / 2].1;
            let shuffle_bytes = progress
                .stages
                .iter()
                .filter(|s| {
                    matches!(
                        s.output,
                        StageOutput::HashShuffle { .. } | StageOutput::RangeShuffle { .. }
                    )
                })
                .map(|s| s.bytes_out)
                .sum();
            let (coordinator_rss, worker_rss) = cluster.peak_rss();
            let input_bytes = inputs.input_bytes(*w)?;
            eprintln!(
                "{:<10} {:<16} {median:.2} s  ×{:.2} yardstick",
                w.name(),
                config.label(),
                yardstick / median
            );
            rows.push(Measurement {
                workload: *w,
                config: *config,
                label: config.label(),
                runs_s: times.clone(),
                median_s: median,
                min_s: min,
                max_s: max,
                input_bytes,
                input_mb_per_s: input_bytes as f64 / 1e6 / median,
                yardstick_median_s: yardstick,
                speedup: yardstick / median,
                shuffle_bytes,
                spilled_bytes: progress.stages.iter().map(|s| s.spilled_bytes).sum(),
                peak_rss_coordinator: coordinator_rss,
                peak_rss_workers: worker_rss,
                stages: progress
                    .stages
                    .iter()
                    .map(|s| StageTime {
                        id: s.id,
                        description: s.description.clone(),
                        seconds: s.elapsed.as_secs_f64(),
                        bytes_out: s.bytes_out,
                    })
                    .collect(),
            });
        }
        cluster.shutdown().await;
    }

    std::fs::create_dir_all(&args.out)?;
    let json = serde_json::json!({
        "scale": args.scale,
        "runs": runs,
        "machine": machine(),
        "yardsticks": yardsticks,
        "measurements": rows,
    });
    std::fs::write(
        args.out.join("suite.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    let md = format!(
        "{}\n\nPer-stage times (median run):\n\n{}",
        report::markdown(&yardsticks, &rows),
        report::stage_table(&rows)
    );
    std::fs::write(args.out.join("suite.md"), &md)?;
    println!("{}", report::markdown(&yardsticks, &rows));
    println!("wrote {}", args.out.join("suite.json").display());
    Ok(())
}

/// The machine, in a few words.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    format!("{cpus} cores, {model}")
}
