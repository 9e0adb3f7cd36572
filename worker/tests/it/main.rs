//! Worker integration tests: readers, operators and shuffle, each against a simply written
//! reference computed without the code under test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod aggregate;
mod cancellation;
mod dictionary_keys;
mod expressions;
mod object_store_reads;
mod parquet_checksums;
mod shuffle;
mod spilling;
mod text_reader;
