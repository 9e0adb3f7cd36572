//! Hash aggregation in partial + final mode over random batches equals a BTreeMap reference.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use arrow::record_batch::RecordBatch;
use quiver_plan::aggregate::{count, count_of, max, mean, min, sum};
use quiver_plan::expr::col;
use quiver_plan::{AggregateMode, PlanNode, StageId, StageRead};
use quiver_worker::FunctionRegistry;
use quiver_worker::expr::expr_eval::{evaluate, filter};
use quiver_worker::memory::memory_pool::MemoryPool;
use quiver_worker::memory::spill::SpillDir;
use quiver_worker::operators::hash_aggregate::HashAggregate;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random_batch(rng: &mut StdRng, rows: usize) -> RecordBatch {
    let keys: Vec<Option<String>> = (0..rows)
        .map(|_| (rng.random_range(0..20) > 0).then(|| format!("k{}", rng.random_range(0..50))))
        .collect();
    let ints: Vec<Option<i64>> = (0..rows)
        .map(|_| (rng.random_range(0..10) > 0).then(|| rng.random_range(-1000..1000)))
        .collect();
    let floats: Vec<f64> = (0..rows).map(|_| rng.random_range(-10.0..10.0)).collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("i", DataType::Int64, true),
            Field::new("f", DataType::Float64, false),
        ])),
        vec![
            Arc::new(StringArray::from(keys)),
            Arc::new(Int64Array::from(ints)),
            Arc::new(Float64Array::from(floats)),
        ],
    )
    .unwrap()
}

#[derive(Default, Debug)]
struct Reference {
    rows: i64,
    non_null: i64,
    sum: i64,
    min: Option<i64>,
    max: Option<i64>,
    fsum: f64,
}

#[test]
fn partial_then_final_matches_reference() {
    let seed = 11;
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let batches: Vec<RecordBatch> = (0..12)
        .map(|i| random_batch(&mut rng, 50 + i * 97))
        .collect();
    let schema = batches[0].schema();

    let mut reference: BTreeMap<Option<String>, Reference> = BTreeMap::new();
    for b in &batches {
        let k = b.column(0).as_string::<i32>();
        let i = b.column(1).as_primitive::<Int64Type>();
        let f = b.column(2).as_primitive::<Float64Type>();
        for r in 0..b.num_rows() {
            let e = reference
                .entry(k.is_valid(r).then(|| k.value(r).to_string()))
                .or_default();
            e.rows += 1;
            e.fsum += f.value(r);
            if i.is_valid(r) {
                let v = i.value(r);
                e.non_null += 1;
                e.sum += v;
                e.min = Some(e.min.map_or(v, |m| m.min(v)));
                e.max = Some(e.max.map_or(v, |m| m.max(v)));
            }
        }
    }

    let aggs = vec![
        count().alias("n"),
        count_of(col("i")).alias("nn"),
        sum(col("i")).alias("s"),
        min(col("i")).alias("lo"),
        max(col("i")).alias("hi"),
        mean(col("f")).alias("m"),
        // A sum of the mean's input: both take the batch's per-group sums, added up once.
        sum(col("f")).alias("sf"),
    ];
    let scan = PlanNode::StageRead(StageRead::Shuffle {
        stage: StageId(0),
        schema: schema.clone(),
    });
    let partial_node = PlanNode::Aggregate {
        input: Box::new(scan.clone()),
        keys: vec![col("k")],
        aggregates: aggs.clone(),
        mode: AggregateMode::Partial,
        filter: None,
    };
    let partial_schema = partial_node.schema().unwrap();
    let final_node = PlanNode::Aggregate {
        input: Box::new(PlanNode::StageRead(StageRead::Shuffle {
            stage: StageId(0),
            schema: partial_schema.clone(),
        })),
        keys: vec![col("k")],
        aggregates: aggs.clone(),
        mode: AggregateMode::Final,
        filter: None,
    };
    let pool = MemoryPool::new(64 << 20, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spill = Arc::new(SpillDir::new(dir.path().to_path_buf(), "t".into()));
    // Two "map tasks" each aggregate half the batches; the final step merges both.
    let mut partial_out = vec![];
    for half in batches.chunks(6) {
        let mut p = HashAggregate::new(
            &schema,
            vec![col("k")],
            aggs.clone(),
            AggregateMode::Partial,
            partial_schema.clone(),
            Arc::default(),
            pool.task().reservation(),
            spill.clone(),
        )
        .unwrap();
        for b in half {
            p.push(b).unwrap();
        }
        partial_out.extend(p.finish(7).unwrap().map(Result::unwrap));
    }
    let mut f = HashAggregate::new(
        &partial_schema,
        vec![col("k")],
        aggs,
        AggregateMode::Final,
        final_node.schema().unwrap(),
        Arc::default(),
        pool.task().reservation(),
        spill,
    )
    .unwrap();
    for b in &partial_out {
        f.push(b).unwrap();
    }
    let out: Vec<_> = f.finish(1000).unwrap().map(Result::unwrap).collect();
    let rows: usize = out.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, reference.len());
    for b in &out {
        let k = b.column(0).as_string::<i32>();
        let col_i = |c: usize| b.column(c).as_primitive::<Int64Type>().clone();
        let (n, nn, s, lo, hi) = (col_i(1), col_i(2), col_i(3), col_i(4), col_i(5));
        let m = b.column(6).as_primitive::<Float64Type>();
        let sf = b.column(7).as_primitive::<Float64Type>();
        for r in 0..b.num_rows() {
            let key = k.is_valid(r).then(|| k.value(r).to_string());
            let e = &reference[&key];
            assert_eq!(n.value(r), e.rows, "{key:?}");
            assert_eq!(nn.value(r), e.non_null, "{key:?}");
            if e.non_null > 0 {
                assert_eq!(s.value(r), e.sum, "{key:?}");
                assert_eq!(Some(lo.value(r)), e.min, "{key:?}");
                assert_eq!(Some(hi.value(r)), e.max, "{key:?}");
            } else {
                assert!(s.is_null(r) && lo.is_null(r) && hi.is_null(r));
            }
            assert!(
                (m.value(r) - e.fsum / e.rows as f64).abs() < 1e-9,
                "{key:?}"
            );
            assert!((sf.value(r) - e.fsum).abs() < 1e-9, "{key:?}");
        }
    }
}

