//! Integration tests of the plan model's wire boundary: depth limits against the real protobuf
//! decoder, and property-based fuzzing of every decoder and validator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod decoding_fuzz;
mod depth_limits;
