//! [`SchedulerConfig`]: the scheduler's settings, and the policies of the modules it owns
//! made from them.

use std::time::Duration;

use crate::speculation::SpeculationPolicy;
use crate::worker_registry::ExclusionPolicy;

/// Scheduler settings.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Attempts a task may make (failures that a retry can help) before its job fails.
    pub max_task_attempts: u32,
    /// A job fails when one of its tasks was running on a worker that was lost this many
    /// times: the task is probably what kills them.
    pub max_worker_losses: u32,
    /// Bounds on partitions, tasks and plans (also given to every worker).
    pub limits: quiver_plan::Limits,
    /// How long a collect job's results stay on the workers after it succeeded.
    pub result_retention: Duration,
    /// How long a job waits while no worker is registered before it fails.
    pub worker_wait_timeout: Duration,
    /// A worker silent for longer than this is declared lost at the next
    /// [`Event::Tick`](crate::event::Event::Tick).
    /// `process::start` sets it from `CoordinatorConfig::heartbeat_timeout`.
    pub heartbeat_timeout: Duration,
    /// Speculative execution: a backup attempt for a task running far longer than the
    /// finished tasks of its stage.
    pub speculation: bool,
    /// A task is slow when it has run this many times the median of its stage's finished
    /// tasks ...
    pub speculation_multiplier: f64,
    /// ... and at least this long ...
    pub speculation_min_runtime: Duration,
    /// ... once this fraction of the stage's tasks has finished.
    pub speculation_quantile: f64,
    /// A worker on which this many task attempts failed (retryable failures) within
    /// `exclusion_window` gets no tasks for `exclusion_period`.
    pub exclude_after_failures: u32,
    /// See `exclude_after_failures`.
    pub exclusion_window: Duration,
    /// See `exclude_after_failures`.
    pub exclusion_period: Duration,
    /// Finished jobs kept (listed, their status kept); the oldest beyond it are forgotten.
    /// At least 1.
    pub job_history: usize,
    /// How long a worker that left (drained) or was lost stays listed; then it is forgotten
    /// (a lost worker that comes back registers afresh).
    pub departed_worker_retention: Duration,
    /// A job resumed after a coordinator restart launches no task for this long, so that the
    /// workers coming back first list the map outputs they still hold (which it adopts instead
    /// of recomputing them). It ends early once workers with as many slots as the job was
    /// planned for are back.
    pub resume_grace: Duration,
    /// Adaptive execution: once a stage's shuffle inputs are measured, runs of adjacent
    /// partitions smaller than this together are read by one task (0: never coalesce).
    pub coalesce_target_bytes: u64,
}

/// What a coalesced task reads at most, unless the coordinator is told otherwise (Spark's
/// advisory partition size, which has served it well).
pub const DEFAULT_COALESCE_TARGET_BYTES: u64 = 64 << 20;

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_task_attempts: 4,
            max_worker_losses: 2,
            limits: quiver_plan::Limits::default(),
            result_retention: Duration::from_secs(600),
            worker_wait_timeout: Duration::from_secs(300),
            heartbeat_timeout: Duration::from_secs(5),
            speculation: true,
            speculation_multiplier: 1.5,
            speculation_min_runtime: Duration::from_secs(1),
            speculation_quantile: 0.75,
            exclude_after_failures: 3,
            exclusion_window: Duration::from_secs(60),
            exclusion_period: Duration::from_secs(60),
            job_history: 1000,
            departed_worker_retention: Duration::from_secs(600),
            resume_grace: Duration::from_secs(3),
            coalesce_target_bytes: DEFAULT_COALESCE_TARGET_BYTES,
        }
    }
}

impl SchedulerConfig {
    pub(crate) fn speculation_policy(&self) -> SpeculationPolicy {
        SpeculationPolicy {
            multiplier: self.speculation_multiplier,
            min_runtime: self.speculation_min_runtime,
            quantile: self.speculation_quantile,
        }
    }

    pub(crate) fn exclusion_policy(&self) -> ExclusionPolicy {
        ExclusionPolicy {
            after_failures: self.exclude_after_failures,
            window: self.exclusion_window,
            period: self.exclusion_period,
        }
    }
}
