//! [`Admission`]: the checks a request must pass before it may change the coordinator's
//! state. Every number that will size something is bounded ([`Limits`]), every id that may
//! become a path is a UUID, every path lies under the allowed roots, and a worker's
//! registration names an address the coordinator can dial.
//!
//! It holds no state and does no I/O beyond resolving paths; the gRPC service calls it and
//! turns its errors into statuses.

use quiver_net::{AllowedRoots, Dialer};
use quiver_plan::{Limits, PlanNode, Sink, WorkerId};
use quiver_proto::v1 as pb;

use crate::error::{CoordinatorError, Result};
use crate::job::JobOptions;

/// Longest worker address, host name or function name accepted at registration.
const MAX_NAME_BYTES: usize = 512;
/// Most user functions a worker may advertise.
const MAX_FUNCTIONS: usize = 10_000;
/// Longest task failure message kept (a worker's message can be anything).
pub const MAX_ERROR_MESSAGE_BYTES: usize = 16 * 1024;

/// What the coordinator accepts.
#[derive(Clone, Debug)]
pub struct Admission {
    pub limits: Limits,
    /// Most task slots one worker may advertise.
    pub max_worker_slots: u32,
    /// Where jobs may read and write.
    pub roots: AllowedRoots,
    /// How the coordinator dials workers: a worker must advertise an address it can dial.
    pub dialer: Dialer,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            limits: Limits::default(),
            max_worker_slots: 1024,
            roots: AllowedRoots::anywhere(),
            dialer: Dialer::default(),
        }
    }
}

fn refused(message: String) -> CoordinatorError {
    CoordinatorError::Refused(message)
}

fn check_len(what: &str, value: &str) -> Result<()> {
    if value.len() > MAX_NAME_BYTES {
        return Err(refused(format!(
            "RegisterWorker: {what} is {} bytes; at most {MAX_NAME_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

impl Admission {
    /// Checks a worker's registration; returns its id.
    pub fn check_registration(&self, r: &pb::RegisterWorkerRequest) -> Result<WorkerId> {
        if r.protocol_version != quiver_proto::PROTOCOL_VERSION {
            return Err(CoordinatorError::ProtocolMismatch {
                worker: r.protocol_version,
                coordinator: quiver_proto::PROTOCOL_VERSION,
            });
        }
        let id = WorkerId::parse(&r.worker_id)?;
        let key = &r.session_key;
        if !(32..=256).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(refused(
                "RegisterWorker: session_key must be 32 to 256 letters and digits".into(),
            ));
        }
        if id.0 != quiver_net::worker_id_for(key) {
            return Err(CoordinatorError::WorkerImpersonation(id.0));
        }
        if r.slots == 0 || r.slots > self.max_worker_slots {
            return Err(CoordinatorError::Plan(
                quiver_plan::PlanError::LimitExceeded {
                    what: "a worker's slots".into(),
                    value: u64::from(r.slots),
                    limit: u64::from(self.max_worker_slots),
                    setting: "at least 1; coordinator flag --max-worker-slots",
                },
            ));
        }
        check_len("address", &r.address)?;
        check_len("hostname", &r.hostname)?;
        if r.functions.len() > MAX_FUNCTIONS {
            return Err(refused(format!(
                "RegisterWorker: {} functions; at most {MAX_FUNCTIONS}",
                r.functions.len()
            )));
        }
        for f in &r.functions {
            check_len("a function name", f)?;
        }
        let buckets: usize = r.held_outputs.iter().map(|h| h.bucket_bytes.len()).sum();
        for (what, value, limit) in [
            (
                "a registration's held outputs",
                r.held_outputs.len(),
                quiver_proto::MAX_HELD_OUTPUTS,
            ),
            (
                "the buckets of a registration's held outputs",
                buckets,
                quiver_proto::MAX_HELD_OUTPUT_BUCKETS,
            ),
            (
                "a registration's running attempts",
                r.running_attempts.len(),
                quiver_proto::MAX_HELD_OUTPUTS,
            ),
        ] {
            if value > limit {
                return Err(CoordinatorError::Plan(
                    quiver_plan::PlanError::LimitExceeded {
                        what: what.into(),
                        value: value as u64,
                        limit: limit as u64,
                        setting: "fixed: workers list no more",
                    },
                ));
            }
        }
        self.dialer
            .endpoint(&r.address)
            .map_err(|e| refused(format!("RegisterWorker: the worker's address {e}")))?;
        Ok(id)
    }

    /// Checks a submitted job and resolves its options.
    pub fn check_job(
        &self,
        plan: &PlanNode,
        sink: &Sink,
        options: Option<&pb::JobOptions>,
    ) -> Result<JobOptions> {
        plan.check_submittable()?;
        self.limits.check_plan(plan)?;
        crate::stage_planner::check_stage_sizes(plan, self.limits.max_tasks_per_stage)?;
        for node in plan.nodes() {
            if let PlanNode::Scan(scan) = node {
                for f in &scan.files {
                    self.roots.check(&f.path, "input")?;
                }
            }
        }
        if let Sink::WriteParquet { directory, .. } = sink {
            self.roots.check(directory, "output directory")?;
        }
        self.job_options(options)
    }

    /// Resolves a job's options: the one place where an option the job left out becomes the
    /// coordinator's default ([`JobOptions::default`]), and where one it set is checked.
    pub fn job_options(&self, options: Option<&pb::JobOptions>) -> Result<JobOptions> {
        let defaults = JobOptions::default();
        let Some(o) = options else {
            return Ok(defaults);
        };
        if let Some(n) = o.shuffle_partitions {
            self.limits
                .check_partitions("shuffle_partitions", u64::from(n))?;
        }
        let batch_size = match o.batch_size {
            None => defaults.batch_size,
            Some(0) => {
                return Err(refused(
                    "batch_size (rows per batch) must be at least 1".into(),
                ));
            }
            Some(n) => n,
        };
        self.limits.check_batch_size(u64::from(batch_size))?;
        Ok(JobOptions {
            shuffle_partitions: o.shuffle_partitions.or(defaults.shuffle_partitions),
            batch_size,
            broadcast_threshold: match o.broadcast_threshold {
                None => defaults.broadcast_threshold,
                // 0: never broadcast by size.
                Some(0) => None,
                Some(t) => Some(t),
            },
        })
    }
}

/// `message` cut to [`MAX_ERROR_MESSAGE_BYTES`] (on a character boundary).
pub fn bounded_message(mut message: String) -> String {
    if message.len() > MAX_ERROR_MESSAGE_BYTES {
        let mut cut = MAX_ERROR_MESSAGE_BYTES;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str(" … (cut)");
    }
    message
}
