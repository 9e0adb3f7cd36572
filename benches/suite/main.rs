//! The benchmark suite: five map-reduce workloads on generated data, each against a
//! single-threaded yardstick computing the same result from the same files (on the driver's
//! host), on several cluster configurations: clusters the suite starts, or a running one.
//! Every run's result is checked against the yardstick's. DuckDB runs the same workloads as
//! a peer (from a Python virtualenv the suite makes, `--no-duckdb` to skip) with as many
//! threads as each configuration has slots, its results checked the same way.
//!
//! ```text
//! cargo run --release -p quiver-benches --bin suite                       # everything, scale 1
//! cargo run --release -p quiver-benches --bin suite -- --scale 0.25 --runs 1
//! cargo run --release -p quiver-benches --bin suite -- --workloads wordcount,join \
//!     --configs local:2,processes:2 --slots 1 --out results/
//! cargo run --release -p quiver-benches --bin suite -- --coordinator https://coord:50050 \
//!     --token-file token --tls-ca ca.pem --data s3://bucket/quiver-bench/
//! ```
//!
//! Output: Markdown tables on stdout, and `suite.json` + `suite.md` in `--out`.

mod bench_data;
mod clusters;
mod duckdb_peer;
mod remote_cluster;
mod report;
mod workloads;
mod yardsticks;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use quiver::{Client, JobProgress};

use bench_data::DataStore;
use clusters::{BenchCluster, ClusterKind, Config};
use duckdb_peer::DuckDb;
use remote_cluster::{ClusterDescription, RemoteCluster};
use report::{Measurement, PeerTime, WorkerFigures, YardstickTime, summary};
use workloads::{Inputs, Workload};

/// Quiver's benchmark suite: five map-reduce workloads, each checked against a single-threaded
/// yardstick on this host, on clusters it starts or on a running one (--coordinator).
#[derive(Parser, Debug)]
#[command(name = "suite")]
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
    /// Configurations the suite starts, as `local:N` or `processes:N` (N workers of --slots
    /// slots), or `local:NxS`, `processes:NxS` (N workers of S slots). Default:
    /// local:1,local:2,local:4,processes:1,processes:2,processes:4; none with --coordinator.
    #[arg(long, value_delimiter = ',')]
    configs: Option<Vec<String>>,
    /// Also (or only) run on this running cluster's coordinator.
    #[arg(long, env = "QUIVER_COORDINATOR")]
    coordinator: Option<String>,
    /// The token and TLS settings for --coordinator.
    #[command(flatten)]
    client: quiver::ClientArgs,
    /// Where the inputs are generated once and reused: a directory, or an object store URL
    /// (`s3://bucket/quiver-bench/`, credentials from `AWS_*`) that every worker can read.
    #[arg(long, default_value_t = default_dir("quiver-bench"))]
    data: String,
    /// Files per generated data set (and per TPC-H table): the map stages' tasks.
    #[arg(long, default_value_t = bench_data::DEFAULT_FILES)]
    files: usize,
    /// Local copies of object store inputs, for the yardsticks.
    #[arg(long, default_value_t = default_dir("quiver-bench-cache"))]
    cache: String,
    /// Task slots per worker of the clusters the suite starts.
    #[arg(long, default_value_t = 1)]
    slots: usize,
    /// Each worker's memory limit (bytes, or with K/M/G) in the clusters the suite starts.
    #[arg(long, default_value = "2G", value_parser = quiver_worker::parse_bytes)]
    memory_limit: usize,
    /// Do not run DuckDB as a peer.
    #[arg(long)]
    no_duckdb: bool,
    /// The Python virtualenv DuckDB runs in: reused when its Python imports duckdb, else
    /// created with `python3 -m venv` and `pip install duckdb` (which needs the network).
    #[arg(long, default_value = "target/duckdb-venv")]
    duckdb_venv: PathBuf,
    /// Directory for suite.json and suite.md.
    #[arg(long, default_value = "target/bench-results")]
    out: PathBuf,
    /// Internal: run as a coordinator or worker process.
    #[arg(long, num_args = 1.., hide = true)]
    child: Vec<String>,
}

const DEFAULT_CONFIGS: &str = "local:1,local:2,local:4,processes:1,processes:2,processes:4";

/// `name` in the system's temporary directory.
fn default_dir(name: &str) -> String {
    std::env::temp_dir().join(name).display().to_string()
}

