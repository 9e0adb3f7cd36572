//! What the suite measured, as JSON and as Markdown tables: the clusters as their
//! coordinators describe them, one row per workload and configuration against the yardstick
//! (run on the driver's host) and against DuckDB with as many threads as it has slots, strong
//! scaling over the total slots, and the median run's figures per stage and per worker.

use std::collections::BTreeMap;

use quiver::{JobProgress, StageOutput, TaskAttemptState};
use serde::Serialize;

use crate::clusters::{ClusterKind, Config};
use crate::remote_cluster::ClusterDescription;
use crate::workloads::Workload;

/// One stage of the median run, as the coordinator reported it.
#[derive(Clone, Debug, Serialize)]
pub struct StageFigures {
    pub id: u32,
    pub description: String,
    /// Tasks (partitions).
    pub tasks: u32,
    /// Attempts of its tasks: retries and speculative copies included.
    pub attempts: u32,
    /// From its first task's start to its end.
    pub seconds: f64,
    /// Time its attempts ran, summed (slot-seconds).
    pub busy_s: f64,
    pub rows_out: u64,
    pub bytes_out: u64,
    /// Bytes written to the shuffle (its output, when it ends in one).
    pub shuffle_written: u64,
    /// Shuffle input its tasks read, from any worker.
    pub shuffle_read: u64,
    /// The part of `shuffle_read` fetched from other workers over the network.
    pub shuffle_fetched: u64,
    pub spilled_bytes: u64,
}

/// One worker's share of the median run, from the attempts the coordinator recorded.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkerFigures {
    pub worker_id: String,
    pub hostname: String,
    /// Tasks it finished (succeeded attempts).
    pub tasks: u64,
    /// Attempts it ran, failed and cancelled ones included.
    pub attempts: u64,
    /// Time its attempts ran, summed (slot-seconds).
    pub busy_s: f64,
    /// Bytes its succeeded attempts wrote to the shuffle.
    pub shuffle_written: u64,
    /// Shuffle input its succeeded attempts read, and the part fetched from other workers.
    pub shuffle_read: u64,
    pub shuffle_fetched: u64,
    pub spilled_bytes: u64,
}

/// One workload on one configuration.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    pub workload: Workload,
    pub config: Config,
    pub label: String,
    pub runs_s: Vec<f64>,
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub input_bytes: u64,
    pub input_mb_per_s: f64,
    pub yardstick_median_s: f64,
    /// Yardstick time / Quiver time: above 1 means faster than one good thread.
    pub speedup: f64,
    /// DuckDB's median with as many threads as this configuration has slots (none when
    /// DuckDB did not run).
    pub duckdb_median_s: Option<f64>,
    /// DuckDB time / Quiver time: above 1 means faster than DuckDB.
    pub vs_duckdb: Option<f64>,
    /// Every run's result was compared with the yardstick's and matched (the suite stops
    /// at the first that does not).
    pub matched_yardstick: bool,
    pub shuffle_bytes: u64,
    pub spilled_bytes: u64,
    /// Peak RSS of the processes the suite started (0 and none for a remote cluster).
    pub peak_rss_coordinator: u64,
    pub peak_rss_workers: Vec<u64>,
    pub stages: Vec<StageFigures>,
    pub workers: Vec<WorkerFigures>,
}

/// The yardstick's times for one workload.
#[derive(Clone, Debug, Serialize)]
pub struct YardstickTime {
    pub workload: Workload,
    /// Where it ran: one thread on the driver's host.
    pub host: String,
    pub runs_s: Vec<f64>,
    pub median_s: f64,
    pub input_bytes: u64,
}

/// DuckDB's times for one workload with one number of threads.
#[derive(Clone, Debug, Serialize)]
pub struct PeerTime {
    pub workload: Workload,
    pub label: String,
    /// The `duckdb` package's version.
    pub version: String,
    pub threads: usize,
    /// Whether it read the yardsticks' local copy of object store data.
    pub local_copy: bool,
    /// Query times, measured inside the Python process.
    pub runs_s: Vec<f64>,
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub input_bytes: u64,
    pub input_mb_per_s: f64,
    /// Yardstick time / DuckDB time.
    pub speedup: f64,
    /// Every run's result matched the yardstick's (the suite stops at the first that does not).
    pub matched_yardstick: bool,
    /// Peak RSS of the Python process running DuckDB, over the runs.
    pub peak_rss: u64,
}

