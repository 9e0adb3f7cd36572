//! The worker entry point for users' own binaries: register your functions, then run this
//! process as a Quiver worker with the same flags as `quiver-worker`. The same binary can be
//! the driver too (choose the role from its arguments).
//!
//! Only with the `worker` feature (or `local-cluster`, which includes it).
//!
//! ```no_run
//! use quiver::{FunctionRegistry, ScalarValue};
//! use quiver::arrow::datatypes::DataType;
//!
//! #[tokio::main]
//! async fn main() -> quiver::Result<()> {
//!     let mut functions = FunctionRegistry::new();
//!     functions.register_scalar("double", DataType::Int64, |args| match args {
//!         [ScalarValue::Int64(x)] => Ok(ScalarValue::Int64(2 * x)),
//!         [ScalarValue::Null] => Ok(ScalarValue::Null),
//!         other => Err(format!("double takes one integer, got {other:?}")),
//!     });
//!     // e.g. `my-job worker --coordinator http://host:50050 --slots 4`
//!     let args: Vec<String> = std::env::args().collect();
//!     if args.get(1).map(String::as_str) == Some("worker") {
//!         let flags = std::iter::once(args[0].clone()).chain(args[2..].iter().cloned());
//!         return quiver::worker::run_worker(functions, flags).await;
//!     }
//!     // ... otherwise act as the driver ...
//!     Ok(())
//! }
//! ```

use std::ffi::OsString;
use std::sync::Arc;

use clap::Parser;
use quiver_worker::FunctionRegistry;
use quiver_worker::command_line::{WorkerArgs, run};

use crate::error::{Error, Result};

/// Runs this process as a worker with `functions` until Ctrl-C (stop) or SIGTERM (drain).
/// `args` are `quiver-worker`'s flags, program name first (`--help` lists them).
pub async fn run_worker<I, T>(functions: FunctionRegistry, args: I) -> Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args = WorkerArgs::try_parse_from(args).map_err(|e| Error::Usage(e.to_string()))?;
    run(args, Arc::new(functions))
        .await
        .map_err(|e| Error::Worker(e.to_string()))?;
    Ok(())
}