#[test]
fn expressions_match_row_by_row_reference() {
    use quiver_plan::expr::{length, lit, lower, upper};
    let mut rng = StdRng::seed_from_u64(3);
    let b = random_batch(&mut rng, 500);
    let i = b.column(1).as_primitive::<Int64Type>().clone();
    let f = b.column(2).as_primitive::<Float64Type>().clone();
    let k = b.column(0).as_string::<i32>().clone();

    let e = (col("i") * lit(3) + lit(1)) % lit(7);
    let got = evaluate(&e, &b, &FunctionRegistry::default()).unwrap();
    let got = got.as_primitive::<Int64Type>();
    for r in 0..b.num_rows() {
        assert_eq!(got.is_valid(r), i.is_valid(r));
        if i.is_valid(r) {
            assert_eq!(got.value(r), (i.value(r) * 3 + 1) % 7);
        }
    }

    let e = col("i") / lit(4);
    let got = evaluate(&e, &b, &FunctionRegistry::default()).unwrap();
    let got = got.as_primitive::<Float64Type>();
    for r in (0..b.num_rows()).filter(|&r| i.is_valid(r)) {
        assert_eq!(got.value(r), i.value(r) as f64 / 4.0);
    }

    let pred = col("f")
        .gt(lit(0.5))
        .and(col("i").lt_eq(lit(100)).or(col("k").eq(lit("k7"))));
    let kept = filter(&b, &pred, &FunctionRegistry::default()).unwrap();
    let expected = (0..b.num_rows())
        .filter(|&r| {
            let left = f.value(r) > 0.5;
            // SQL three-valued logic: NULL OR true = true, NULL OR false = NULL (dropped).
            let a = i.is_valid(r).then(|| i.value(r) <= 100);
            let c = k.is_valid(r).then(|| k.value(r) == "k7");
            let right = match (a, c) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            };
            left && right == Some(true)
        })
        .count();
    assert_eq!(kept.num_rows(), expected);

    let strings: ArrayRef = Arc::new(StringArray::from(vec![Some("Ab Ç"), None, Some("ß")]));
    let sb = RecordBatch::try_from_iter(vec![("s", strings)]).unwrap();
    let up = evaluate(&upper(col("s")), &sb, &FunctionRegistry::default()).unwrap();
    assert_eq!(up.as_string::<i32>().value(0), "AB Ç");
    assert_eq!(up.as_string::<i32>().value(2), "SS");
    let lo = evaluate(&lower(col("s")), &sb, &FunctionRegistry::default()).unwrap();
    assert_eq!(lo.as_string::<i32>().value(0), "ab ç");
    let len = evaluate(&length(col("s")), &sb, &FunctionRegistry::default()).unwrap();
    assert_eq!(len.as_primitive::<Int64Type>().value(0), 4);
    assert!(len.is_null(1));
}

