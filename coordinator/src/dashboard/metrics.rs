//! The coordinator's `/metrics` page in the Prometheus text format: the present, computed from
//! the scheduler's state when it is read (workers and their heartbeat age, jobs and tasks by
//! state, queued tasks), then what the scheduler counted since this coordinator started
//! (`scheduler_metrics`). Every family is listed in docs/operations.md.

use quiver_net::metrics_text::{MetricKind, MetricsText};

use crate::coordinator_state::CoordinatorState;
use crate::job::{Job, JobState, Stage, TaskState};

use super::{liveness, state_name};

const JOB_STATES: [JobState; 5] = [
    JobState::Queued,
    JobState::Running,
    JobState::Succeeded,
    JobState::Failed,
    JobState::Cancelled,
];

/// The page. CPU work over every kept job: the caller runs it off the async threads.
pub fn render(state: &CoordinatorState) -> String {
    let now = state.now();
    let scheduler = state.scheduler();
    let mut m = MetricsText::new();

    let workers = scheduler.workers().snapshot();
    let name = "quiver_workers";
    m.family(
        name,
        MetricKind::Gauge,
        "Workers the coordinator knows, by state.",
    );
    for s in ["alive", "draining", "lost", "left"] {
        let n = workers
            .iter()
            .filter(|(_, w)| liveness(w.liveness, w.draining) == s)
            .count();
        m.sample(name, &[("state", s)], n as f64);
    }
    // Per-worker series for live workers only: a departed worker's series end with it.
    let live: Vec<_> = workers.iter().filter(|(_, w)| w.is_alive()).collect();
    let per_worker: [(&str, MetricKind, &str); 6] = [
        (
            "quiver_worker_slots",
            MetricKind::Gauge,
            "Task slots of each live worker.",
        ),
        (
            "quiver_worker_running_tasks",
            MetricKind::Gauge,
            "Tasks running on each live worker, as it last reported.",
        ),
        (
            "quiver_worker_tasks_completed_total",
            MetricKind::Counter,
            "Task attempts each live worker finished successfully (since it first registered).",
        ),
        (
            "quiver_worker_heartbeat_age_seconds",
            MetricKind::Gauge,
            "Time since each live worker's last heartbeat.",
        ),
        (
            "quiver_worker_memory_reserved_bytes",
            MetricKind::Gauge,
            "Operator memory each live worker's tasks hold, as it last reported.",
        ),
        (
            "quiver_worker_shuffle_bytes_served_total",
            MetricKind::Counter,
            "Map output bytes each live worker served, as it last reported.",
        ),
    ];
    for (i, (name, kind, help)) in per_worker.into_iter().enumerate() {
        m.family(name, kind, help);
        for (id, w) in &live {
            let value = match i {
                0 => Some(w.slots as f64),
                1 => Some(w.running_tasks as f64),
                2 => Some(w.tasks_completed as f64),
                3 => Some(now.since(w.last_heartbeat).as_secs_f64()),
                4 => w.load.memory_reserved_bytes.map(|b| b as f64),
                _ => w.load.shuffle_bytes_served.map(|b| b as f64),
            };
            if let Some(v) = value {
                m.sample(name, &[("worker", &id.0)], v);
            }
        }
    }

    let name = "quiver_jobs";
    m.family(
        name,
        MetricKind::Gauge,
        "Jobs the coordinator keeps, by state.",
    );
    for s in JOB_STATES {
        let n = scheduler.jobs().filter(|j| j.state == s).count();
        m.sample(name, &[("state", state_name(s))], n as f64);
    }
    let name = "quiver_job_info";
    m.family(
        name,
        MetricKind::Gauge,
        "1 for each job the coordinator keeps (unfinished, and the newest finished up to --job-history), with its name and state.",
    );
    for j in scheduler.jobs() {
        m.sample(
            name,
            &[
                ("job", &j.id.0),
                ("name", &j.name),
                ("state", state_name(j.state)),
            ],
            1.0,
        );
    }

    let (mut pending, mut running, mut done, mut queued) = (0u64, 0u64, 0u64, 0u64);
    for j in scheduler.jobs().filter(|j| !j.state.is_terminal()) {
        for (s, stage) in j.stages.iter().enumerate() {
            let runnable = j.state == JobState::Running && inputs_complete(j, s);
            for t in &stage.tasks {
                match t.state {
                    TaskState::Pending => {
                        pending += 1;
                        if runnable {
                            queued += 1;
                        }
                    }
                    TaskState::Running { .. } => running += 1,
                    TaskState::Done { .. } => done += 1,
                }
            }
        }
    }
    let name = "quiver_tasks";
    m.family(
        name,
        MetricKind::Gauge,
        "Tasks of unfinished jobs, by state (pending includes stages still waiting for their inputs).",
    );
    for (s, n) in [("pending", pending), ("running", running), ("done", done)] {
        m.sample(name, &[("state", s)], n as f64);
    }
    m.single(
        "quiver_tasks_queued",
        MetricKind::Gauge,
        "Pending tasks whose stage could run now (its inputs are complete): they wait for a free slot.",
        queued as f64,
    );

    scheduler.metrics().render(&mut m);
    m.finish()
}

fn inputs_complete(job: &Job, stage: usize) -> bool {
    job.stages[stage]
        .inputs
        .iter()
        .all(|i| job.stages.get(i.0 as usize).is_some_and(Stage::is_complete))
}
