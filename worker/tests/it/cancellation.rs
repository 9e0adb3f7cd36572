//! Cancellation: every operator stops between batches once its task is cancelled. Each is
//! fed an endless input that cancels the task when its third batch is taken; the operator
//! must answer `Cancelled` without taking a fourth. A whole pipeline (scan, select, explode,
//! map_batches, select) stops the same way, its batch function called no more after it.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use arrow::array::{ArrayRef, Int64Array, ListArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use quiver_plan::aggregate::{count, sum};
use quiver_plan::expr::{col, lit, words};
use quiver_plan::sort::asc;
use quiver_plan::{
    AggregateExpr, AggregateMode, CsvOptions, Expr, FileSplit, InputFile, JobId, JoinType,
    PlanNode, ScanNode, SourceFormat, StageId, StageRead, WorkerId,
};
use quiver_worker::memory::memory_pool::{MemoryPool, MemoryReservation};
use quiver_worker::memory::spill::SpillDir;
use quiver_worker::operators::batch_stream::BatchIter;
use quiver_worker::operators::explode::explode;
use quiver_worker::operators::filter::filter;
use quiver_worker::operators::flat_map::flat_map;
use quiver_worker::operators::hash_aggregate::{HashAggregate, aggregate_stream};
use quiver_worker::operators::hash_join::{HashJoinStream, JoinSpec};
use quiver_worker::operators::limit::limit;
use quiver_worker::operators::map_batches::map_batches;
use quiver_worker::operators::pipeline::{self, PipelineContext};
use quiver_worker::operators::project::project;
use quiver_worker::operators::sample::{RowSampler, sample_stream};
use quiver_worker::operators::scan::scan;
use quiver_worker::operators::sort::{SortBuffer, sort_stream};
use quiver_worker::shuffle::map_output_store::MapOutputStore;
use quiver_worker::shuffle::shuffle_reader::ShuffleReadContext;
use quiver_worker::{FunctionRegistry, WorkerError};

/// The input batch that cancels the task when it is taken.
const CANCEL_AT: usize = 3;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]))
}

fn keys() -> RecordBatch {
    RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap()
}

fn list_schema() -> SchemaRef {
    let item = Arc::new(Field::new_list_field(DataType::Int64, true));
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("l", DataType::List(item), true),
    ]))
}

fn lists() -> RecordBatch {
    let l = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
        Some(vec![Some(1), Some(2)]),
        Some(vec![Some(3)]),
        Some(vec![Some(4), Some(5), Some(6)]),
    ]);
    let columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![1, 2, 3])), Arc::new(l)];
    RecordBatch::try_new(list_schema(), columns).unwrap()
}

/// An endless stream of `batch` that sets `cancelled` when batch `CANCEL_AT` is taken, and
/// counts the batches taken.
fn endless(batch: RecordBatch, cancelled: Arc<AtomicBool>) -> (BatchIter, Arc<AtomicUsize>) {
    let taken = Arc::new(AtomicUsize::new(0));
    let counter = taken.clone();
    let stream = std::iter::from_fn(move || {
        if counter.fetch_add(1, Ordering::SeqCst) + 1 == CANCEL_AT {
            cancelled.store(true, Ordering::SeqCst);
        }
        Some(Ok(batch.clone()))
    });
    (Box::new(stream), taken)
}

struct Scratch {
    pool: Arc<MemoryPool>,
    spill: Arc<SpillDir>,
    _dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Scratch {
            pool: MemoryPool::unchecked(1 << 30),
            spill: Arc::new(SpillDir::new(dir.path().to_path_buf(), "t".into())),
            _dir: dir,
        }
    }

    fn memory(&self) -> MemoryReservation {
        self.pool.task().reservation()
    }

    /// A sort of `schema()` by `k`.
    fn sort(&self) -> SortBuffer {
        SortBuffer::new(
            schema(),
            vec![asc(col("k"))],
            None,
            Arc::default(),
            self.memory(),
            self.spill.clone(),
        )
        .unwrap()
    }

    /// An aggregation of `schema()` by `k` in `mode`, with the fused `filter` if any.
    fn aggregate(
        &self,
        aggregates: Vec<AggregateExpr>,
        mode: AggregateMode,
        filter: Option<Expr>,
    ) -> HashAggregate {
        let node = PlanNode::Aggregate {
            input: Box::new(PlanNode::StageRead(StageRead::Shuffle {
                stage: StageId(0),
                schema: schema(),
            })),
            keys: vec![col("k")],
            aggregates: aggregates.clone(),
            mode,
            filter,
        };
        HashAggregate::new(
            &schema(),
            vec![col("k")],
            aggregates,
            mode,
            node.schema().unwrap(),
            Arc::default(),
            self.memory(),
            self.spill.clone(),
        )
        .unwrap()
    }
}

