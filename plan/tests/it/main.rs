//! Integration tests of the plan model's wire boundary: depth limits against the real protobuf
//! decoder, property-based fuzzing of every decoder and validator, and the stage-plan-only
//! nodes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod decoding_fuzz;
mod depth_limits;
mod stage_plans;
