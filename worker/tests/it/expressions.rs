//! The built-in expressions against row-by-row references on random data with NULLs.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use quiver_plan::expr::{
    coalesce, col, contains, ends_with, lit, month, regexp_like, starts_with, substring, when, year,
};
use quiver_plan::{Expr, PlanNode, StageId, StageRead};
use quiver_worker::FunctionRegistry;
use quiver_worker::expr::expr_eval::evaluate;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DAY_1998_09_02: i32 = 10471; // days since 1970-01-01

fn batch(rows: usize, seed: u64) -> RecordBatch {
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let words = [
        "apple", "banana", "Cherry", "date", "über", "aab", "", "a+b", "東京",
    ];
    let s: Vec<Option<String>> = (0..rows)
        .map(|_| {
            (rng.random_range(0..8) > 0).then(|| {
                let a = words[rng.random_range(0..words.len())];
                let b = words[rng.random_range(0..words.len())];
                format!("{a}{b}")
            })
        })
        .collect();
    let n: Vec<Option<i64>> = (0..rows)
        .map(|_| (rng.random_range(0..6) > 0).then(|| rng.random_range(-100..100)))
        .collect();
    let x: Vec<Option<f64>> = (0..rows)
        .map(|_| (rng.random_range(0..6) > 0).then(|| rng.random_range(-5.0..5.0)))
        .collect();
    let d: Vec<Option<i32>> = (0..rows)
        .map(|_| (rng.random_range(0..10) > 0).then(|| rng.random_range(8000..11000)))
        .collect();
    let t: Vec<String> = (0..rows).map(|i| format!("{}", i as i64 - 50)).collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
            Field::new("d", DataType::Date32, true),
            Field::new("t", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(StringArray::from(s)),
            Arc::new(Int64Array::from(n)),
            Arc::new(Float64Array::from(x)),
            Arc::new(Date32Array::from(d)),
            Arc::new(StringArray::from(t)),
        ],
    )
    .unwrap()
}

fn eval(e: &Expr, b: &RecordBatch) -> ArrayRef {
    // Validation and evaluation must agree on the type.
    let plan = PlanNode::StageRead(StageRead::Shuffle {
        stage: StageId(0),
        schema: b.schema(),
    });
    let declared = e.data_type(&plan.schema().unwrap(), "test").unwrap();
    let out = evaluate(e, b, &FunctionRegistry::default()).unwrap();
    assert_eq!(out.data_type(), &declared, "{e}");
    out
}

fn strings(a: &ArrayRef) -> Vec<Option<String>> {
    a.as_string::<i32>()
        .iter()
        .map(|s| s.map(str::to_string))
        .collect()
}

fn bools(a: &ArrayRef) -> Vec<Option<bool>> {
    a.as_boolean().iter().collect()
}

fn ints(a: &ArrayRef) -> Vec<Option<i64>> {
    a.as_primitive::<Int64Type>().iter().collect()
}

#[test]
fn string_predicates_and_substring() {
    let b = batch(400, 71);
    let s = strings(b.column(0));
    let check = |e: Expr, f: &dyn Fn(&str) -> bool| {
        let expected: Vec<Option<bool>> = s.iter().map(|v| v.as_deref().map(f)).collect();
        assert_eq!(bools(&eval(&e, &b)), expected, "{e}");
    };
    check(contains(col("s"), lit("an")), &|v| v.contains("an"));
    check(starts_with(col("s"), lit("ap")), &|v| v.starts_with("ap"));
    check(ends_with(col("s"), lit("date")), &|v| v.ends_with("date"));
    check(regexp_like(col("s"), "^(a|b)+[^a-z]"), &|v| {
        let stripped = v.trim_start_matches(['a', 'b']);
        stripped.len() < v.len()
            && stripped
                .chars()
                .next()
                .is_some_and(|c| !c.is_ascii_lowercase())
    });
    let expected: Vec<Option<String>> = s
        .iter()
        .map(|v| v.as_deref().map(|v| v.chars().skip(1).take(3).collect()))
        .collect();
    assert_eq!(
        strings(&eval(&substring(col("s"), 2, Some(3)), &b)),
        expected
    );
    let expected: Vec<Option<String>> = s
        .iter()
        .map(|v| v.as_deref().map(|v| v.chars().skip(4).collect()))
        .collect();
    assert_eq!(strings(&eval(&substring(col("s"), 5, None), &b)), expected);
}

