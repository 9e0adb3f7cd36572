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
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use quiver::{JobProgress, StageOutput};

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
    #[arg(long, default_value = "2G", value_parser = quiver_worker::parse_bytes)]
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

    // Every configuration's cluster stays up for the whole suite. Each run of a workload is
    // its yardstick once, then every configuration once, so that the yardstick and Quiver are
    // timed in the same minutes: these shared machines drift by tens of percent over a
    // quarter of an hour, which ratios against yardsticks timed at the start did not survive.
    let mut clusters = Vec::new();
    for config in &configs {
        let cluster = BenchCluster::start(config).await?;
        let client = cluster.client().await?;
        clusters.push((config, cluster, client));
    }
    let mut yardsticks = Vec::new();
    let mut rows = Vec::new();
    for &w in &args.workloads {
        let mut yardstick_times = Vec::new();
        let mut reference = None;
        let mut series: Vec<Series> = clusters.iter().map(|_| Series::default()).collect();
        for _ in 0..runs {
            let (out, t) = inputs.yardstick(w, scratch.path())?;
            yardstick_times.push(t.as_secs_f64());
            let reference = reference.get_or_insert(out);
            for ((config, cluster, client), series) in clusters.iter().zip(&mut series) {
                cluster.reset_peak_rss();
                let (out, t, progress) = inputs.quiver(w, client, scratch.path()).await?;
                out.check(reference).with_context(|| {
                    format!(
                        "{} on {}: result differs from the yardstick's",
                        w.name(),
                        config.label()
                    )
                })?;
                series.add(t, progress, cluster.peak_rss());
            }
        }
        let input_bytes = inputs.input_bytes(w)?;
        let yardstick = summary(&yardstick_times).0;
        eprintln!("yardstick {:<10} {yardstick:.2} s", w.name());
        yardsticks.push(YardstickTime {
            workload: w,
            median_s: yardstick,
            runs_s: yardstick_times,
            input_bytes,
        });
        for ((config, _, _), series) in clusters.iter().zip(series) {
            let row = series.measurement(w, config, yardstick, input_bytes);
            eprintln!(
                "{:<10} {:<16} {:.2} s  ×{:.2} yardstick",
                w.name(),
                row.label,
                row.median_s,
                row.speedup
            );
            rows.push(row);
        }
    }
    for (_, cluster, _) in clusters {
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

/// One configuration's runs of one workload.
#[derive(Default)]
struct Series {
    runs: Vec<(Duration, JobProgress)>,
    peak_rss_coordinator: u64,
    peak_rss_workers: Vec<u64>,
}

impl Series {
    /// Adds a run and the peak RSS (coordinator, workers) measured over it.
    fn add(
        &mut self,
        time: Duration,
        progress: JobProgress,
        (coordinator, workers): (u64, Vec<u64>),
    ) {
        self.runs.push((time, progress));
        self.peak_rss_coordinator = self.peak_rss_coordinator.max(coordinator);
        self.peak_rss_workers.resize(workers.len(), 0);
        for (peak, w) in self.peak_rss_workers.iter_mut().zip(workers) {
            *peak = (*peak).max(w);
        }
    }

    /// The reported figures: the median run's, its stages, and the peaks over all runs.
    fn measurement(
        mut self,
        workload: Workload,
        config: &Config,
        yardstick_s: f64,
        input_bytes: u64,
    ) -> Measurement {
        let times: Vec<f64> = self.runs.iter().map(|r| r.0.as_secs_f64()).collect();
        let (median, min, max) = summary(&times);
        self.runs.sort_by_key(|r| r.0);
        let progress = &self.runs[self.runs.len() / 2].1;
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
        Measurement {
            workload,
            config: *config,
            label: config.label(),
            runs_s: times,
            median_s: median,
            min_s: min,
            max_s: max,
            input_bytes,
            input_mb_per_s: input_bytes as f64 / 1e6 / median,
            yardstick_median_s: yardstick_s,
            speedup: yardstick_s / median,
            shuffle_bytes,
            spilled_bytes: progress.stages.iter().map(|s| s.spilled_bytes).sum(),
            peak_rss_coordinator: self.peak_rss_coordinator,
            peak_rss_workers: self.peak_rss_workers,
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
        }
    }
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