/// Group keys of two string columns: short codes (packed into one integer per row) until a
/// batch brings a long string (the groups move to the row format). Every row's group must
/// hold that row's keys, and distinct keys must get distinct groups, across the move.
#[test]
fn two_string_keys_keep_their_groups_when_a_long_string_arrives() {
    use quiver_worker::operators::group_keys::GroupKeys;
    use std::collections::HashMap;

    let mut rng = StdRng::seed_from_u64(11);
    let codes = ["A", "N", "R", "", "xy"];
    let mut batch = |long: bool| -> Vec<Vec<Option<String>>> {
        (0..2)
            .map(|_| {
                (0..500)
                    .map(|_| {
                        if rng.random_bool(0.05) {
                            None
                        } else if long && rng.random_bool(0.01) {
                            Some("a much longer status string".to_string())
                        } else {
                            Some(codes[rng.random_range(0..codes.len())].to_string())
                        }
                    })
                    .collect()
            })
            .collect()
    };
    let batches = vec![batch(false), batch(false), batch(true), batch(false)];
    let mut groups = GroupKeys::new(&[DataType::Utf8, DataType::Utf8]).unwrap();
    type Key = (Option<String>, Option<String>);
    let mut assigned: Vec<(u32, Key)> = vec![];
    let mut ids = vec![];
    for columns in &batches {
        let arrays: Vec<ArrayRef> = columns
            .iter()
            .map(|c| Arc::new(StringArray::from(c.clone())) as ArrayRef)
            .collect();
        groups.intern(&arrays, 500, &mut ids).unwrap();
        for (r, &g) in ids.iter().enumerate() {
            assigned.push((g, (columns[0][r].clone(), columns[1][r].clone())));
        }
    }
    let distinct: HashMap<_, _> = assigned.iter().map(|(g, k)| (k.clone(), *g)).collect();
    assert_eq!(groups.len(), distinct.len());
    let keys = groups.into_arrays().unwrap();
    let (a, b) = (keys[0].as_string::<i32>(), keys[1].as_string::<i32>());
    let value = |s: &StringArray, g: usize| s.is_valid(g).then(|| s.value(g).to_string());
    for (g, key) in &assigned {
        let g = *g as usize;
        assert_eq!((value(a, g), value(b, g)), *key, "group {g}");
        assert_eq!(distinct[key] as usize, g);
    }
}

