//! [`SchedulerMetrics`]: what the scheduler has done since this coordinator started — task
//! attempts by how they ended, failures and retries by reason, speculative attempts, adaptive
//! execution's decisions, shuffle and spill bytes, and task and job durations — for
//! `/metrics`.
//!
//! The scheduler updates it while it handles an event (so under its lock: plain numbers, no
//! atomics); gauges that describe the present (jobs and tasks by state, workers) are computed
//! from the scheduler's state when `/metrics` is read, not kept here. Counters start at zero
//! with each coordinator process, as Prometheus expects of a restarted target.

use std::time::Duration;

use quiver_net::metrics_text::{DURATION_BUCKETS, Histogram, MetricKind, MetricsText};

use crate::job::JobState;

/// Why a task attempt failed: a small fixed set, so that it can be a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureReason {
    /// The task's own error (a user function, an input, a disk) that a retry may cure.
    TaskError,
    /// An error no retry can cure (a bad plan, a refused path): its job fails.
    NotRetryable,
    /// It could not fetch a map output from another worker (the output is recomputed).
    FetchFailed,
    /// Its worker was lost while it ran.
    WorkerLost,
}

impl FailureReason {
    const ALL: [FailureReason; 4] = [
        FailureReason::TaskError,
        FailureReason::NotRetryable,
        FailureReason::FetchFailed,
        FailureReason::WorkerLost,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            FailureReason::TaskError => "task_error",
            FailureReason::NotRetryable => "not_retryable",
            FailureReason::FetchFailed => "fetch_failed",
            FailureReason::WorkerLost => "worker_lost",
        }
    }
}

/// Why a running attempt was stopped by the coordinator (not a failure).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelReason {
    /// Its job ended (failed or cancelled) while it ran.
    JobEnded,
    /// It was one of two attempts of a speculated task, and the other finished first.
    LostRace,
}

/// The scheduler's counters and histograms.
#[derive(Clone, Debug)]
pub struct SchedulerMetrics {
    succeeded: u64,
    failures: [u64; 4],
    retries: [u64; 4],
    cancelled: [u64; 2],
    speculative: u64,
    /// Adaptive decisions, by [`ADAPTIVE_DECISIONS`].
    adaptive: [u64; 5],
    shuffle_bytes_written: u64,
    shuffle_bytes_read: u64,
    shuffle_bytes_fetched: u64,
    spilled_bytes: u64,
    task_duration: Histogram,
    /// By final state: succeeded, failed, cancelled.
    job_duration: [Histogram; 3],
}

impl Default for SchedulerMetrics {
    fn default() -> Self {
        SchedulerMetrics {
            succeeded: 0,
            failures: [0; 4],
            retries: [0; 4],
            cancelled: [0; 2],
            speculative: 0,
            adaptive: [0; 5],
            shuffle_bytes_written: 0,
            shuffle_bytes_read: 0,
            shuffle_bytes_fetched: 0,
            spilled_bytes: 0,
            task_duration: Histogram::new(DURATION_BUCKETS),
            job_duration: std::array::from_fn(|_| Histogram::new(DURATION_BUCKETS)),
        }
    }
}

/// What a successful attempt did, as the scheduler counts it.
pub struct SucceededAttempt {
    pub duration: Option<Duration>,
    /// Bytes of map output it wrote for a later stage (0 for a sink).
    pub shuffle_bytes_written: u64,
    pub shuffle_bytes_read: u64,
    pub shuffle_bytes_fetched: u64,
    pub spilled_bytes: u64,
}

/// The kinds of adaptive decision (`crate::adaptive`), as labels.
const ADAPTIVE_DECISIONS: [&str; 5] = ["coalesced", "split", "kept", "broadcast", "shuffled"];

const JOB_STATES: [(JobState, &str); 3] = [
    (JobState::Succeeded, "succeeded"),
    (JobState::Failed, "failed"),
    (JobState::Cancelled, "cancelled"),
];