/// Runs `operator` over an endless input of `batch` until it fails, and checks that it failed
/// because the task was cancelled, without taking input after that.
fn assert_stops(
    name: &str,
    batch: RecordBatch,
    operator: impl FnOnce(BatchIter, Arc<AtomicBool>) -> BatchIter,
) {
    let cancelled = Arc::new(AtomicBool::new(false));
    let (input, taken) = endless(batch, cancelled.clone());
    let mut out = operator(input, cancelled);
    let mut passed = 0;
    let err = loop {
        match out.next() {
            Some(Ok(_)) => {
                passed += 1;
                assert!(
                    passed < CANCEL_AT,
                    "{name} passed on batches after the cancel"
                );
            }
            Some(Err(e)) => break e,
            None => panic!("{name} ended instead of failing"),
        }
    };
    assert!(matches!(err, WorkerError::Cancelled), "{name}: {err}");
    assert_eq!(
        taken.load(Ordering::SeqCst),
        CANCEL_AT,
        "{name} took input after its task was cancelled"
    );
}

#[test]
fn every_batch_by_batch_operator_stops_when_its_task_is_cancelled() {
    let mut registry = FunctionRegistry::new();
    registry.register_batch("same", schema(), Ok);
    registry.register_flat_map("twice", schema(), |row| {
        Ok(vec![row.to_vec(), row.to_vec()])
    });
    let functions = Arc::new(registry);
    let f = functions.clone();
    assert_stops("filter", keys(), |input, c| {
        filter(input, col("k").gt(lit(0)), f, c)
    });
    let f = functions.clone();
    assert_stops("project", keys(), |input, c| {
        project(input, vec![col("k")], schema(), f, c)
    });
    let exploded = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("l", DataType::Int64, true),
    ]));
    assert_stops("explode", lists(), |input, c| {
        explode(input, "l".into(), exploded, c)
    });
    assert_stops("limit", keys(), |input, c| limit(input, u64::MAX, c));
    let f = functions.clone();
    assert_stops("map_batches", keys(), |input, c| {
        map_batches(input, "same".into(), f, c)
    });
    let f = functions.clone();
    assert_stops("flat_map", keys(), |input, c| {
        flat_map(input, "twice".into(), f, c)
    });
}

#[test]
fn every_whole_input_operator_stops_when_its_task_is_cancelled() {
    let scratch = Scratch::new();
    assert_stops("sample", keys(), |input, c| {
        sample_stream(RowSampler::new(schema(), 10, 0), input, c)
    });
    assert_stops("sort", keys(), |input, c| {
        sort_stream(scratch.sort(), input, 100, c)
    });
    for (mode, fused) in [
        (AggregateMode::Single, None),
        (AggregateMode::Partial, Some(col("k").gt(lit(1)))),
    ] {
        let aggregates = vec![sum(col("k")).alias("s"), count()];
        assert_stops(&format!("{mode:?} aggregate"), keys(), |input, c| {
            let aggregate = scratch.aggregate(aggregates, mode, fused.clone());
            aggregate_stream(aggregate, input, fused, Arc::default(), 100, c)
        });
    }
    // The probe side of a join: the build side is a few batches, the probe side endless.
    assert_stops("join", keys(), |input, c| {
        let spec = JoinSpec {
            left_schema: schema(),
            right_schema: schema(),
            left_keys: vec![col("k")],
            right_keys: vec![col("k")],
            join_type: JoinType::Inner,
            functions: Arc::default(),
            batch_size: 100,
            cancelled: c,
        };
        let build: BatchIter = Box::new(vec![Ok(keys()), Ok(keys())].into_iter());
        Box::new(
            HashJoinStream::new(
                spec,
                input,
                build,
                Some(scratch.memory()),
                scratch.spill.clone(),
            )
            .unwrap(),
        )
    });
}

/// A text file of `lines` lines of three words.
fn text_file(dir: &std::path::Path, lines: usize) -> (String, u64) {
    let path = dir.join("words.txt");
    let mut f = std::fs::File::create(&path).unwrap();
    for i in 0..lines {
        writeln!(f, "alpha beta w{i}").unwrap();
    }
    let size = std::fs::metadata(&path).unwrap().len();
    (path.to_string_lossy().into_owned(), size)
}

#[test]
fn a_scan_of_a_cancelled_task_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, size) = text_file(dir.path(), 100);
    let text = ScanNode {
        format: SourceFormat::Text,
        files: vec![],
        schema: ScanNode::text_schema(),
        csv: CsvOptions::default(),
    };
    let split = FileSplit {
        path,
        start: 0,
        end: size,
        row_groups: vec![],
    };
    let mut out = scan(&text, vec![split], 10, Arc::new(AtomicBool::new(true)));
    assert!(matches!(out.next(), Some(Err(WorkerError::Cancelled))));
}

