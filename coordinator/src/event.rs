//! [`Event`]: everything that can change the scheduler's state, as plain data;
//! [`Timestamp`], the time that comes in with each event; and [`Outcome`], what handling one
//! gives back (the actions to carry out and the [`Reply`] for whoever reported the event).
//!
//! The gRPC service, the heartbeat monitor and the dispatch of actions observe the world and
//! turn what they see into events; [`crate::scheduler::Scheduler::handle`] is the one place
//! that applies them. An event holds owned domain values only (no channels, no closures, no
//! wire types, no secrets), so that a log of events can later be written down and replayed.

use std::ops::Add;
use std::time::Duration;

use quiver_plan::{JobId, PlanNode, Sink, StageId, TaskAttempt, WorkerId};
use quiver_storage::TaskFile;

use crate::error::Result;
use crate::job::{JobOptions, PlannedFor};
use crate::scheduler::Action;
use crate::worker_registry::{AddressTaken, WorkerLoad};

/// A moment as the scheduler sees it: a monotonic time (since an arbitrary origin: the
/// coordinator's start, or zero in a test) and the wall-clock time then, in milliseconds since
/// the Unix epoch, for display. Durations are measured on the monotonic time only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Timestamp {
    pub monotonic: Duration,
    pub wall_ms: u64,
}

impl Timestamp {
    /// The origin of a virtual clock: monotonic zero, at the Unix epoch (virtual clocks are
    /// for tests: feature `internals`).
    #[cfg(any(test, feature = "internals"))]
    pub const ZERO: Timestamp = Timestamp {
        monotonic: Duration::ZERO,
        wall_ms: 0,
    };

    /// A virtual time, `ms` milliseconds after [`Timestamp::ZERO`].
    #[cfg(any(test, feature = "internals"))]
    pub fn from_millis(ms: u64) -> Self {
        Timestamp::ZERO + Duration::from_millis(ms)
    }

    /// How long after `earlier` this is (zero if it is not after it).
    pub fn since(self, earlier: Timestamp) -> Duration {
        self.monotonic.saturating_sub(earlier.monotonic)
    }

