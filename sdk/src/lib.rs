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
//!     let cluster = LocalCluster::start(2).await?;
//!     let client = cluster.client().await?;
//!     let counts = Dataset::read_text(&["corpus.txt"])?
//!         .select([words(col("line")).alias("word")])?
//!         .explode("word")?
//!         .select([lower(col("word")).alias("word")])?
//!         .group_by(["word"])
//!         .agg([count().alias("count")])?;
//!     for batch in counts.collect(&client).await? {
//!         println!("{} rows", batch.num_rows());
//!     }
//!     cluster.shutdown().await;
//!     Ok(())
//! }
//! ```
//!
//! The same job runs unchanged on a real cluster: `Client::connect("http://host:50050")`
//! (with the token in `QUIVER_TOKEN_FILE`, or [`Client::connect_with`] and
//! [`ClientOptions`]; see `docs/security.md`).
//!
//! # Layout
//! - [`dataset`] — [`Dataset`] and [`GroupedDataset`], the plan-building API.
//! - [`client`] — [`Client`], the connection to a coordinator.
//! - [`client_options`] — [`ClientOptions`] and [`ClientArgs`]: the token and TLS settings a
//!   driver connects with.
//! - [`job_handle`] — [`JobHandle`], [`JobProgress`]: following, waiting, fetching results.
//! - [`local_cluster`] — [`LocalCluster`], a whole cluster in this process.
//! - [`worker`] — the worker entry point for binaries with their own functions.
//! - [`error`] — [`Error`].

#![warn(missing_docs)]

pub mod client;
pub mod client_options;
pub mod dataset;
pub mod error;
pub mod job_handle;
pub mod local_cluster;
pub mod worker;

pub use arrow;
pub use client::{Client, JobOptions};
pub use client_options::{ClientArgs, ClientOptions};
pub use dataset::{Dataset, GroupedDataset, JoinOn};
pub use error::{Error, Result};
pub use job_handle::{JobHandle, JobProgress, JobState, StageProgress, StageState};
pub use local_cluster::{LocalCluster, LocalClusterBuilder};
pub use quiver_plan::{
    CsvOptions, Expr, JoinStrategy, JoinType, ScalarValue, Sink, SortExpr, StageOutput,
};
pub use quiver_worker::FunctionRegistry;

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
    pub use crate::functions::*;
    pub use crate::{
        Client, Dataset, Expr, FunctionRegistry, JobHandle, JoinOn, JoinStrategy, JoinType,
        LocalCluster, ScalarValue, Sink, SortExpr,
    };
    pub use arrow::record_batch::RecordBatch;
}
