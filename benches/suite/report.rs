//! What the suite measured, as JSON and as a Markdown table.

use serde::Serialize;

use crate::clusters::Config;
use crate::workloads::Workload;

/// One stage of the median run.
#[derive(Clone, Debug, Serialize)]
pub struct StageTime {
    pub id: u32,
    pub description: String,
    pub seconds: f64,
    pub bytes_out: u64,
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
    pub shuffle_bytes: u64,
    pub spilled_bytes: u64,
    pub peak_rss_coordinator: u64,
    pub peak_rss_workers: Vec<u64>,
    pub stages: Vec<StageTime>,
}

/// The yardstick's times for one workload.
#[derive(Clone, Debug, Serialize)]
pub struct YardstickTime {
    pub workload: Workload,
    pub runs_s: Vec<f64>,
    pub median_s: f64,
    pub input_bytes: u64,
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

fn mib(bytes: u64) -> String {
    format!("{:.0}", bytes as f64 / (1u64 << 20) as f64)
}

/// The results as a Markdown table, one row per workload and configuration.
pub fn markdown(yardsticks: &[YardstickTime], rows: &[Measurement]) -> String {
    let mut out = String::new();
    out.push_str("| workload | configuration | median s (min–max) | input MB/s | × yardstick | shuffle MiB | spilled MiB | peak RSS MiB (coordinator / workers) |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for y in yardsticks {
        let (median, min, max) = summary(&y.runs_s);
        out.push_str(&format!(
            "| {} | yardstick (1 thread) | {median:.2} ({min:.2}–{max:.2}) | {:.0} | 1.00 | – | – | – |\n",
            y.workload.name(),
            y.input_bytes as f64 / 1e6 / median.max(1e-9)
        ));
        for m in rows.iter().filter(|m| m.workload == y.workload) {
            let workers = if m.peak_rss_workers.is_empty() {
                "in process".to_string()
            } else {
                m.peak_rss_workers
                    .iter()
                    .map(|&b| mib(b))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push_str(&format!(
                "| {} | {} | {:.2} ({:.2}–{:.2}) | {:.0} | **{:.2}** | {} | {} | {} / {} |\n",
                m.workload.name(),
                m.label,
                m.median_s,
                m.min_s,
                m.max_s,
                m.input_mb_per_s,
                m.speedup,
                mib(m.shuffle_bytes),
                mib(m.spilled_bytes),
                mib(m.peak_rss_coordinator),
                workers
            ));
        }
    }
    out
}

/// Per-stage times of each measurement's median run.
pub fn stage_table(rows: &[Measurement]) -> String {
    let mut out = String::from(
        "| workload | configuration | stage | seconds | output MiB |\n| --- | --- | --- | --- | --- |\n",
    );
    for m in rows {
        for s in &m.stages {
            out.push_str(&format!(
                "| {} | {} | {}: {} | {:.2} | {} |\n",
                m.workload.name(),
                m.label,
                s.id,
                s.description.replace('|', "\\|"),
                s.seconds,
                mib(s.bytes_out)
            ));
        }
    }
    out
}