fn parse_config(text: &str, slots: usize, memory_limit: usize) -> anyhow::Result<Config> {
    let (kind, shape) = text.split_once(':').with_context(|| {
        format!("configuration '{text}' is not local:N, processes:N, local:NxS or processes:NxS")
    })?;
    let (n, slots) = match shape.split_once('x') {
        Some((n, s)) => (
            n,
            s.parse()
                .with_context(|| format!("bad slot count in '{text}'"))?,
        ),
        None => (shape, slots),
    };
    if slots == 0 {
        bail!("configuration '{text}': a worker needs at least one slot");
    }
    let kind = match kind {
        "local" => ClusterKind::Local,
        "processes" => ClusterKind::Processes,
        other => bail!("unknown cluster kind '{other}' (local or processes)"),
    };
    let workers = n
        .parse()
        .with_context(|| format!("bad worker count in '{text}'"))?;
    if workers == 0 {
        bail!("configuration '{text}': at least one worker");
    }
    Ok(Config {
        kind,
        workers,
        slots,
        memory_limit: Some(memory_limit),
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

/// A cluster of the suite, connected.
struct Running {
    config: Config,
    cluster: BenchCluster,
    client: Client,
    description: ClusterDescription,
}

/// Starts the configurations, then connects to `--coordinator`.
async fn clusters(args: &Args) -> anyhow::Result<Vec<Running>> {
    let configs = match (&args.configs, &args.coordinator) {
        (Some(c), _) => c.clone(),
        (None, Some(_)) => vec![],
        (None, None) => DEFAULT_CONFIGS.split(',').map(String::from).collect(),
    };
    let mut started = Vec::new();
    for text in &configs {
        let config = parse_config(text, args.slots, args.memory_limit)?;
        let cluster = BenchCluster::start(&config).await?;
        let client = cluster.client().await?;
        let description = cluster.describe(&config, &client).await?;
        started.push(Running {
            config,
            cluster,
            client,
            description,
        });
    }
    if let Some(url) = &args.coordinator {
        let cluster =
            BenchCluster::Remote(RemoteCluster::connect(url, args.client.options()).await?);
        let client = cluster.client().await?;
        let workers = remote_cluster::live_workers(&client).await?;
        let config = Config {
            kind: ClusterKind::Remote,
            workers: workers.len(),
            slots: workers.iter().map(|w| w.slots as usize).sum(),
            memory_limit: None,
        };
        let description = cluster.describe(&config, &client).await?;
        started.push(Running {
            config,
            cluster,
            client,
            description,
        });
    }
    Ok(started)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let runs = args.runs.max(1);
    let data = DataStore::open(&args.data, std::path::Path::new(&args.cache), args.files)?;
    // Every configuration's cluster stays up for the whole suite. Each run of a workload is
    // its yardstick once, then every configuration once, so that the yardstick and Quiver are
    // timed in the same minutes: these shared machines drift by tens of percent over a
    // quarter of an hour, which ratios against yardsticks timed at the start did not survive.
    // They start (and a remote one is reached) before any data is generated.
    let clusters = clusters(&args).await?;
    if clusters.is_empty() {
        bail!("no configuration to run: give --configs or --coordinator");
    }
    let (scale, workloads) = (args.scale, args.workloads.clone());
    let inputs = tokio::task::spawn_blocking(move || Inputs::prepare(data, scale, &workloads))
        .await
        .context("preparing the inputs")??;
    let scratch = tempfile::tempdir()?;
    for c in &clusters {
        let d = &c.description;
        eprintln!(
            "{}: coordinator {}, {} workers, {} slots, hosts {}",
            d.label,
            d.coordinator,
            d.workers.len(),
            d.slots(),
            d.hosts().join(", ")
        );
    }
    let host = driver_host();
    if inputs.data.is_local() {
        warn_of_other_hosts(&clusters, &host, &args.data);
    }
    let duckdb = duckdb(&args);
    // DuckDB runs once per total slot count of the configurations, with that many threads.
    let mut peer_threads: Vec<usize> = clusters
        .iter()
        .map(|c| c.description.slots() as usize)
        .filter(|&s| s > 0)
        .collect();
    peer_threads.sort_unstable();
    peer_threads.dedup();
    if duckdb.is_none() {
        peer_threads.clear();
    }
    let mut yardsticks = Vec::new();
    let mut peers = Vec::new();
    let mut rows = Vec::new();
    for &w in &args.workloads {
        let mut yardstick_times = Vec::new();
        let mut reference = None;
        let mut series: Vec<Series> = clusters.iter().map(|_| Series::default()).collect();
        let mut peer_runs: Vec<Vec<duckdb_peer::PeerRun>> =
            peer_threads.iter().map(|_| Vec::new()).collect();
        for _ in 0..runs {
            // One thread's CPU work: off the runtime's async threads.
            let (out, t) = tokio::task::block_in_place(|| inputs.yardstick(w, scratch.path()))?;
            yardstick_times.push(t.as_secs_f64());
            let reference = reference.get_or_insert(out);
            if let Some(duckdb) = &duckdb {
                for (&threads, runs) in peer_threads.iter().zip(&mut peer_runs) {
                    let run = tokio::task::block_in_place(|| {
                        run_peer(duckdb, &inputs, w, threads, scratch.path())
                    })?;
                    run.output.check(reference).with_context(|| {
                        format!(
                            "{} on DuckDB with {threads} threads: result differs from the \
                             yardstick's",
                            w.name()
                        )
                    })?;
                    runs.push(run);
                }
            }
            for (c, series) in clusters.iter().zip(&mut series) {
                c.cluster.reset_peak_rss();
                let (out, t, progress) = inputs
                    .quiver(w, &c.client)
                    .await
                    .with_context(|| format!("{} on {}", w.name(), c.config.label()))?;
                out.check(reference).with_context(|| {
                    format!(
                        "{} on {}: result differs from the yardstick's",
                        w.name(),
                        c.config.label()
                    )
                })?;
                let workers = report::worker_figures(&c.description, &progress);
                series.add(t, progress, workers, c.cluster.peak_rss());
            }
        }
        let input_bytes = inputs.input_bytes(w)?;
        let yardstick = summary(&yardstick_times).0;
        eprintln!(
            "yardstick {:<10} {yardstick:.2} s (1 thread on {host})",
            w.name()
        );
        yardsticks.push(YardstickTime {
            workload: w,
            host: host.clone(),
            median_s: yardstick,
            runs_s: yardstick_times,
            input_bytes,
        });
        let local_copy = !inputs.data.is_local();
        let first_peer = peers.len();
        for (&threads, runs) in peer_threads.iter().zip(peer_runs) {
            let version = duckdb.as_ref().map_or("", |d| d.version.as_str());
            let peer = PeerTime::new(
                w,
                version,
                threads,
                local_copy,
                &runs,
                yardstick,
                input_bytes,
            );
            eprintln!(
                "{:<10} {:<16} {:.2} s  ×{:.2} yardstick",
                w.name(),
                peer.label,
                peer.median_s,
                peer.speedup
            );
            peers.push(peer);
        }
        for (c, series) in clusters.iter().zip(series) {
            let slots = c.description.slots() as usize;
            let peer = peers[first_peer..].iter().find(|p| p.threads == slots);
            let row = series.measurement(
                w,
                &c.config,
                yardstick,
                peer.map(|p| p.median_s),
                input_bytes,
            );
            eprintln!(
                "{:<10} {:<16} {:.2} s  ×{:.2} yardstick{}",
                w.name(),
                row.label,
                row.median_s,
                row.speedup,
                row.vs_duckdb
                    .map_or(String::new(), |x| format!("  ×{x:.2} DuckDB"))
            );
            rows.push(row);
        }
    }
    let descriptions: Vec<ClusterDescription> =
        clusters.iter().map(|c| c.description.clone()).collect();
    for c in clusters {
        c.cluster.shutdown().await;
    }

    std::fs::create_dir_all(&args.out)?;
    let json = serde_json::json!({
        "scale": args.scale,
        "runs": runs,
        "machine": machine(),
        "driver_host": host,
        "data": inputs.report(),
        "clusters": descriptions,
        "yardsticks": yardsticks,
        "duckdb": peers,
        "measurements": rows,
    });
    std::fs::write(
        args.out.join("suite.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    let tables = format!(
        "Clusters:\n\n{}\n{}",
        report::cluster_table(&descriptions),
        report::markdown(&yardsticks, &peers, &rows)
    );
    let tables = format!(
        "{tables}\nStrong scaling (median s, and speedup over 1 slot):\n\n{}",
        report::scaling_table(&args.workloads, &peers, &rows)
    );
    let md = format!(
        "{tables}\n\nPer-stage figures (median run):\n\n{}\n\nPer-worker figures (median run):\n\n{}",
        report::stage_table(&rows),
        report::worker_table(&rows)
    );
    std::fs::write(args.out.join("suite.md"), &md)?;
    println!("{tables}");
    println!("wrote {}", args.out.join("suite.json").display());
    Ok(())
}

/// DuckDB, ready to run; `None` (said why on stderr) when skipped or unavailable.
fn duckdb(args: &Args) -> Option<DuckDb> {
    if args.no_duckdb {
        eprintln!("DuckDB: skipped (--no-duckdb)");
        return None;
    }
    match tokio::task::block_in_place(|| DuckDb::prepare(&args.duckdb_venv)) {
        Ok(d) => {
            eprintln!("DuckDB {} from {}", d.version, args.duckdb_venv.display());
            Some(d)
        }
        Err(e) => {
            eprintln!("DuckDB: skipped, not available: {e:#}");
            None
        }
    }
}

/// One DuckDB run of `w` with `threads` threads, in fresh scratch directories.
fn run_peer(
    duckdb: &DuckDb,
    inputs: &Inputs,
    w: Workload,
    threads: usize,
    scratch: &std::path::Path,
) -> anyhow::Result<duckdb_peer::PeerRun> {
    let (output, temp) = (scratch.join("duckdb-output"), scratch.join("duckdb-temp"));
    for dir in [&output, &temp] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
    }
    let run = duckdb
        .run(w, &inputs.peer_inputs(w)?, threads, &output, &temp)
        .with_context(|| format!("{} on DuckDB with {threads} threads", w.name()))?;
    std::fs::remove_dir_all(&output)?;
    std::fs::remove_dir_all(&temp)?;
    Ok(run)
}

/// Warns when a remote cluster has workers on other hosts than this one, which would read
/// the local `--data` directory at the same path.
fn warn_of_other_hosts(clusters: &[Running], host: &str, data: &str) {
    for c in clusters
        .iter()
        .filter(|c| c.config.kind == ClusterKind::Remote)
    {
        let elsewhere: Vec<String> = c
            .description
            .hosts()
            .into_iter()
            .filter(|h| h != host)
            .collect();
        if !elsewhere.is_empty() {
            eprintln!(
                "warning: --data {data} is a local directory, but workers run on {}: they read \
                 it at the same path, so it must be a shared filesystem (else give an object \
                 store URL)",
                elsewhere.join(", ")
            );
        }
    }
}

/// One configuration's runs of one workload.
#[derive(Default)]
struct Series {
    runs: Vec<(Duration, JobProgress, Vec<WorkerFigures>)>,
    peak_rss_coordinator: u64,
    peak_rss_workers: Vec<u64>,
}

impl Series {
    /// Adds a run, its per-worker figures and the peak RSS (coordinator, workers) over it.
    fn add(
        &mut self,
        time: Duration,
        progress: JobProgress,
        workers: Vec<WorkerFigures>,
        (coordinator, rss_workers): (u64, Vec<u64>),
    ) {
        self.runs.push((time, progress, workers));
        self.peak_rss_coordinator = self.peak_rss_coordinator.max(coordinator);
        self.peak_rss_workers.resize(rss_workers.len(), 0);
        for (peak, w) in self.peak_rss_workers.iter_mut().zip(rss_workers) {
            *peak = (*peak).max(w);
        }
    }

    /// The reported figures: the median run's, its stages and workers, and the peaks over
    /// all runs.
    fn measurement(
        mut self,
        workload: Workload,
        config: &Config,
        yardstick_s: f64,
        duckdb_s: Option<f64>,
        input_bytes: u64,
    ) -> Measurement {
        let times: Vec<f64> = self.runs.iter().map(|r| r.0.as_secs_f64()).collect();
        let (median, min, max) = summary(&times);
        self.runs.sort_by_key(|r| r.0);
        let (_, progress, workers) = self.runs.swap_remove(self.runs.len() / 2);
        let stages = report::stage_figures(&progress);
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
            duckdb_median_s: duckdb_s,
            vs_duckdb: duckdb_s.map(|d| d / median),
            matched_yardstick: true,
            shuffle_bytes: stages.iter().map(|s| s.shuffle_written).sum(),
            spilled_bytes: stages.iter().map(|s| s.spilled_bytes).sum(),
            peak_rss_coordinator: self.peak_rss_coordinator,
            peak_rss_workers: self.peak_rss_workers,
            stages,
            workers,
        }
    }
}

/// This host's name (where the driver and the yardsticks run).
fn driver_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this host".into())
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn configurations_give_workers_and_slots() {
        let c = parse_config("processes:4", 1, 1 << 30).unwrap();
        assert_eq!((c.kind, c.workers, c.slots), (ClusterKind::Processes, 4, 1));
        let c = parse_config("local:2x3", 1, 1 << 30).unwrap();
        assert_eq!((c.kind, c.workers, c.slots), (ClusterKind::Local, 2, 3));
        assert_eq!(c.label(), "local 2×3");
        for (bad, says) in [
            ("processes", "is not local:N"),
            ("remote:2", "unknown cluster kind 'remote'"),
            ("local:two", "bad worker count in 'local:two'"),
            ("local:2x", "bad slot count in 'local:2x'"),
            ("local:0", "at least one worker"),
            ("processes:2x0", "at least one slot"),
        ] {
            let e = parse_config(bad, 1, 1 << 30).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
