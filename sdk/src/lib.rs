//! # Quiver
//!
//! Quiver is a distributed batch compute framework: build a [`Dataset`], submit it to a
//! coordinator, and workers run it over Apache Arrow batches, shuffling data directly between
//! themselves.
//!
//! ```no_run
//! use quiver::prelude::*;
//!
//! #[tokio::main]
//! async fn main() -> quiver::Result<()> {
//!     // The token comes from QUIVER_TOKEN_FILE (or QUIVER_TOKEN); see `ClientOptions`.
//!     let client = Client::connect("http://127.0.0.1:50050").await?;
//!     let counts = Dataset::read_text(&["corpus.txt"])?
//!         .select([words(col("line")).alias("word")])?
//!         .explode("word")?
//!         .select([lower(col("word")).alias("word")])?
//!         .group_by(["word"])
//!         .agg([count().alias("count")])?;
//!     for batch in counts.collect(&client).await? {
//!         println!("{} rows", batch.num_rows());
//!     }
//!     Ok(())
//! }
//! ```
//!
//! # Features
//! By default the SDK is a client: it builds plans, talks to a coordinator over gRPC and
//! fetches results from workers over Arrow Flight, and links neither the worker nor the
//! coordinator. Two optional features add them:
//! - `local-cluster` — `LocalCluster`, a coordinator and workers inside the driver's process
//!   (`LocalCluster::start(2).await?.client().await?` instead of `Client::connect`), for
//!   tests, examples and single-machine runs. It includes `worker`.
//! - `worker` — `quiver::worker::run_worker` and `FunctionRegistry`: a binary of your own
//!   that runs as a worker with your functions.
//!
//! # Layout
//! - [`dataset`] — [`Dataset`] and [`GroupedDataset`], the plan-building API.
//! - [`client`] — [`Client`], the connection to a coordinator.
//! - [`client_options`] — [`ClientOptions`] and [`ClientArgs`]: the token and TLS settings a
//!   driver connects with.
//! - [`job_handle`] — [`JobHandle`], [`JobProgress`]: following, waiting, fetching results.
//! - `local_cluster` — `LocalCluster`, a whole cluster in this process (feature
//!   `local-cluster`).
//! - `worker` — the worker entry point for binaries with their own functions (feature
//!   `worker`).
//! - [`error`] — [`Error`].
//!
//! Listing a source's files and reading their schemas when a dataset is built is done here, on
//! the driver (`source_listing`, private); fetching results uses `quiver-net`'s Flight client.

#![warn(missing_docs)]

pub mod client;
pub mod client_options;
pub mod dataset;
pub mod error;
pub mod job_handle;
#[cfg(feature = "local-cluster")]
pub mod local_cluster;
#[cfg(feature = "progress")]
mod progress_bar;
mod source_listing;
mod sources;
pub mod task_attempt;
#[cfg(feature = "worker")]
pub mod worker;

pub use arrow;
pub use client::{Client, Explanation, JobOptions};
pub use client_options::{ClientArgs, ClientOptions};
pub use dataset::{Dataset, GroupedDataset, JoinOn, ParquetWrite};
pub use error::{Error, Result};
pub use job_handle::{JobHandle, JobProgress, JobState, StageProgress, StageState};
#[cfg(feature = "local-cluster")]
pub use local_cluster::{LocalCluster, LocalClusterBuilder};
pub use quiver_plan::{
    CsvOptions, Expr, JoinStrategy, JoinType, ScalarValue, Sink, SortExpr, StageOutput, WriteMode,
};
/// Per-job object store credentials and endpoints (see [`Sources::with_storage`] and
/// [`Client::with_storage_options`]); `Debug` shows no secret.
pub use quiver_storage::StorageOptions;
#[cfg(feature = "worker")]
pub use quiver_worker::FunctionRegistry;
pub use source_listing::InputError;
pub use sources::Sources;
pub use task_attempt::{TaskAttempt, TaskAttemptState};

/// Expression and aggregate builders.
pub mod functions {
    pub use quiver_plan::aggregate::{count, count_distinct, count_of, max, mean, min, sum};
    pub use quiver_plan::expr::{
        CaseBuilder, coalesce, col, contains, ends_with, length, lit, lower, month, regexp_like,
        starts_with, substring, upper, when, words, year,
    };
    pub use quiver_plan::sort::{asc, desc};
}

/// Everything a job usually needs: `use quiver::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "worker")]
    pub use crate::FunctionRegistry;
    #[cfg(feature = "local-cluster")]
    pub use crate::LocalCluster;
    pub use crate::functions::*;
    pub use crate::{
        Client, Dataset, Expr, JobHandle, JoinOn, JoinStrategy, JoinType, ScalarValue, Sink,
        SortExpr, WriteMode,
    };
    pub use arrow::record_batch::RecordBatch;
}
