//! File formats: reading task input splits, listing inputs and inferring their schemas (used by
//! the SDK when a dataset is built), and writing Parquet output.

pub mod csv_reader;
pub mod parquet_reader;
pub mod parquet_writer;
pub mod source_listing;
pub mod text_reader;
