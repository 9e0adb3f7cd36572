//! File formats: reading task input splits and writing Parquet output. (Listing inputs and
//! inferring their schemas is the driver's, in the SDK.)

pub mod csv_reader;
pub mod parquet_reader;
pub mod parquet_writer;
pub mod text_reader;