impl SchedulerMetrics {
    /// The scheduler accepted an attempt's success.
    pub fn succeeded(&mut self, a: SucceededAttempt) {
        self.succeeded += 1;
        if let Some(d) = a.duration {
            self.task_duration.observe(d.as_secs_f64());
        }
        // Figures are a worker's word: added without overflow, however large.
        let add = |total: &mut u64, n: u64| *total = total.saturating_add(n);
        add(&mut self.shuffle_bytes_written, a.shuffle_bytes_written);
        add(&mut self.shuffle_bytes_read, a.shuffle_bytes_read);
        add(&mut self.shuffle_bytes_fetched, a.shuffle_bytes_fetched);
        add(&mut self.spilled_bytes, a.spilled_bytes);
    }

    /// An attempt failed for `reason`; `retried` when its task runs again.
    pub fn failed(&mut self, reason: FailureReason, retried: bool) {
        let i = reason as usize;
        self.failures[i] += 1;
        if retried {
            self.retries[i] += 1;
        }
    }

    /// `n` running attempts were stopped for `reason`.
    pub fn cancelled(&mut self, reason: CancelReason, n: usize) {
        self.cancelled[reason as usize] += n as u64;
    }

    /// A speculative (backup) attempt was launched.
    pub fn speculative_launched(&mut self, n: usize) {
        self.speculative += n as u64;
    }

    /// Adaptive execution took a decision of kind `decision` (one of its labels).
    pub fn adaptive_decided(&mut self, decision: &str) {
        if let Some(i) = ADAPTIVE_DECISIONS.iter().position(|d| *d == decision) {
            self.adaptive[i] += 1;
        }
    }

    /// A job ended in `state`, `duration` after it was submitted.
    pub fn job_finished(&mut self, state: JobState, duration: Duration) {
        if let Some(i) = JOB_STATES.iter().position(|(s, _)| *s == state) {
            self.job_duration[i].observe(duration.as_secs_f64());
        }
    }

    /// Successful attempts the scheduler accepted.
    pub fn succeeded_attempts(&self) -> u64 {
        self.succeeded
    }

    /// Backup attempts launched.
    pub fn speculative_attempts(&self) -> u64 {
        self.speculative
    }

    /// Attempts that failed for `reason`.
    pub fn failures(&self, reason: FailureReason) -> u64 {
        self.failures[reason as usize]
    }

    /// Failed attempts for `reason` whose task ran again.
    pub fn retries(&self, reason: FailureReason) -> u64 {
        self.retries[reason as usize]
    }

    /// Running attempts stopped for `reason`.
    pub fn cancellations(&self, reason: CancelReason) -> u64 {
        self.cancelled[reason as usize]
    }

    /// Jobs that ended in `state` (the count of their duration histogram).
    pub fn jobs_ended(&self, state: JobState) -> u64 {
        JOB_STATES
            .iter()
            .position(|(s, _)| *s == state)
            .map_or(0, |i| self.job_duration[i].count())
    }