#[test]
fn a_select_explode_map_batches_pipeline_stops_when_its_task_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let (path, size) = text_file(dir.path(), 500);
    let scan = PlanNode::Scan(ScanNode {
        format: SourceFormat::Text,
        files: vec![InputFile {
            path: path.clone(),
            size,
            row_groups: 0,
        }],
        schema: ScanNode::text_schema(),
        csv: CsvOptions::default(),
    });
    let exploded = PlanNode::Explode {
        input: Box::new(PlanNode::Project {
            input: Box::new(scan),
            exprs: vec![words(col("line")).alias("w")],
        }),
        column: "w".into(),
    };
    let word_schema = exploded.schema().unwrap();
    let plan = PlanNode::Project {
        input: Box::new(PlanNode::MapBatches {
            input: Box::new(exploded),
            function: "cancel_on_third".into(),
            schema: word_schema.clone(),
        }),
        exprs: vec![col("w")],
    };
    // The batch function cancels the task on its third call, as `CancelTasks` would.
    let cancelled = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let mut registry = FunctionRegistry::new();
    let (flag, counter) = (cancelled.clone(), calls.clone());
    registry.register_batch("cancel_on_third", word_schema, move |b| {
        if counter.fetch_add(1, Ordering::SeqCst) + 1 == CANCEL_AT {
            flag.store(true, Ordering::SeqCst);
        }
        Ok(b)
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let scratch = Scratch::new();
    let ctx = Arc::new(PipelineContext {
        splits: vec![FileSplit {
            path,
            start: 0,
            end: size,
            row_groups: vec![],
        }],
        inputs: vec![],
        // 500 lines in batches of 10: 50 batches, far more than are read.
        batch_size: 10,
        cancelled,
        partition: 0,
        buckets: 0..1,
        shuffle: ShuffleReadContext {
            job: JobId::random(),
            this_worker: WorkerId::random(),
            store: Arc::new(MapOutputStore::new(dir.path().join("store"))),
            peers: Arc::default(),
            runtime: runtime.handle().clone(),
            metrics: Arc::default(),
        },
        functions: Arc::new(registry),
        memory: scratch.pool.task(),
        spill: scratch.spill.clone(),
        storage: Default::default(),
    });
    let results: Vec<_> = pipeline::build(&plan, &ctx).unwrap().take(60).collect();
    let first_error = results.iter().position(|r| r.is_err()).unwrap();
    assert_eq!(first_error, CANCEL_AT - 1, "batches before the cancel pass");
    assert!(matches!(results[first_error], Err(WorkerError::Cancelled)));
    assert_eq!(calls.load(Ordering::SeqCst), CANCEL_AT);
}

/// The output phase of the whole-input operators — an aggregation's groups, a sort's sorted
/// rows — is long after their last input batch: it stops too, between output batches.
#[test]
fn aggregation_and_sort_outputs_stop_between_batches_when_the_task_is_cancelled() {
    let scratch = Scratch::new();
    // 1000 distinct keys, emitted 10 per batch: 100 output batches.
    let many = RecordBatch::try_new(
        schema(),
        vec![Arc::new(Int64Array::from_iter_values(0..1000))],
    )
    .unwrap();
    let finite = |c: &Arc<AtomicBool>| -> (BatchIter, Arc<AtomicBool>) {
        (Box::new(std::iter::once(Ok(many.clone()))), c.clone())
    };
    let check = |name: &str, mut out: BatchIter, cancelled: &Arc<AtomicBool>| {
        assert!(out.next().expect("a first batch").is_ok(), "{name}");
        cancelled.store(true, Ordering::SeqCst);
        let next = out.next().expect("an answer after the cancel");
        assert!(
            matches!(next, Err(WorkerError::Cancelled)),
            "{name}: {next:?}"
        );
        assert!(out.next().is_none(), "{name} ends after the cancel");
    };

    let cancelled = Arc::new(AtomicBool::new(false));
    let (input, c) = finite(&cancelled);
    let sort = scratch.sort();
    check("sort", sort_stream(sort, input, 10, c), &cancelled);

    let cancelled = Arc::new(AtomicBool::new(false));
    let (input, c) = finite(&cancelled);
    let aggregate = scratch.aggregate(vec![count()], AggregateMode::Single, None);
    check(
        "aggregate",
        aggregate_stream(aggregate, input, None, Arc::default(), 10, c),
        &cancelled,
    );
}
