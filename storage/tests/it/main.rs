//! The storage layer against a real S3-compatible server process.

mod s3;