impl PeerTime {
    pub fn new(
        workload: Workload,
        version: &str,
        threads: usize,
        local_copy: bool,
        runs: &[crate::duckdb_peer::PeerRun],
        yardstick_s: f64,
        input_bytes: u64,
    ) -> PeerTime {
        let runs_s: Vec<f64> = runs.iter().map(|r| r.time.as_secs_f64()).collect();
        let (median_s, min_s, max_s) = summary(&runs_s);
        let plural = if threads == 1 { "" } else { "s" };
        let copy = if local_copy { ", local copy" } else { "" };
        PeerTime {
            workload,
            label: format!("DuckDB {version}, {threads} thread{plural}{copy}"),
            version: version.to_string(),
            threads,
            local_copy,
            runs_s,
            median_s,
            min_s,
            max_s,
            input_bytes,
            input_mb_per_s: input_bytes as f64 / 1e6 / median_s.max(1e-9),
            speedup: yardstick_s / median_s.max(1e-9),
            matched_yardstick: true,
            peak_rss: runs.iter().map(|r| r.peak_rss).max().unwrap_or(0),
        }
    }
}

/// Median, min and max of `runs`.
pub fn summary(runs: &[f64]) -> (f64, f64, f64) {
    let mut v = runs.to_vec();
    v.sort_by(f64::total_cmp);
    let median = v.get(v.len() / 2).copied().unwrap_or(0.0);
    (
        median,
        v.first().copied().unwrap_or(0.0),
        v.last().copied().unwrap_or(0.0),
    )
}

/// The per-stage figures of a finished job (with its attempts: `JobHandle::details`).
pub fn stage_figures(progress: &JobProgress) -> Vec<StageFigures> {
    progress
        .stages
        .iter()
        .map(|s| {
            let succeeded = || {
                s.attempts
                    .iter()
                    .filter(|a| a.state == TaskAttemptState::Succeeded)
            };
            StageFigures {
                id: s.id,
                description: s.description.clone(),
                tasks: s.tasks_total,
                attempts: s.attempts.len() as u32,
                seconds: s.elapsed.as_secs_f64(),
                busy_s: s.attempts.iter().map(|a| a.elapsed.as_secs_f64()).sum(),
                rows_out: s.rows_out,
                bytes_out: s.bytes_out,
                shuffle_written: if is_shuffle(&s.output) {
                    s.bytes_out
                } else {
                    0
                },
                shuffle_read: succeeded().map(|a| a.shuffle_bytes_read).sum(),
                shuffle_fetched: succeeded().map(|a| a.shuffle_bytes_fetched).sum(),
                spilled_bytes: s.spilled_bytes,
            }
        })
        .collect()
}

/// Whether a stage's output is a shuffle.
pub fn is_shuffle(output: &StageOutput) -> bool {
    matches!(
        output,
        StageOutput::HashShuffle { .. } | StageOutput::RangeShuffle { .. }
    )
}

/// Per-worker figures of a finished job (with its attempts): every worker of `cluster`, and
/// any other that ran an attempt (one that registered later).
pub fn worker_figures(cluster: &ClusterDescription, progress: &JobProgress) -> Vec<WorkerFigures> {
    let mut by_id: BTreeMap<&str, WorkerFigures> = cluster
        .workers
        .iter()
        .map(|w| {
            let figures = WorkerFigures {
                worker_id: w.worker_id.clone(),
                hostname: w.hostname.clone(),
                ..WorkerFigures::default()
            };
            (w.worker_id.as_str(), figures)
        })
        .collect();
    for stage in &progress.stages {
        for a in &stage.attempts {
            let w = by_id
                .entry(a.worker_id.as_str())
                .or_insert_with(|| WorkerFigures {
                    worker_id: a.worker_id.clone(),
                    hostname: "(not listed at start)".into(),
                    ..WorkerFigures::default()
                });
            w.attempts += 1;
            w.busy_s += a.elapsed.as_secs_f64();
            if a.state == TaskAttemptState::Succeeded {
                w.tasks += 1;
                if is_shuffle(&stage.output) {
                    w.shuffle_written += a.bytes_out;
                }
                w.shuffle_read += a.shuffle_bytes_read;
                w.shuffle_fetched += a.shuffle_bytes_fetched;
                w.spilled_bytes += a.spilled_bytes;
            }
        }
    }
    by_id.into_values().collect()
}

