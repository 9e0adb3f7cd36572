//! SDK integration tests: whole jobs on a `LocalCluster` (loopback gRPC + Flight) and on real
//! `quiver-coordinator` / `quiver-worker` processes, checked against simply written references.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod adversary;
mod bad_input;
mod cluster;
mod corpus;
mod dashboard;
mod deploy_manifests;
mod explain;
mod fault_tolerance;
mod joins;
mod metrics;
mod multi_host;
mod object_store_inputs;
mod operators;
mod output_commit;
mod probes;
mod processes;
mod sorting;
mod spilling;
mod task_attempts;
mod tls;
mod user_functions;
mod wire;
mod wordcount;
mod work_dirs;
