//! Each spilling operator on its own with a budget of a few batches: the final aggregation,
//! the sort and the join must spill (checked through the spill directory's byte count), give
//! the reference result, and leave no file behind.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use quiver_plan::aggregate::{count, sum};
use quiver_plan::expr::col;
use quiver_plan::{AggregateMode, JoinType, PlanNode, ScanNode, SortExpr};
use quiver_worker::memory::memory_pool::MemoryPool;
use quiver_worker::memory::spill::SpillDir;
use quiver_worker::operators::hash_aggregate::HashAggregate;
use quiver_worker::operators::hash_join::{HashJoinStream, JoinInput, JoinSpec};
use quiver_worker::operators::sort::SortBuffer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("v", DataType::Int64, false),
    ]))
}

/// Batches of (k in 0..keys, NULL for about 1 in 50; v random).
fn batches(seed: u64, count: usize, rows: usize, keys: i64) -> Vec<RecordBatch> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let k: Vec<Option<i64>> = (0..rows)
                .map(|_| (rng.random_range(0..50) > 0).then(|| rng.random_range(0..keys)))
                .collect();
            let v: Vec<i64> = (0..rows).map(|_| rng.random_range(-100..100)).collect();
            RecordBatch::try_new(
                schema(),
                vec![Arc::new(Int64Array::from(k)), Arc::new(Int64Array::from(v))],
            )
            .unwrap()
        })
        .collect()
}

fn rows(batches: &[RecordBatch]) -> Vec<(Option<i64>, i64)> {
    batches
        .iter()
        .flat_map(|b| {
            let k = b.column(0).as_primitive::<Int64Type>().clone();
            let v = b.column(1).as_primitive::<Int64Type>().clone();
            (0..b.num_rows()).map(move |i| (k.is_valid(i).then(|| k.value(i)), v.value(i)))
        })
        .collect()
}

fn spill_dir(dir: &tempfile::TempDir) -> Arc<SpillDir> {
    Arc::new(SpillDir::new(dir.path().join("spill"), "task".into()))
}

fn files_left(dir: &tempfile::TempDir) -> usize {
    walk(&dir.path().join("spill"))
}

fn walk(p: &std::path::Path) -> usize {
    std::fs::read_dir(p).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                if e.path().is_dir() {
                    walk(&e.path())
                } else {
                    1
                }
            })
            .sum()
    })
}

#[test]
fn a_final_aggregation_over_budget_spills_and_merges_every_key_once() {
    let input = batches(1, 40, 2000, 30_000);
    let dir = tempfile::tempdir().unwrap();
    let spill = spill_dir(&dir);
    let pool = MemoryPool::unchecked(256 << 10);
    let aggs = vec![sum(col("v")).alias("s"), count().alias("n")];
    let node = PlanNode::Aggregate {
        input: Box::new(PlanNode::Scan(ScanNode {
            format: quiver_plan::SourceFormat::Parquet,
            files: vec![],
            schema: schema(),
            csv: Default::default(),
        })),
        keys: vec![col("k")],
        aggregates: aggs.clone(),
        mode: AggregateMode::Single,
        filter: None,
    };
    let mut agg = HashAggregate::new(
        &schema(),
        vec![col("k")],
        aggs,
        AggregateMode::Single,
        node.schema().unwrap(),
        Default::default(),
        pool.task().reservation(),
        spill.clone(),
    )
    .unwrap();
    for b in &input {
        assert!(agg.push(b).unwrap().is_empty());
    }
    let out: Vec<RecordBatch> = agg.finish(1000).unwrap().map(Result::unwrap).collect();
    assert!(spill.spilled_bytes() > 0, "the aggregation did not spill");
    let mut want: BTreeMap<Option<i64>, (i64, i64)> = BTreeMap::new();
    for (k, v) in rows(&input) {
        let e = want.entry(k).or_default();
        e.0 += v;
        e.1 += 1;
    }
    let mut got = BTreeMap::new();
    for b in &out {
        let k = b.column(0).as_primitive::<Int64Type>();
        let s = b.column(1).as_primitive::<Int64Type>();
        let n = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            let key = k.is_valid(i).then(|| k.value(i));
            assert!(got.insert(key, (s.value(i), n.value(i))).is_none());
        }
    }
    assert_eq!(got, want);
    drop(spill);
    assert_eq!(files_left(&dir), 0);
}

