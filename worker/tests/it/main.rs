//! Worker integration tests: readers, operators and shuffle, each against a simply written
//! reference computed without the code under test.

mod aggregate;
mod shuffle;
mod text_reader;