#[test]
fn casts_nulls_coalesce_and_case() {
    let b = batch(400, 72);
    let n = ints(b.column(1));
    let x: Vec<Option<f64>> = b.column(2).as_primitive::<Float64Type>().iter().collect();

    let parsed = eval(&col("t").cast(DataType::Int64), &b);
    assert_eq!(
        ints(&parsed),
        (0..400).map(|i| Some(i as i64 - 50)).collect::<Vec<_>>()
    );
    let bad = evaluate(
        &col("s").cast(DataType::Int64),
        &b,
        &FunctionRegistry::default(),
    );
    assert!(bad.unwrap_err().to_string().contains("CAST(s AS Int64)"));

    assert_eq!(
        bools(&eval(&col("n").is_null(), &b)),
        n.iter().map(|v| Some(v.is_none())).collect::<Vec<_>>()
    );
    assert_eq!(
        bools(&eval(&col("n").is_not_null(), &b)),
        n.iter().map(|v| Some(v.is_some())).collect::<Vec<_>>()
    );

    let c = eval(&coalesce(vec![col("x"), col("n"), lit(-1)]), &b);
    let c: Vec<Option<f64>> = c.as_primitive::<Float64Type>().iter().collect();
    let expected: Vec<Option<f64>> = x
        .iter()
        .zip(&n)
        .map(|(x, n)| Some(x.unwrap_or_else(|| n.map_or(-1.0, |n| n as f64))))
        .collect();
    assert_eq!(c, expected);

    let e = when(col("n").gt(lit(50)), lit("high"))
        .when(col("n").lt(lit(0)), lit("negative"))
        .otherwise(lit("low"));
    let expected: Vec<Option<String>> = n
        .iter()
        .map(|v| {
            Some(
                match v {
                    Some(v) if *v > 50 => "high",
                    Some(v) if *v < 0 => "negative",
                    _ => "low", // NULL conditions are false
                }
                .to_string(),
            )
        })
        .collect();
    assert_eq!(strings(&eval(&e, &b)), expected);
    let e = when(col("n").gt(lit(50)), col("n")).end();
    let expected: Vec<Option<i64>> = n.iter().map(|v| v.filter(|v| *v > 50)).collect();
    assert_eq!(ints(&eval(&e, &b)), expected);
}

#[test]
fn dates_compare_with_string_literals_and_give_year_and_month() {
    let b = batch(400, 73);
    let d: Vec<Option<i32>> = b
        .column(3)
        .as_primitive::<arrow::datatypes::Date32Type>()
        .iter()
        .collect();
    let got = bools(&eval(&col("d").lt_eq(lit("1998-09-02")), &b));
    assert_eq!(
        got,
        d.iter()
            .map(|v| v.map(|v| v <= DAY_1998_09_02))
            .collect::<Vec<_>>()
    );
    // Reference calendar arithmetic (civil from days, Howard Hinnant's algorithm).
    let civil = |days: i32| -> (i64, i64) {
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        (yoe + era * 400 + i64::from(m <= 2), m)
    };
    assert_eq!(
        ints(&eval(&year(col("d")), &b)),
        d.iter().map(|v| v.map(|v| civil(v).0)).collect::<Vec<_>>()
    );
    assert_eq!(
        ints(&eval(&month(col("d")), &b)),
        d.iter().map(|v| v.map(|v| civil(v).1)).collect::<Vec<_>>()
    );
}

#[test]
fn type_errors_name_the_expression() {
    let schema = batch(1, 1).schema();
    let err = |e: Expr| e.data_type(&schema, "select").unwrap_err().to_string();
    assert!(err(contains(col("n"), lit("a"))).contains("contains(n, 'a')"));
    assert!(err(year(col("s"))).contains("year(s)"));
    assert!(err(when(col("n"), lit(1)).end()).contains("boolean condition"));
    assert!(err(coalesce(vec![col("s"), col("n")])).contains("coalesce"));
    assert!(err(col("d").cast(DataType::Boolean)).contains("cannot cast"));
}

/// Expressions evaluated together, sharing `x * (1 - n)`, give what a row-by-row reference
/// gives each of them (NULL in, NULL out), a literal among them as a full column.
#[test]
fn expressions_evaluated_together_share_subexpressions_and_keep_their_values() {
    use quiver_worker::expr::expr_eval::evaluate_shared;

    let b = batch(500, 23);
    let discounted = || col("x") * (lit(1.0) - col("n"));
    let exprs = [
        discounted(),
        col("x"),
        (discounted() * (lit(1.0) + col("n"))).alias("charge"),
        discounted().alias("again"),
        lit(7i64),
    ];
    let refs: Vec<&Expr> = exprs.iter().collect();
    let got = evaluate_shared(&refs, &b, &FunctionRegistry::default()).unwrap();
    let x = b.column(2).as_primitive::<Float64Type>();
    let n = b.column(1).as_primitive::<Int64Type>();
    let floats =
        |a: &ArrayRef| -> Vec<Option<f64>> { a.as_primitive::<Float64Type>().iter().collect() };
    let disc: Vec<Option<f64>> = (0..b.num_rows())
        .map(|i| (x.is_valid(i) && n.is_valid(i)).then(|| x.value(i) * (1.0 - n.value(i) as f64)))
        .collect();
    let charge: Vec<Option<f64>> = (0..b.num_rows())
        .map(|i| {
            disc[i]
                .filter(|_| n.is_valid(i))
                .map(|d| d * (1.0 + n.value(i) as f64))
        })
        .collect();
    assert_eq!(floats(&got[0]), disc);
    assert_eq!(floats(&got[1]), x.iter().collect::<Vec<_>>());
    assert_eq!(floats(&got[2]), charge);
    assert_eq!(floats(&got[3]), disc);
    assert_eq!(ints(&got[4]), vec![Some(7); b.num_rows()]);
}