#[test]
fn a_sort_over_budget_merges_its_runs_in_order() {
    let input = batches(2, 30, 3000, 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let spill = spill_dir(&dir);
    let pool = MemoryPool::unchecked(256 << 10);
    let mut sort = SortBuffer::new(
        schema(),
        vec![SortExpr::desc(col("k")), SortExpr::asc(col("v"))],
        None,
        Default::default(),
        pool.task().reservation(),
        spill.clone(),
    )
    .unwrap();
    for b in &input {
        sort.push(b.clone()).unwrap();
    }
    let out: Vec<RecordBatch> = sort.finish(777).unwrap().map(Result::unwrap).collect();
    assert!(spill.spilled_bytes() > 0, "the sort did not spill");
    assert!(out.iter().all(|b| b.num_rows() <= 777));
    let mut want = rows(&input);
    // NULLs first (descending default), then k descending, then v ascending.
    want.sort_by(|a, b| match (a.0, b.0) {
        (None, None) => a.1.cmp(&b.1),
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(x), Some(y)) => y.cmp(&x).then(a.1.cmp(&b.1)),
    });
    assert_eq!(rows(&out), want);
    drop(spill);
    assert_eq!(files_left(&dir), 0);
}

#[test]
fn a_join_over_budget_partitions_both_sides_for_every_type() {
    let left = batches(3, 10, 2000, 5000);
    let right = batches(4, 20, 2000, 5000);
    for join_type in [JoinType::Inner, JoinType::Full, JoinType::LeftAnti] {
        let dir = tempfile::tempdir().unwrap();
        let spill = spill_dir(&dir);
        let pool = MemoryPool::unchecked(128 << 10);
        let spec = JoinSpec {
            left_schema: schema(),
            right_schema: schema(),
            left_keys: vec![col("k")],
            right_keys: vec![col("k")],
            join_type,
            functions: Default::default(),
            batch_size: 1000,
            cancelled: Arc::new(AtomicBool::new(false)),
        };
        let input = |b: &[RecordBatch]| -> JoinInput {
            let owned: Vec<RecordBatch> = b.to_vec();
            Box::new(owned.into_iter().map(Ok))
        };
        let out: Vec<RecordBatch> = HashJoinStream::new(
            spec,
            input(&left),
            input(&right),
            Some(pool.task().reservation()),
            spill.clone(),
        )
        .unwrap()
        .map(Result::unwrap)
        .collect();
        assert!(spill.spilled_bytes() > 0, "{join_type} join did not spill");
        // Reference: counts of output rows per (left row or NULL side) shape.
        let mut by_key: HashMap<i64, Vec<i64>> = HashMap::new();
        for (k, v) in rows(&right) {
            if let Some(k) = k {
                by_key.entry(k).or_default().push(v);
            }
        }
        let mut want: Vec<String> = Vec::new();
        let mut matched_right: HashMap<i64, bool> = HashMap::new();
        for (k, v) in rows(&left) {
            let partners = k.and_then(|k| by_key.get(&k));
            match (join_type, partners) {
                (JoinType::LeftAnti, None) => want.push(format!("{k:?}|{v}")),
                (JoinType::LeftAnti, Some(_)) => {}
                (_, Some(ps)) => {
                    matched_right.insert(k.unwrap(), true);
                    want.extend(ps.iter().map(|p| format!("{k:?}|{v}|{k:?}|{p}")));
                }
                (JoinType::Full, None) => want.push(format!("{k:?}|{v}|None|∅")),
                _ => {}
            }
        }
        if join_type == JoinType::Full {
            for (k, v) in rows(&right) {
                if !k.is_some_and(|k| matched_right.contains_key(&k)) {
                    want.push(format!("None|∅|{k:?}|{v}"));
                }
            }
        }
        let mut got: Vec<String> = Vec::new();
        for b in &out {
            let cols: Vec<_> = b
                .columns()
                .iter()
                .map(|c| c.as_primitive::<Int64Type>().clone())
                .collect();
            for i in 0..b.num_rows() {
                let opt = |c: usize| cols[c].is_valid(i).then(|| cols[c].value(i));
                let val = |c: usize| opt(c).map_or("∅".to_string(), |v| v.to_string());
                got.push(if cols.len() == 2 {
                    format!("{:?}|{}", opt(0), val(1))
                } else if cols.len() == 3 {
                    // Inner join on a same-named key: one key column.
                    format!("{:?}|{}|{:?}|{}", opt(0), val(1), opt(0), val(2))
                } else {
                    format!("{:?}|{}|{:?}|{}", opt(0), val(1), opt(2), val(3))
                });
            }
        }
        got.sort();
        want.sort();
        assert_eq!(got.len(), want.len(), "{join_type} join");
        assert_eq!(got, want, "{join_type} join");
        drop(spill);
        assert_eq!(files_left(&dir), 0);
    }
}
