//! Criterion micro-benchmarks of the worker's hot paths, each on data shaped like the suite's
//! workloads: the words tokenizer (word count), hash aggregation (word count's and the join's
//! group-bys), hash partitioning for a shuffle, Arrow IPC write and read of shuffle buckets,
//! sort (terasort records) and the hash join's build and probe.
//!
//! `cargo bench -p quiver-benches --bench micro` (add a filter such as `-- sort` for one group).
//! Figures are throughputs (bytes/s or rows/s), so they compare across changes on one
//! machine; the suite (`--bin suite`) is where end-to-end speed is measured.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use quiver_examples::jobs::{terasort, tpch};
use quiver_plan::aggregate::{count, sum};
use quiver_plan::expr::col;
use quiver_plan::{
    AggregateExpr, AggregateMode, Expr, JoinType, PlanNode, SortExpr, StageId, StageRead,
};
use quiver_worker::expr::text_functions::{lower, words};
use quiver_worker::memory::memory_pool::{MemoryPool, MemoryReservation};
use quiver_worker::memory::spill::SpillDir;
use quiver_worker::operators::hash_aggregate::HashAggregate;
use quiver_worker::operators::hash_join::{HashJoinStream, JoinInput, JoinSpec};
use quiver_worker::operators::sort::SortBuffer;
use quiver_worker::shuffle::hash_partitioner::HashPartitioner;
use quiver_worker::shuffle::map_output_store::decode_ipc_stream;
use quiver_worker::shuffle::shuffle_writer::{BucketRouting, ShuffleWriter};

/// Rows of the generated batches (a few of the suite's 64k-row batches).
const ROWS: usize = 1 << 20;
/// Buckets of a shuffle, as a 2-worker cluster's default shuffle has.
const BUCKETS: u32 = 16;
/// Rows per output batch, the workers' default.
const BATCH_SIZE: usize = 8192;

/// An unlimited budget and a scratch spill directory: these benchmarks measure the in-memory
/// paths.
struct Scratch {
    pool: Arc<MemoryPool>,
    spill: Arc<SpillDir>,
    _dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        Scratch {
            pool: MemoryPool::unchecked(usize::MAX / 4),
            spill: Arc::new(SpillDir::new(dir.path().to_path_buf(), "micro".into())),
            _dir: dir,
        }
    }

    fn memory(&self) -> MemoryReservation {
        self.pool.task().reservation()
    }
}

/// About 16 MiB of the suite's generated text, one line per row.
fn text_lines() -> StringArray {
    let dir = tempfile::tempdir().expect("temporary directory");
    let files = quiver_examples::generate_corpus(dir.path(), 16 << 20, 1, 42, false)
        .expect("generate text");
    let text = std::fs::read_to_string(&files[0]).expect("read generated text");
    StringArray::from_iter_values(text.lines())
}

/// The lowercased words of `lines`, as the word count job groups them.
fn word_column(lines: &StringArray) -> ArrayRef {
    let lists = words(&(Arc::new(lines.clone()) as ArrayRef)).expect("words");
    lower(lists.as_list::<i32>().values()).expect("lower")
}

/// `batch` cut into slices of at most `rows` rows, as a source hands them on.
fn slices(batch: &RecordBatch, rows: usize) -> Vec<RecordBatch> {
    (0..batch.num_rows())
        .step_by(rows)
        .map(|i| batch.slice(i, rows.min(batch.num_rows() - i)))
        .collect()
}

fn one_column(name: &str, array: ArrayRef) -> RecordBatch {
    let field = Field::new(name, array.data_type().clone(), true);
    RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![array]).expect("batch")
}

/// `ROWS` line items, as the join and Q1 workloads read them.
fn lineitems() -> RecordBatch {
    tpch::lineitems(0, ROWS, ROWS as u64 / 4, 42)
}

fn quick(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
}

fn tokenizer(c: &mut Criterion) {
    let lines: ArrayRef = Arc::new(text_lines());
    let bytes = lines.as_string::<i32>().values().len() as u64;
    let mut group = c.benchmark_group("words_tokenizer");
    quick(&mut group);
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("words", |b| {
        b.iter(|| words(black_box(&lines)).expect("words"))
    });
    group.finish();
}

