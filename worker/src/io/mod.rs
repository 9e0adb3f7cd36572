//! File formats: reading task input splits (local files or object store URLs, see
//! [`input_storage`]) and writing Parquet output. (Listing inputs and
//! inferring their schemas is the driver's, in the SDK.)

pub mod csv_reader;
pub mod input_storage;
pub mod parquet_reader;
pub mod parquet_writer;
pub mod text_reader;