/// A filter fused into a partial aggregation: only selected rows count (a NULL selection is
/// not selected), and a key that only dropped rows have makes no group.
#[test]
fn fused_filter_counts_only_selected_rows() {
    use arrow::array::BooleanArray;

    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new("v", DataType::Int64, false),
    ]));
    let aggs = vec![count().alias("n"), sum(col("v")).alias("s")];
    let node = PlanNode::Aggregate {
        input: Box::new(PlanNode::StageRead(StageRead::Shuffle {
            stage: StageId(0),
            schema: schema.clone(),
        })),
        keys: vec![col("k")],
        aggregates: aggs.clone(),
        mode: AggregateMode::Partial,
        filter: None,
    };
    let pool = MemoryPool::new(64 << 20, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut agg = HashAggregate::new(
        &schema,
        vec![col("k")],
        aggs,
        AggregateMode::Partial,
        node.schema().unwrap(),
        Arc::default(),
        pool.task().reservation(),
        Arc::new(SpillDir::new(dir.path().to_path_buf(), "t".into())),
    )
    .unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    let keys = ["a", "b", "c", "only_in_dropped_rows"];
    let mut reference: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for _ in 0..7 {
        let rows = 300;
        let k: Vec<&str> = (0..rows).map(|_| keys[rng.random_range(0..4)]).collect();
        let v: Vec<i64> = (0..rows).map(|_| rng.random_range(-50..50)).collect();
        let selected: Vec<Option<bool>> = k
            .iter()
            .map(|&key| match rng.random_range(0..10) {
                _ if key == "only_in_dropped_rows" => Some(false),
                0 => None,
                1..=3 => Some(false),
                _ => Some(true),
            })
            .collect();
        for i in 0..rows {
            if selected[i] == Some(true) {
                let e = reference.entry(k[i].to_string()).or_default();
                e.0 += 1;
                e.1 += v[i];
            }
        }
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(k)),
                Arc::new(Int64Array::from(v)),
            ],
        )
        .unwrap();
        agg.push_selected(&batch, &BooleanArray::from(selected))
            .unwrap();
    }
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for b in agg.finish(2).unwrap() {
        let b = b.unwrap();
        let (k, n, s) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_primitive::<Int64Type>(),
            b.column(2).as_primitive::<Int64Type>(),
        );
        for r in 0..b.num_rows() {
            out.insert(k.value(r).to_string(), (n.value(r), s.value(r)));
        }
    }
    assert_eq!(out, reference);
}

/// One Single-mode aggregation of `values` under `aggregate` (no keys), its result or error.
fn aggregate_ints(
    values: &[i64],
    aggregate: quiver_plan::AggregateExpr,
) -> quiver_worker::Result<Vec<RecordBatch>> {
    let schema = Arc::new(Schema::new(vec![Field::new("i", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Int64Array::from(values.to_vec()))],
    )
    .unwrap();
    let node = PlanNode::Aggregate {
        input: Box::new(PlanNode::StageRead(StageRead::Shuffle {
            stage: StageId(0),
            schema: schema.clone(),
        })),
        keys: vec![],
        aggregates: vec![aggregate.clone()],
        mode: AggregateMode::Single,
        filter: None,
    };
    let pool = MemoryPool::new(64 << 20, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut agg = HashAggregate::new(
        &schema,
        vec![],
        vec![aggregate],
        AggregateMode::Single,
        node.schema().unwrap(),
        Arc::default(),
        pool.task().reservation(),
        Arc::new(SpillDir::new(dir.path().to_path_buf(), "t".into())),
    )?;
    // Batch by batch of 3 rows, so partial sums cross the Int64 range between batches.
    for chunk in batch.columns()[0]
        .as_primitive::<Int64Type>()
        .values()
        .chunks(3)
    {
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(chunk.to_vec()))],
        )
        .unwrap();
        agg.push(&b)?;
    }
    agg.finish(100)?.collect()
}

#[test]
fn integer_sums_never_wrap() {
    let big = 1i64 << 62;
    // 3 * 2^62 does not fit in Int64: an error naming the aggregate, not -4.6e18.
    let err = aggregate_ints(&[big, big, big], sum(col("i")).alias("total"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("sum 'total' overflows Int64"), "{err}");
    assert!(err.contains("13835058055282163712"), "{err}");
    // Intermediate sums beyond Int64 that come back into range are exact.
    let values = [i64::MAX, i64::MAX, 5, i64::MIN + 1, i64::MIN + 1, 7];
    let expected: i128 = values.iter().map(|&v| i128::from(v)).sum();
    let got = aggregate_ints(&values, sum(col("i")).alias("s")).unwrap();
    let got = got[0].column(0).as_primitive::<Int64Type>().value(0);
    assert_eq!(i128::from(got), expected);
}
