//! The model every Quiver process shares: expressions, plans, stages and tasks, the type rules
//! that validate them, and their conversion to and from the wire format.
//!
//! This crate does no I/O and runs nothing: the SDK builds plans with it, the coordinator cuts
//! them into stages with it, and the worker executes what it describes.
//!
//! # Layout
//! - [`ids`] — newtype identifiers (`JobId`, `StageId`, `WorkerId`, `TaskAttempt`).
//! - [`expr`] — scalar expressions, literals, built-in functions and their builders.
//! - [`types`] — the type rules for expressions (coercion of operands, result types).
//! - [`aggregate`] — aggregate functions, their result types and partial-state layout.
//! - [`column_pruning`] — narrows Parquet scans to the columns a plan uses.
//! - [`join`] — join types and strategies, join key typing and the join's output columns.
//! - [`sort`] — sort keys and their order options.
//! - [`plan`] — the plan tree (`PlanNode`), the stage-plan-only reads (`StageRead`), walking
//!   and rewriting trees (`PlanNode::map_children`), schema inference with validation.
//! - [`stage`] — what the coordinator sends a worker: stage outputs, splits, task definitions.
//! - [`limits`] — [`Limits`]: bounds on partitions, tasks, batch sizes and plan size and
//!   depth, checked before any number from the wire sizes anything.
//! - [`proto_conversion`] — `From`/`TryFrom` between the types above and `quiver-proto`.
//! - [`error`] — [`PlanError`].

pub mod aggregate;
pub mod column_pruning;
pub mod error;
pub mod expr;
pub mod ids;
pub mod join;
pub mod limits;
pub mod plan;
pub mod proto_conversion;
pub mod sort;
pub mod stage;
pub mod types;

pub use aggregate::{AggregateExpr, AggregateFunction};
/// Arrow's schema types, re-exported so that crates that only pass schemas around need not
/// depend on arrow themselves.
pub use arrow::datatypes::{Schema, SchemaRef};
pub use error::{PlanError, Result};
pub use expr::{BinaryOp, Expr, ScalarFunction, ScalarValue};
pub use ids::{JobId, StageId, TaskAttempt, WorkerId};
pub use join::{JoinStrategy, JoinType};
pub use limits::Limits;
pub use plan::{
    AggregateMode, CsvOptions, InputFile, PlanNode, ScanNode, SourceFormat, StageRead, union_input,
};
pub use quiver_storage::{StorageOptions, WriteMode};
pub use sort::SortExpr;
pub use stage::{
    FileSplit, MapOutputLocation, ReadGrant, ShuffleInput, Sink, StageOutput, TaskDefinition,
};

/// Rows per batch inside a task unless the job says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 8192;
