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
use quiver_worker::shuffle::map_output_store::MapOutputStore;
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
                .read_bucket(&job, StageId(0), map_task, bucket)
                .unwrap()
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
    store.remove_job(&job, &[]);
    assert!(!dir.path().join("job-1").exists());
}