    /// Writes every family this keeps.
    pub fn render(&self, m: &mut MetricsText) {
        let attempts = "quiver_task_attempts_total";
        m.family(
            attempts,
            MetricKind::Counter,
            "Task attempts that ended, by outcome (failed ones by reason in quiver_task_failures_total).",
        );
        m.sample(attempts, &[("outcome", "succeeded")], self.succeeded as f64);
        m.sample(
            attempts,
            &[("outcome", "failed")],
            self.failures.iter().sum::<u64>() as f64,
        );
        m.sample(
            attempts,
            &[("outcome", "cancelled")],
            self.cancelled.iter().sum::<u64>() as f64,
        );
        for (name, help, values) in [
            (
                "quiver_task_failures_total",
                "Task attempts that failed, by reason.",
                &self.failures,
            ),
            (
                "quiver_task_retries_total",
                "Failed task attempts whose task runs again, by the failure's reason.",
                &self.retries,
            ),
        ] {
            m.family(name, MetricKind::Counter, help);
            for r in FailureReason::ALL {
                m.sample(name, &[("reason", r.name())], values[r as usize] as f64);
            }
        }
        let name = "quiver_task_cancellations_total";
        m.family(
            name,
            MetricKind::Counter,
            "Running task attempts the coordinator stopped: job_ended (their job failed or was cancelled), lost_race (the other attempt of a speculated task finished first).",
        );
        for (reason, label) in [
            (CancelReason::JobEnded, "job_ended"),
            (CancelReason::LostRace, "lost_race"),
        ] {
            m.sample(
                name,
                &[("reason", label)],
                self.cancelled[reason as usize] as f64,
            );
        }
        m.single(
            "quiver_speculative_attempts_total",
            MetricKind::Counter,
            "Backup attempts launched for straggling tasks.",
            self.speculative as f64,
        );
        let name = "quiver_adaptive_decisions_total";
        m.family(
            name,
            MetricKind::Counter,
            "Adaptive execution's decisions from measured sizes: a stage's partitions coalesced, a skewed join partition split, a stage kept as planned; a join's right side broadcast, or the join kept shuffled.",
        );
        for (i, decision) in ADAPTIVE_DECISIONS.iter().enumerate() {
            m.sample(name, &[("decision", decision)], self.adaptive[i] as f64);
        }
        for (name, help, value) in [
            (
                "quiver_shuffle_bytes_written_total",
                "Map output bytes written for later stages by successful attempts.",
                self.shuffle_bytes_written,
            ),
            (
                "quiver_shuffle_bytes_read_total",
                "Map output bytes read by successful attempts, from any worker.",
                self.shuffle_bytes_read,
            ),
            (
                "quiver_shuffle_bytes_fetched_total",
                "The part of quiver_shuffle_bytes_read_total fetched from another worker.",
                self.shuffle_bytes_fetched,
            ),
            (
                "quiver_spilled_bytes_total",
                "Bytes successful attempts spilled to disk.",
                self.spilled_bytes,
            ),
        ] {
            m.single(name, MetricKind::Counter, help, value as f64);
        }
        let name = "quiver_task_duration_seconds";
        m.family(
            name,
            MetricKind::Histogram,
            "Run time of successful task attempts (launch to accepted report).",
        );
        m.histogram(name, &[], &self.task_duration);
        let name = "quiver_job_duration_seconds";
        m.family(
            name,
            MetricKind::Histogram,
            "Time from submission to the end of jobs that ended, by final state.",
        );
        for (i, (_, state)) in JOB_STATES.iter().enumerate() {
            m.histogram(name, &[("state", state)], &self.job_duration[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_retries_and_durations_are_counted_by_label() {
        let mut s = SchedulerMetrics::default();
        s.failed(FailureReason::TaskError, true);
        s.failed(FailureReason::WorkerLost, false);
        s.succeeded(SucceededAttempt {
            duration: Some(Duration::from_millis(20)),
            shuffle_bytes_written: u64::MAX,
            shuffle_bytes_read: 5,
            shuffle_bytes_fetched: 2,
            spilled_bytes: 0,
        });
        s.succeeded(SucceededAttempt {
            duration: None,
            shuffle_bytes_written: 1,
            shuffle_bytes_read: 0,
            shuffle_bytes_fetched: 0,
            spilled_bytes: 0,
        });
        s.job_finished(JobState::Failed, Duration::from_secs(2));
        s.adaptive_decided("coalesced");
        s.adaptive_decided("coalesced");
        s.adaptive_decided("broadcast");
        let mut m = MetricsText::new();
        s.render(&mut m);
        let text = m.finish();
        for line in [
            "quiver_task_attempts_total{outcome=\"succeeded\"} 2",
            "quiver_task_attempts_total{outcome=\"failed\"} 2",
            "quiver_task_failures_total{reason=\"task_error\"} 1",
            "quiver_task_failures_total{reason=\"worker_lost\"} 1",
            "quiver_task_retries_total{reason=\"task_error\"} 1",
            "quiver_task_retries_total{reason=\"worker_lost\"} 0",
            "quiver_shuffle_bytes_read_total 5",
            "quiver_adaptive_decisions_total{decision=\"coalesced\"} 2",
            "quiver_adaptive_decisions_total{decision=\"broadcast\"} 1",
            "quiver_adaptive_decisions_total{decision=\"split\"} 0",
            "quiver_task_duration_seconds_bucket{le=\"0.01\"} 0",
            "quiver_task_duration_seconds_bucket{le=\"0.05\"} 1",
            "quiver_task_duration_seconds_count 1",
            "quiver_job_duration_seconds_bucket{state=\"failed\",le=\"2.5\"} 1",
            "quiver_job_duration_seconds_count{state=\"succeeded\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        // Saturated, not wrapped.
        assert!(text.contains(&format!(
            "quiver_shuffle_bytes_written_total {}",
            u64::MAX as f64
        )));
    }
}
