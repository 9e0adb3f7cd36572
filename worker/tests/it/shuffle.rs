//! Shuffle write then read: every row lands in exactly one bucket, rows with the same key in
//! the same bucket, and reading all buckets back gives the input multiset.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use arrow::record_batch::RecordBatch;
use quiver_plan::expr::col;
use quiver_plan::{JobId, StageId};
use quiver_worker::memory::memory_pool::MemoryPool;
use quiver_worker::memory::spill::SpillDir;
use quiver_worker::shuffle::map_output_store::{MapOutputStore, READ_RUN_BYTES, decode_ipc_stream};
use quiver_worker::shuffle::shuffle_writer::{BucketRouting, ShuffleWriter};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[test]
fn buckets_partition_rows_by_key() {
    partition_rows_by_key(0);
}

/// Rows of about 100 bytes: the writer holds the batches and copies each bucket once, as it
/// writes it, instead of copying each batch's rows into their buckets as they arrive.
#[test]
fn buckets_of_wide_rows_partition_rows_by_key() {
    partition_rows_by_key(90);
}

fn partition_rows_by_key(pad: usize) {
    let mut rng = StdRng::seed_from_u64(5);
    let schema = Arc::new(Schema::new(vec![
        Field::new("word", DataType::Utf8, true),
        Field::new("n", DataType::Int64, false),
    ]));
    let dir = tempfile::tempdir().unwrap();
    let store = MapOutputStore::new(dir.path().to_path_buf());
    let pool = MemoryPool::unchecked(8 << 10);
    let spill = Arc::new(SpillDir::new(dir.path().join("spill"), "map".into()));
    let job = JobId("job-1".into());
    let buckets = 7;
    let mut reference: BTreeMap<(Option<String>, i64), usize> = BTreeMap::new();
    for map_task in 0..3u32 {
        let routing =
            BucketRouting::hash(&schema, vec![col("word")], buckets, Default::default()).unwrap();
        // A budget of a few batches: the writer spills and its buckets hold several streams.
        let mut writer = ShuffleWriter::new(
            schema.clone(),
            routing,
            buckets,
            64,
            pool.task().reservation(),
            spill.clone(),
        )
        .unwrap();
        for _ in 0..5 {
            let rows = rng.random_range(0..400);
            let words: Vec<Option<String>> = (0..rows)
                .map(|_| {
                    (rng.random_range(0..30) > 0)
                        .then(|| format!("w{}{}", rng.random_range(0..100), "x".repeat(pad)))
                })
                .collect();
            let ns: Vec<i64> = (0..rows).map(|_| rng.random_range(0..5)).collect();
            for (w, n) in words.iter().zip(&ns) {
                *reference.entry((w.clone(), *n)).or_default() += 1;
            }
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(words)),
                    Arc::new(Int64Array::from(ns)),
                ],
            )
            .unwrap();
            writer.push(batch).unwrap();
        }
        let attempt = quiver_plan::TaskAttempt {
            job: job.clone(),
            stage: StageId(0),
            partition: map_task,
            attempt: 0,
        };
        let (data, index) = store.paths_for(&attempt);
        let out = writer.finish(data, index.clone()).unwrap();
        assert_eq!(
            std::fs::read(&index).unwrap().len(),
            8 * (buckets as usize + 1)
        );
        store.register(&attempt, out);
    }
    // What the worker would list when it registers: each output, its attempt, and bucket
    // sizes that add up to its data file.
    let mut held = store.held();
    held.sort_by_key(|h| h.attempt.partition);
    assert_eq!(held.len(), 3);
    for (p, h) in held.iter().enumerate() {
        let attempt = quiver_plan::TaskAttempt {
            job: job.clone(),
            stage: StageId(0),
            partition: p as u32,
            attempt: 0,
        };
        assert_eq!(h.attempt, attempt);
        assert_eq!(h.bucket_bytes.len(), buckets as usize);
        let file = std::fs::metadata(store.paths_for(&attempt).0)
            .unwrap()
            .len();
        assert_eq!(h.bucket_bytes.iter().sum::<u64>(), file);
    }
    assert!(
        spill.spilled_bytes() > 0,
        "the 8 KiB budget made the writers spill"
    );
    let mut got: BTreeMap<(Option<String>, i64), usize> = BTreeMap::new();
    let mut bucket_of_key: HashMap<Option<String>, u32> = HashMap::new();
    for bucket in 0..buckets {
        for map_task in 0..3 {
            for b in store
                .open_runs(
                    &job,
                    StageId(0),
                    map_task,
                    bucket..bucket + 1,
                    READ_RUN_BYTES,
                )
                .unwrap()
                .flat_map(|run| decode_ipc_stream(run.unwrap()).unwrap())
            {
                let w = b.column(0).as_string::<i32>();
                let n = b.column(1).as_primitive::<Int64Type>();
                for r in 0..b.num_rows() {
                    let key = w.is_valid(r).then(|| w.value(r).to_string());
                    let prev = bucket_of_key.insert(key.clone(), bucket);
                    assert!(
                        prev.is_none_or(|p| p == bucket),
                        "key {key:?} in two buckets"
                    );
                    *got.entry((key, n.value(r))).or_default() += 1;
                }
            }
        }
    }
    assert_eq!(got, reference);
    assert!(
        bucket_of_key
            .values()
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 1
    );
    // A run of buckets, read whole or cut into runs of a few hundred bytes, is the same rows
    // as its buckets read one by one, in bucket order.
    for map_task in 0..3 {
        let one_by_one: Vec<_> = (2..6)
            .flat_map(|b| read(&store, &job, map_task, b..b + 1, READ_RUN_BYTES).1)
            .collect();
        let (runs, whole) = read(&store, &job, map_task, 2..6, READ_RUN_BYTES);
        assert_eq!((runs, &whole), (1, &one_by_one));
        let (runs, cut) = read(&store, &job, map_task, 2..6, 300);
        assert!(runs > 1, "300-byte runs cut 4 buckets: {runs}");
        assert_eq!(cut, one_by_one);
    }
    // Buckets the output does not have are refused, naming what was asked for.
    let err = store
        .open_runs(&job, StageId(0), 0, 5..buckets + 1, READ_RUN_BYTES)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("buckets 5..8") && err.contains("buckets are 0..7"),
        "{err}"
    );
    // Runs opened before a later attempt replaces the output, and the earlier attempt's files
    // are deleted, are still read whole from the earlier attempt.
    let before = read(&store, &job, 1, 0..buckets, 300).1;
    let runs = store
        .open_runs(&job, StageId(0), 1, 0..buckets, 300)
        .unwrap();
    let first = quiver_plan::TaskAttempt {
        job: job.clone(),
        stage: StageId(0),
        partition: 1,
        attempt: 0,
    };
    let later = quiver_plan::TaskAttempt {
        attempt: 1,
        ..first.clone()
    };
    let (data, index) = store.paths_for(&later);
    let mut writer = ShuffleWriter::new(
        schema.clone(),
        BucketRouting::hash(&schema, vec![col("word")], buckets, Default::default()).unwrap(),
        buckets,
        64,
        pool.task().reservation(),
        spill.clone(),
    )
    .unwrap();
    writer
        .push(
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(vec!["later"])),
                    Arc::new(Int64Array::from(vec![99])),
                ],
            )
            .unwrap(),
        )
        .unwrap();
    store.register(&later, writer.finish(data, index).unwrap());
    store.remove_attempt(&first);
    let mut during = Vec::new();
    for run in runs {
        during.extend(rows_of(decode_ipc_stream(run.unwrap()).unwrap()));
    }
    assert_eq!(during, before);
    assert_eq!(
        read(&store, &job, 1, 0..buckets, 300).1,
        vec![(Some("later".to_string()), 99)]
    );
    store.remove_job(&job, &[]);
    assert!(!dir.path().join("job-1").exists());
}