/// One partial aggregation of `batches` by `keys`, drained.
fn aggregate_once(
    scratch: &Scratch,
    batches: &[RecordBatch],
    keys: Vec<Expr>,
    aggregates: Vec<AggregateExpr>,
) -> usize {
    let schema = batches[0].schema();
    let node = PlanNode::Aggregate {
        input: Box::new(PlanNode::StageRead(StageRead::Shuffle {
            stage: StageId(0),
            schema: schema.clone(),
        })),
        keys: keys.clone(),
        aggregates: aggregates.clone(),
        mode: AggregateMode::Partial,
        filter: None,
    };
    let mut aggregate = HashAggregate::new(
        &schema,
        keys,
        aggregates,
        AggregateMode::Partial,
        node.schema().expect("aggregate schema"),
        Arc::default(),
        scratch.memory(),
        scratch.spill.clone(),
    )
    .expect("aggregate");
    let mut rows = 0;
    for b in batches {
        rows += aggregate.push(b).expect("push").len();
    }
    for out in aggregate.finish(BATCH_SIZE).expect("finish") {
        rows += out.expect("output").num_rows();
    }
    rows
}

fn hash_aggregation(c: &mut Criterion) {
    let scratch = Scratch::new();
    let word_batch = one_column("word", word_column(&text_lines()));
    let word_batches = slices(&word_batch, BATCH_SIZE);
    // Revenue per customer, the join workload's group-by: 600k distinct Int64 keys.
    let customers = Int64Array::from_iter_values((0..ROWS as i64).map(|i| (i * 7919) % 600_000));
    let revenue = Float64Array::from_iter_values((0..ROWS).map(|i| i as f64 * 0.25));
    let customer_batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("customer", DataType::Int64, false),
            Field::new("revenue", DataType::Float64, false),
        ])),
        vec![Arc::new(customers), Arc::new(revenue)],
    )
    .expect("batch");
    let customer_batches = slices(&customer_batch, BATCH_SIZE);

    // TPC-H Q1's group-by: two one-letter string keys, four groups.
    let item_batches = slices(&lineitems(), BATCH_SIZE);

    let mut group = c.benchmark_group("hash_aggregate");
    quick(&mut group);
    group.throughput(Throughput::Elements(word_batch.num_rows() as u64));
    group.bench_function("utf8_words_count", |b| {
        b.iter(|| {
            aggregate_once(
                &scratch,
                &word_batches,
                vec![col("word")],
                vec![count().alias("count")],
            )
        })
    });
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("q1_two_utf8_keys_4_sums", |b| {
        b.iter(|| {
            aggregate_once(
                &scratch,
                &item_batches,
                vec![col("l_returnflag"), col("l_linestatus")],
                vec![
                    sum(col("l_quantity")).alias("q"),
                    sum(col("l_extendedprice")).alias("p"),
                    sum(col("l_discount")).alias("d"),
                    count().alias("n"),
                ],
            )
        })
    });
    group.bench_function("int64_600k_keys_sum", |b| {
        b.iter(|| {
            aggregate_once(
                &scratch,
                &customer_batches,
                vec![col("customer")],
                vec![sum(col("revenue")).alias("revenue")],
            )
        })
    });
    group.finish();
}

fn hash_partitioning(c: &mut Criterion) {
    let items = lineitems();
    let words = word_column(&text_lines());
    let mut group = c.benchmark_group("hash_partition");
    quick(&mut group);
    let mut out = Vec::new();
    for (name, key) in [("int64", items.column(0).clone()), ("utf8_words", words)] {
        let mut partitioner =
            HashPartitioner::new(BUCKETS, &[key.data_type().clone()]).expect("partitioner");
        group.throughput(Throughput::Elements(key.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                partitioner
                    .partition(std::slice::from_ref(&key), key.len(), &mut out)
                    .expect("partition");
                black_box(&out);
            })
        });
    }
    group.finish();
}

