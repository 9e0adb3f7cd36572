//! Pieces the benchmark programs share.
//!
//! - [`process_cluster`] — a coordinator and workers as child processes of the benchmark
//!   binary itself, re-executed in coordinator or worker mode.

pub mod process_cluster;