    /// Whether this comes strictly before `other`.
    pub fn is_before(self, other: Timestamp) -> bool {
        self.monotonic < other.monotonic
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    /// Saturating: a duration from configuration or from a worker never overflows.
    fn add(self, d: Duration) -> Timestamp {
        Timestamp {
            monotonic: self.monotonic.saturating_add(d),
            wall_ms: self
                .wall_ms
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

/// How a task attempt ended, as reported by its worker.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskOutcome {
    Success {
        bucket_bytes: Vec<u64>,
        rows_out: u64,
        bytes_out: u64,
        elapsed_ms: u64,
        spilled_bytes: u64,
    },
    Failure {
        message: String,
        retryable: bool,
        /// The map output that could not be fetched.
        fetch_failure: Option<FetchFailure>,
    },
}

/// A map output a reducer could not fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchFailure {
    /// The worker that held it.
    pub worker: WorkerId,
    pub stage: StageId,
    pub map_partition: u32,
}

/// A map output (or collect result) that a registering worker holds, as it listed it: what
/// the attempt that wrote it reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldOutput {
    /// The attempt that wrote it.
    pub attempt: TaskAttempt,
    pub bucket_bytes: Vec<u64>,
    pub rows: u64,
}

/// Something that happened, which the scheduler takes into account.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A worker registered, or registered again (admission checked the request, and that the
    /// id follows from the session key it presented).
    WorkerRegistered {
        worker: WorkerId,
        address: String,
        slots: u32,
        hostname: String,
        /// The user functions it has.
        functions: Vec<String>,
        /// The map outputs it holds (admission bounded the list): a resumed job adopts those
        /// it still needs.
        held_outputs: Vec<HeldOutput>,
        /// The attempts it runs now: a resumed job takes those of its earlier run as its own
        /// running attempts.
        running_attempts: Vec<TaskAttempt>,
    },
    /// A registered worker's heartbeat: how many tasks it runs, and whether it is draining
    /// (shutting down gracefully: it wants no new tasks).
    Heartbeat {
        worker: WorkerId,
        running_tasks: u32,
        /// What it says of its memory and shuffle serving (for people only).
        load: WorkerLoad,
        draining: bool,
    },
    /// A task launch found nothing listening at the worker's address: it is gone.
    WorkerUnreachable { worker: WorkerId },
    /// A driver submitted a job (its id chosen by the caller, its request checked).
    JobSubmitted {
        job: JobId,
        name: String,
        plan: PlanNode,
        sink: Sink,
        options: JobOptions,
        /// Credentials for the job's object store inputs, given to its tasks (never logged;
        /// `Debug` redacts them).
        storage_options: quiver_plan::StorageOptions,
    },
    /// A job the job log holds as accepted and unfinished, resumed by a restarted coordinator
    /// under its id: it runs again, cut into the same stages as before when it had started
    /// (`planned_for`), adopting the map outputs that registering workers still hold and
    /// recomputing the rest (task progress itself is not logged); or — a `write_parquet` job
    /// whose output commit had begun — it finishes that commit with the logged files. Not
    /// checked for user functions (no worker is registered yet).
    JobRecovered {
        job: JobId,
        name: String,
        plan: PlanNode,
        sink: Sink,
        options: JobOptions,
        /// When it was first submitted (wall clock, for display).
        submitted_at_ms: u64,
        /// How many times it was resumed, this time included: its attempts are numbered apart
        /// from those of earlier runs, whose stale reports and files must not be taken for
        /// this run's.
        incarnation: u32,
        /// The files its output commit keeps, when the commit had begun.
        commit: Option<Vec<TaskFile>>,
        /// The storage options the job log kept: those that locate its stores, no
        /// credentials.
        storage_locations: quiver_plan::StorageOptions,
        /// The cluster shape it was cut into stages for, when it had started: it is cut the
        /// same way again, so that the outputs that survived can be adopted.
        planned_for: Option<PlannedFor>,
    },
    /// A client cancelled a job.
    JobCancelled { job: JobId },
    /// The driver fetched a collect job's results: workers may delete them.
    ResultsReleased { job: JobId },
    /// A task attempt ended on a worker (or could not be launched there: a failure).
    TaskFinished {
        worker: WorkerId,
        attempt: TaskAttempt,
        outcome: TaskOutcome,
    },
    /// A `write_parquet` job's output commit ended (carried out after
    /// [`Action::CommitOutput`]): `error` says why it failed.
    OutputCommitted { job: JobId, error: Option<String> },
    /// Time passed: the scheduler makes its time-based decisions (silent workers are lost,
    /// jobs that waited too long for a worker fail, stragglers get backups).
    Tick,
}

/// The answer to an event, for whoever reported it.
#[derive(Debug)]
pub enum Reply {
    /// The event needs no answer ([`Event::WorkerUnreachable`], [`Event::Tick`]).
    None,
    /// [`Event::WorkerRegistered`]: refused when a live worker with another id holds the
    /// address.
    Registered(std::result::Result<(), AddressTaken>),
    /// [`Event::Heartbeat`]: whether the worker is registered (else it must register again),
    /// and whether a draining worker may exit now.
    Heartbeat { registered: bool, release: bool },
    /// [`Event::JobSubmitted`]: refused when the plan is invalid or no worker has its
    /// functions.
    Submitted(Result<()>),
    /// [`Event::JobRecovered`]: refused when the logged plan is no longer valid.
    Recovered(Result<()>),
    /// [`Event::JobCancelled`]: whether the job was still unfinished.
    Cancelled(Result<bool>),
    /// [`Event::ResultsReleased`].
    Released(Result<()>),
    /// [`Event::TaskFinished`]: whether the attempt was one the coordinator waited for (a
    /// stale attempt's output should be deleted).
    TaskReported { expected: bool },
}

/// What handling one event gave.
#[derive(Debug)]
pub struct Outcome {
    pub actions: Vec<Action>,
    pub reply: Reply,
    /// Whether jobs may have changed (job watchers should look).
    pub changed: bool,
    /// What the job log should record, in order (a log, when there is one, writes them).
    pub records: Vec<JobRecord>,
}

/// A change to a job that a coordinator with a job log makes durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobRecord {
    /// The job was accepted: its definition.
    Submitted(JobId),
    /// The job ended: its final state.
    Finished(JobId),
    /// The job's output commit began: the files it keeps. Written (and fsynced) before the
    /// commit moves any file, so that a restarted coordinator can finish it.
    CommitStarted(JobId),
    /// The job was cut into stages: the cluster shape it was planned for.
    Started(JobId),
}