/// Writes `batches` through a hash-routed shuffle writer into `dir`; returns the data file.
fn write_shuffle(scratch: &Scratch, batches: &[RecordBatch], dir: &Path) -> std::path::PathBuf {
    let schema = batches[0].schema();
    let routing = BucketRouting::hash(&schema, vec![col("l_orderkey")], BUCKETS, Arc::default())
        .expect("routing");
    let mut writer = ShuffleWriter::new(
        schema,
        routing,
        BUCKETS,
        BATCH_SIZE,
        scratch.memory(),
        scratch.spill.clone(),
    )
    .expect("writer");
    for b in batches {
        writer.push(b.clone()).expect("push");
    }
    let (data, index) = (dir.join("map.data"), dir.join("map.index"));
    writer.finish(data.clone(), index).expect("finish");
    data
}

fn shuffle_ipc(c: &mut Criterion) {
    let scratch = Scratch::new();
    let items = lineitems();
    let batches = slices(&items, 65_536);
    let bytes = items.get_array_memory_size() as u64;
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut group = c.benchmark_group("shuffle_ipc");
    quick(&mut group);
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("write_16_buckets", |b| {
        b.iter(|| write_shuffle(&scratch, &batches, dir.path()))
    });
    let data = write_shuffle(&scratch, &batches, dir.path());
    let index = std::fs::read(dir.path().join("map.index")).expect("index");
    let offsets: Vec<u64> = index
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let file = std::fs::read(&data).expect("data");
    group.bench_function("read_16_buckets", |b| {
        b.iter(|| {
            let mut rows = 0;
            for w in offsets.windows(2) {
                let bucket = file[w[0] as usize..w[1] as usize].to_vec();
                for batch in decode_ipc_stream(bucket).expect("decode") {
                    rows += batch.num_rows();
                }
            }
            assert_eq!(rows, ROWS);
        })
    });
    group.finish();
}

fn sort(c: &mut Criterion) {
    let scratch = Scratch::new();
    let records = terasort::records(0, ROWS / 4, 42);
    let batches = slices(&records, BATCH_SIZE);
    let mut group = c.benchmark_group("sort");
    quick(&mut group);
    group.throughput(Throughput::Elements(records.num_rows() as u64));
    group.bench_function("terasort_records", |b| {
        b.iter(|| {
            let mut buffer = SortBuffer::new(
                records.schema(),
                vec![SortExpr::asc(col("key"))],
                None,
                Arc::default(),
                scratch.memory(),
                scratch.spill.clone(),
            )
            .expect("sort buffer");
            for batch in &batches {
                buffer.push(batch.clone()).expect("push");
            }
            let rows: usize = buffer
                .finish(BATCH_SIZE)
                .expect("finish")
                .map(|b| b.expect("sorted").num_rows())
                .sum();
            assert_eq!(rows, records.num_rows());
        })
    });
    group.finish();
}

fn hash_join(c: &mut Criterion) {
    let scratch = Scratch::new();
    let orders_n = ROWS / 4;
    let orders = tpch::orders(0, orders_n, 150_000, 42);
    let items = lineitems().project(&[0, 2]).expect("project");
    let (left, right) = (slices(&items, BATCH_SIZE), slices(&orders, BATCH_SIZE));
    let spec = JoinSpec {
        left_schema: items.schema(),
        right_schema: orders.schema(),
        left_keys: vec![col("l_orderkey")],
        right_keys: vec![col("o_orderkey")],
        join_type: JoinType::Inner,
        functions: Arc::default(),
        batch_size: BATCH_SIZE,
        cancelled: Arc::default(),
    };
    let input = |b: &[RecordBatch]| -> JoinInput {
        let owned = b.to_vec();
        Box::new(owned.into_iter().map(Ok))
    };
    let mut group = c.benchmark_group("hash_join");
    quick(&mut group);
    group.throughput(Throughput::Elements((ROWS + orders_n) as u64));
    group.bench_function("int64_build_256k_probe_1m", |b| {
        b.iter(|| {
            let join = HashJoinStream::new(
                spec.clone(),
                input(&left),
                input(&right),
                Some(scratch.memory()),
                scratch.spill.clone(),
            )
            .expect("join");
            let rows: usize = join.map(|b| b.expect("joined").num_rows()).sum();
            assert_eq!(rows, ROWS);
        })
    });
    group.finish();
}

criterion_group!(
    micro,
    tokenizer,
    hash_aggregation,
    hash_partitioning,
    shuffle_ipc,
    sort,
    hash_join
);
criterion_main!(micro);