type Row = (Option<String>, i64);

fn rows_of(batches: Vec<RecordBatch>) -> Vec<Row> {
    let mut rows = Vec::new();
    for b in batches {
        let w = b.column(0).as_string::<i32>();
        let n = b.column(1).as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            rows.push((w.is_valid(r).then(|| w.value(r).to_string()), n.value(r)));
        }
    }
    rows
}

/// Buckets `buckets` of a map output, read in runs of at most `run_bytes`: how many runs, and
/// the rows in the order read.
fn read(
    store: &MapOutputStore,
    job: &JobId,
    map_task: u32,
    buckets: std::ops::Range<u32>,
    run_bytes: u64,
) -> (usize, Vec<Row>) {
    let mut runs = 0;
    let mut rows = Vec::new();
    for run in store
        .open_runs(job, StageId(0), map_task, buckets, run_bytes)
        .unwrap()
    {
        runs += 1;
        rows.extend(rows_of(decode_ipc_stream(run.unwrap()).unwrap()));
    }
    (runs, rows)
}

/// Wide rows are stored in batches of at most about `MAX_STORED_BATCH_BYTES` (they are served
/// as stored, one Flight message per batch), whether a bucket keeps its batches as they came
/// (one bucket) or gathers its rows (several), and read back whole and in order.
#[test]
fn wide_rows_are_stored_in_bounded_batches() {
    use bytes::Bytes;
    use quiver_worker::shuffle::ipc_frames::FlightFramer;
    use quiver_worker::shuffle::shuffle_writer::MAX_STORED_BATCH_BYTES;

    let schema = Arc::new(Schema::new(vec![
        Field::new("word", DataType::Utf8, true),
        Field::new("n", DataType::Int64, false),
    ]));
    // 3000 rows of 10 KiB: about 30 MiB in one batch.
    let words: Vec<String> = (0..3000).map(|i| format!("{i:05}").repeat(2048)).collect();
    let ns: Vec<i64> = (0..3000).collect();
    let expected: Vec<Row> = words
        .iter()
        .cloned()
        .map(Some)
        .zip(ns.iter().copied())
        .collect();
    for buckets in [1u32, 2] {
        let dir = tempfile::tempdir().unwrap();
        let store = MapOutputStore::new(dir.path().to_path_buf());
        let pool = MemoryPool::unchecked(1 << 30);
        let spill = Arc::new(SpillDir::new(dir.path().join("spill"), "map".into()));
        let job = JobId("job-wide".into());
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(words.clone())),
                Arc::new(Int64Array::from(ns.clone())),
            ],
        )
        .unwrap();
        let routing =
            BucketRouting::hash(&schema, vec![col("n")], buckets, Default::default()).unwrap();
        let mut writer = ShuffleWriter::new(
            schema.clone(),
            routing,
            buckets,
            8192,
            pool.task().reservation(),
            spill,
        )
        .unwrap();
        writer.push(batch).unwrap();
        let attempt = quiver_plan::TaskAttempt {
            job: job.clone(),
            stage: StageId(0),
            partition: 0,
            attempt: 0,
        };
        let (data, index) = store.paths_for(&attempt);
        store.register(&attempt, writer.finish(data, index).unwrap());
        let mut framer = FlightFramer::default();
        let mut stored_batches = 0;
        for run in store
            .open_runs(&job, StageId(0), 0, 0..buckets, READ_RUN_BYTES)
            .unwrap()
        {
            for frame in framer.frames(Bytes::from(run.unwrap())).unwrap() {
                assert!(
                    frame.data_body.len() <= MAX_STORED_BATCH_BYTES + (64 << 10),
                    "a stored batch of {} bytes",
                    frame.data_body.len()
                );
                stored_batches += usize::from(!frame.data_body.is_empty());
            }
        }
        assert!(stored_batches >= 4, "30 MiB in {stored_batches} batches");
        let mut rows = Vec::new();
        for b in 0..buckets {
            let bucket = read(&store, &job, 0, b..b + 1, READ_RUN_BYTES).1;
            assert!(bucket.windows(2).all(|w| w[0].1 < w[1].1), "rows in order");
            rows.extend(bucket);
        }
        rows.sort_by_key(|r| r.1);
        assert_eq!(rows, expected, "{buckets} buckets");
    }
}
