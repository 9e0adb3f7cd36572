//! [`WorkerMetrics`]: the worker's own counters — shuffle bytes served and fetched, fetch
//! failures, spilled bytes, task attempts by outcome — as plain atomics bumped where the work
//! happens (the Flight server, the shuffle reader, the task executor), and the worker's
//! `/metrics` page that reads them with the gauges of the moment (slots, memory).
//!
//! Relaxed atomics: each counter is read on its own, and a scrape that misses an increment by
//! a moment sees it on the next one. Every family is listed in docs/operations.md.

use std::sync::atomic::{AtomicU64, Ordering};

use quiver_net::metrics_text::{MetricKind, MetricsText};

/// How a task attempt ended on this worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptEnd {
    Succeeded,
    Failed,
    /// The coordinator asked it to stop (its job ended, or another attempt won).
    Cancelled,
}

/// Counters of one worker, since it started.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    shuffle_bytes_served: AtomicU64,
    shuffle_bytes_fetched: AtomicU64,
    fetch_failures: AtomicU64,
    spilled_bytes: AtomicU64,
    /// By [`AttemptEnd`].
    attempts: [AtomicU64; 3],
}

/// The gauges of the moment, read by the caller of [`WorkerMetrics::render`].
pub struct WorkerGauges {
    pub slots: usize,
    pub busy_slots: usize,
    pub memory_reserved: usize,
    pub memory_limit: usize,
    pub registered: bool,
    pub draining: bool,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl WorkerMetrics {
    /// This worker's Flight server sent `bytes` of stored map output (or results).
    pub fn served(&self, bytes: u64) {
        add(&self.shuffle_bytes_served, bytes);
    }

    /// Map output bytes served so far (also sent with each heartbeat).
    pub fn shuffle_bytes_served(&self) -> u64 {
        self.shuffle_bytes_served.load(Ordering::Relaxed)
    }

    /// A task fetched `bytes` (in memory, as Arrow arrays) of map output from another worker.
    pub fn fetched(&self, bytes: u64) {
        add(&self.shuffle_bytes_fetched, bytes);
    }

    /// A fetch of map output from another worker failed.
    pub fn fetch_failed(&self) {
        add(&self.fetch_failures, 1);
    }

    /// A task attempt spilled `bytes` to disk.
    pub fn spilled(&self, bytes: u64) {
        add(&self.spilled_bytes, bytes);
    }

    /// A task attempt ended.
    pub fn attempt_ended(&self, end: AttemptEnd) {
        add(&self.attempts[end as usize], 1);
    }

    /// The `/metrics` page: `gauges` and the counters.
    pub fn render(&self, gauges: &WorkerGauges) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        let mut m = MetricsText::new();
        for (name, help, value) in [
            ("quiver_worker_slots", "Task slots.", gauges.slots),
            (
                "quiver_worker_busy_slots",
                "Slots running a task attempt now.",
                gauges.busy_slots,
            ),
            (
                "quiver_worker_memory_reserved_bytes",
                "Operator memory (hash tables, sort and join buffers, shuffle buckets) tasks hold now.",
                gauges.memory_reserved,
            ),
            (
                "quiver_worker_memory_limit_bytes",
                "The memory budget (--memory-limit) beyond which tasks spill.",
                gauges.memory_limit,
            ),
            (
                "quiver_worker_registered",
                "1 while the worker is registered with its coordinator.",
                gauges.registered as usize,
            ),
            (
                "quiver_worker_draining",
                "1 while the worker drains (after SIGTERM): it takes no new tasks.",
                gauges.draining as usize,
            ),
        ] {
            m.single(name, MetricKind::Gauge, help, value as f64);
        }
        for (name, help, counter) in [
            (
                "quiver_worker_spilled_bytes_total",
                "Bytes task attempts spilled to disk.",
                &self.spilled_bytes,
            ),
            (
                "quiver_worker_shuffle_bytes_served_total",
                "Stored map output (and collect result) bytes served to other workers and drivers.",
                &self.shuffle_bytes_served,
            ),
            (
                "quiver_worker_shuffle_bytes_fetched_total",
                "Map output fetched from other workers, in bytes of Arrow arrays.",
                &self.shuffle_bytes_fetched,
            ),
            (
                "quiver_worker_fetch_failures_total",
                "Fetches of map output from another worker that failed.",
                &self.fetch_failures,
            ),
        ] {
            m.single(name, MetricKind::Counter, help, load(counter));
        }
        let name = "quiver_worker_task_attempts_total";
        m.family(
            name,
            MetricKind::Counter,
            "Task attempts that ended on this worker, by outcome.",
        );
        for (end, label) in [
            (AttemptEnd::Succeeded, "succeeded"),
            (AttemptEnd::Failed, "failed"),
            (AttemptEnd::Cancelled, "cancelled"),
        ] {
            m.sample(
                name,
                &[("outcome", label)],
                load(&self.attempts[end as usize]),
            );
        }
        m.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_on_the_page() {
        let m = WorkerMetrics::default();
        m.served(10);
        m.served(5);
        m.fetch_failed();
        m.attempt_ended(AttemptEnd::Cancelled);
        let page = m.render(&WorkerGauges {
            slots: 4,
            busy_slots: 1,
            memory_reserved: 0,
            memory_limit: 1 << 20,
            registered: true,
            draining: false,
        });
        for line in [
            "quiver_worker_busy_slots 1",
            "quiver_worker_shuffle_bytes_served_total 15",
            "quiver_worker_fetch_failures_total 1",
            "quiver_worker_task_attempts_total{outcome=\"cancelled\"} 1",
            "quiver_worker_memory_limit_bytes 1048576",
        ] {
            assert!(page.lines().any(|l| l == line), "no {line:?} in\n{page}");
        }
        assert_eq!(m.shuffle_bytes_served(), 15);
    }
}
