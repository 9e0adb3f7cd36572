//! What the coordinator sends a worker: a stage's output, a task's input splits and shuffle
//! inputs, and the [`TaskDefinition`] that bundles them.

use crate::expr::Expr;
use crate::ids::{StageId, TaskAttempt, WorkerId};
use crate::plan::PlanNode;
use crate::sort::SortExpr;
use quiver_storage::WriteMode;

/// Where a job's final rows go, as the user asked.
#[derive(Clone, Debug, PartialEq)]
pub enum Sink {
    /// Stream the rows back to the driver.
    Collect,
    /// Write Parquet files (one per final partition) into a directory (a local path or an
    /// object store URL), through the job-level output commit.
    WriteParquet { directory: String, mode: WriteMode },
}

/// Where a stage's rows go.
#[derive(Clone, Debug, PartialEq)]
pub enum StageOutput {
    /// Hash-partition rows by `keys` into `partitions` buckets for a downstream stage.
    HashShuffle { keys: Vec<Expr>, partitions: u32 },
    /// Range-partition rows by `order` into `partitions` buckets, in order, with boundaries
    /// computed from the sample that stage `sample` wrote (every task reads all of it and
    /// computes the same boundaries).
    RangeShuffle {
        order: Vec<SortExpr>,
        partitions: u32,
        sample: StageId,
    },
    /// Keep the rows on the worker for the driver to fetch.
    Collect,
    /// Write one Parquet file per task under `directory`'s `_temporary/<job>/`, for the
    /// job-level output commit to make visible.
    WriteParquet { directory: String },
}

impl StageOutput {
    /// How many buckets each task of the stage writes.
    pub fn buckets(&self) -> u32 {
        match self {
            StageOutput::HashShuffle { partitions, .. }
            | StageOutput::RangeShuffle { partitions, .. } => *partitions,
            StageOutput::Collect | StageOutput::WriteParquet { .. } => 1,
        }
    }

    /// A one-line description.
    pub fn label(&self) -> String {
        match self {
            StageOutput::HashShuffle { keys, partitions } => format!(
                "hash shuffle by [{}] into {partitions}",
                keys.iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            StageOutput::RangeShuffle {
                order, partitions, ..
            } => format!(
                "range shuffle by [{}] into {partitions}",
                order
                    .iter()
                    .map(|o| o.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            StageOutput::Collect => "collect".into(),
            StageOutput::WriteParquet { directory } => format!("write parquet to {directory}"),
        }
    }
}

impl From<Sink> for StageOutput {
    fn from(sink: Sink) -> Self {
        match sink {
            Sink::Collect => StageOutput::Collect,
            Sink::WriteParquet { directory, .. } => StageOutput::WriteParquet { directory },
        }
    }
}

/// One piece of a source for one task: a byte range of a text or CSV file, or some row groups
/// of a Parquet file.
#[derive(Clone, Debug, PartialEq)]
pub struct FileSplit {
    pub path: String,
    pub start: u64,
    pub end: u64,
    pub row_groups: Vec<u32>,
}

/// Where one map task's output lives.
#[derive(Clone, Debug, PartialEq)]
pub struct MapOutputLocation {
    pub map_partition: u32,
    pub worker: WorkerId,
    /// The worker's endpoint, e.g. `http://127.0.0.1:41234`.
    pub address: String,
}

/// Every map output of one upstream stage.
#[derive(Clone, Debug, PartialEq)]
pub struct ShuffleInput {
    pub stage: StageId,
    pub locations: Vec<MapOutputLocation>,
    /// The coordinator's permission to read them; the scheduler leaves it empty and the
    /// coordinator signs it in just before the task is sent.
    pub grant: Option<ReadGrant>,
}

/// A coordinator-signed permission to read the outputs of one stage of one job until
/// `expires_at_ms` (Unix milliseconds); workers check the signature before serving data.
#[derive(Clone, PartialEq, Eq)]
pub struct ReadGrant {
    pub job: String,
    pub stage: StageId,
    pub expires_at_ms: u64,
    pub signature: Vec<u8>,
}

impl std::fmt::Debug for ReadGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ReadGrant(job {} stage {} until {})",
            self.job, self.stage, self.expires_at_ms
        )
    }
}

/// Everything a worker needs to run one task attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskDefinition {
    pub attempt: TaskAttempt,
    /// The stage's plan; its leaves are scans (reading `splits`) or shuffle reads.
    pub plan: PlanNode,
    pub output: StageOutput,
    pub splits: Vec<FileSplit>,
    pub inputs: Vec<ShuffleInput>,
    pub batch_size: usize,
    /// Credentials and endpoints for the job's object store inputs (`Debug` redacts secrets).
    pub storage_options: quiver_storage::StorageOptions,
    /// The buckets its shuffle reads take: a run of adjacent ones for a task of a stage whose
    /// small partitions adaptive execution coalesced; `None`: its own partition's.
    pub shuffle_buckets: Option<std::ops::Range<u32>>,
}

impl TaskDefinition {
    /// The buckets this task's shuffle reads take ([`TaskDefinition::shuffle_buckets`], or
    /// its own partition's).
    pub fn read_buckets(&self) -> std::ops::Range<u32> {
        self.shuffle_buckets
            .clone()
            .unwrap_or_else(|| self.attempt.partition..self.attempt.partition.saturating_add(1))
    }
}
