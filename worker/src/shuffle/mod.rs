//! Shuffle: partitioning map output by key hash or sort-key range, storing it as one Arrow IPC data file plus an
//! index per map task, serving buckets to other workers over Arrow Flight (as stored, not re-encoded), and reading a reduce
//! task's bucket from every map output (locally when it is on this worker).

pub mod flight_server;
pub mod hash_partitioner;
pub mod ipc_frames;
pub mod map_output_store;
pub mod range_partitioner;
pub mod shuffle_reader;
pub mod shuffle_writer;