fn mib(bytes: u64) -> String {
    format!("{:.0}", bytes as f64 / (1u64 << 20) as f64)
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The clusters, as their coordinators listed them when the suite started.
pub fn cluster_table(clusters: &[ClusterDescription]) -> String {
    let mut out = String::from(
        "| configuration | coordinator | workers | slots | hosts |\n| --- | --- | --- | --- | --- |\n",
    );
    for c in clusters {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            cell(&c.label),
            cell(&c.coordinator),
            c.workers.len(),
            c.slots(),
            cell(&c.hosts().join(", "))
        ));
    }
    out
}

/// The results as a Markdown table, one row per workload and configuration, with the
/// yardstick's and DuckDB's rows first.
pub fn markdown(yardsticks: &[YardstickTime], peers: &[PeerTime], rows: &[Measurement]) -> String {
    let mut out = String::new();
    out.push_str("| workload | configuration | median s (min–max) | input MB/s | × yardstick | × DuckDB | shuffle MiB | spilled MiB | peak RSS MiB (coordinator / workers) |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for y in yardsticks {
        let (median, min, max) = summary(&y.runs_s);
        out.push_str(&format!(
            "| {} | yardstick (1 thread, driver's host) | {median:.2} ({min:.2}–{max:.2}) | {:.0} | 1.00 | – | – | – | – |\n",
            y.workload.name(),
            y.input_bytes as f64 / 1e6 / median.max(1e-9)
        ));
        for p in peers.iter().filter(|p| p.workload == y.workload) {
            out.push_str(&format!(
                "| {} | {} | {:.2} ({:.2}–{:.2}) | {:.0} | {:.2} | 1.00 | – | – | {} (Python process) |\n",
                p.workload.name(),
                cell(&p.label),
                p.median_s,
                p.min_s,
                p.max_s,
                p.input_mb_per_s,
                p.speedup,
                mib(p.peak_rss)
            ));
        }
        for m in rows.iter().filter(|m| m.workload == y.workload) {
            let rss = match m.config.kind {
                ClusterKind::Remote => "– (remote)".to_string(),
                ClusterKind::Local => format!("{} / in process", mib(m.peak_rss_coordinator)),
                ClusterKind::Processes => format!(
                    "{} / {}",
                    mib(m.peak_rss_coordinator),
                    m.peak_rss_workers
                        .iter()
                        .map(|&b| mib(b))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            out.push_str(&format!(
                "| {} | {} | {:.2} ({:.2}–{:.2}) | {:.0} | **{:.2}** | {} | {} | {} | {} |\n",
                m.workload.name(),
                cell(&m.label),
                m.median_s,
                m.min_s,
                m.max_s,
                m.input_mb_per_s,
                m.speedup,
                m.vs_duckdb
                    .map_or_else(|| "–".to_string(), |x| format!("**{x:.2}**")),
                mib(m.shuffle_bytes),
                mib(m.spilled_bytes),
                rss
            ));
        }
    }
    out
}

/// Strong scaling: per workload, one row per kind of cluster (and slots per worker) and one
/// for DuckDB, a column per total slot count (DuckDB's threads): the median, and the speedup
/// over the same row's 1-slot median.
pub fn scaling_table(workloads: &[Workload], peers: &[PeerTime], rows: &[Measurement]) -> String {
    let mut totals: Vec<usize> = rows
        .iter()
        .map(total_slots)
        .chain(peers.iter().map(|p| p.threads))
        .collect();
    totals.sort_unstable();
    totals.dedup();
    let mut out = String::from("| workload | engine |");
    for t in &totals {
        out.push_str(&format!(" {t} slot{} |", if *t == 1 { "" } else { "s" }));
    }
    out.push_str("\n| --- | --- |");
    out.push_str(&" --- |".repeat(totals.len()));
    out.push('\n');
    for &w in workloads {
        // Series: (name, [(total slots, median)]), in the order first seen.
        let mut series: Vec<(String, Vec<(usize, f64)>)> = Vec::new();
        let mut add = |name: String, slots: usize, median: f64| match series
            .iter_mut()
            .find(|(n, _)| *n == name)
        {
            Some((_, points)) => points.push((slots, median)),
            None => series.push((name, vec![(slots, median)])),
        };
        for m in rows.iter().filter(|m| m.workload == w) {
            let name = match m.config.kind {
                ClusterKind::Local => format!("local, workers × {} slot", m.config.slots),
                ClusterKind::Processes => {
                    format!("processes, workers × {} slot", m.config.slots)
                }
                ClusterKind::Remote => cell(&m.label),
            };
            add(name, total_slots(m), m.median_s);
        }
        for p in peers.iter().filter(|p| p.workload == w) {
            add(format!("DuckDB {}", p.version), p.threads, p.median_s);
        }
        for (name, points) in &series {
            let one = points.iter().find(|(s, _)| *s == 1).map(|p| p.1);
            out.push_str(&format!("| {} | {} |", w.name(), cell(name)));
            for t in &totals {
                match points.iter().find(|(s, _)| s == t) {
                    Some((_, median)) => match one {
                        Some(one) => {
                            out.push_str(&format!(" {median:.2} (×{:.2}) |", one / median))
                        }
                        None => out.push_str(&format!(" {median:.2} |")),
                    },
                    None => out.push_str(" – |"),
                }
            }
            out.push('\n');
        }
    }
    out
}

/// A measurement's total slots: workers × slots, or a remote cluster's sum.
fn total_slots(m: &Measurement) -> usize {
    match m.config.kind {
        ClusterKind::Remote => m.config.slots,
        _ => m.config.workers * m.config.slots,
    }
}

/// Per-stage figures of each measurement's median run.
pub fn stage_table(rows: &[Measurement]) -> String {
    let mut out = String::from(
        "| workload | configuration | stage | tasks (attempts) | seconds | busy s | rows out | output MiB | shuffle written / read / fetched MiB | spilled MiB |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for m in rows {
        for s in &m.stages {
            out.push_str(&format!(
                "| {} | {} | {}: {} | {} ({}) | {:.2} | {:.2} | {} | {} | {} / {} / {} | {} |\n",
                m.workload.name(),
                cell(&m.label),
                s.id,
                cell(&s.description),
                s.tasks,
                s.attempts,
                s.seconds,
                s.busy_s,
                s.rows_out,
                mib(s.bytes_out),
                mib(s.shuffle_written),
                mib(s.shuffle_read),
                mib(s.shuffle_fetched),
                mib(s.spilled_bytes)
            ));
        }
    }
    out
}

/// Per-worker figures of each measurement's median run.
pub fn worker_table(rows: &[Measurement]) -> String {
    let mut out = String::from(
        "| workload | configuration | worker | host | tasks (attempts) | busy s | shuffle written / read / fetched MiB | spilled MiB |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for m in rows {
        for w in &m.workers {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} ({}) | {:.2} | {} / {} / {} | {} |\n",
                m.workload.name(),
                cell(&m.label),
                cell(w.worker_id.get(..8).unwrap_or(&w.worker_id)),
                cell(&w.hostname),
                w.tasks,
                w.attempts,
                w.busy_s,
                mib(w.shuffle_written),
                mib(w.shuffle_read),
                mib(w.shuffle_fetched),
                mib(w.spilled_bytes)
            ));
        }
    }
    out
}
