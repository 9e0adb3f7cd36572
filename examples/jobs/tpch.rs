//! TPC-H-like tables and two queries over them: Q1 (pricing summary) over `lineitem`, and
//! revenue per customer from `orders` joined with `lineitem`.
//!
//! The generator follows TPC-H's value ranges and correlations where Q1 can see them (ship
//! dates from 1992 to 1998; line status `F` for lines shipped by 1995-06-17 and `O` after;
//! return flag `R` or `A` for the former, `N` for the latter), not its exact distributions.
//! Prices and quantities are Float64 rather than decimals. Scale factor 1 is 6 million line
//! items and 1.5 million orders of 150 thousand customers, as in TPC-H.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Date32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use quiver::functions::*;
use quiver::{Dataset, JoinType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const LINEITEMS_PER_SF: f64 = 6_000_000.0;
pub const ORDERS_PER_SF: f64 = 1_500_000.0;
pub const CUSTOMERS_PER_SF: f64 = 150_000.0;

/// Days from 1970-01-01 to 1992-01-01.
const DAY_1992_01_01: i32 = 8035;
/// Days from 1970-01-01 to 1995-06-17, TPC-H's "current date".
const DAY_1995_06_17: i32 = 9298;
/// Ship dates span 1992-01-02 .. 1998-12-01.
const SHIP_DAYS: i32 = 2526;

pub fn lineitem_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("l_orderkey", DataType::Int64, false),
        Field::new("l_quantity", DataType::Float64, false),
        Field::new("l_extendedprice", DataType::Float64, false),
        Field::new("l_discount", DataType::Float64, false),
        Field::new("l_tax", DataType::Float64, false),
        Field::new("l_returnflag", DataType::Utf8, false),
        Field::new("l_linestatus", DataType::Utf8, false),
        Field::new("l_shipdate", DataType::Date32, false),
    ]))
}

pub fn orders_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("o_orderkey", DataType::Int64, false),
        Field::new("o_custkey", DataType::Int64, false),
    ]))
}

/// Line items `first..first + count`; order keys fall in `1..=orders`.
pub fn lineitems(first: u64, count: usize, orders: u64, seed: u64) -> RecordBatch {
    let mut rng = StdRng::seed_from_u64(seed ^ first.wrapping_mul(0xA24B_AED4_963E_E407));
    let mut orderkey = Vec::with_capacity(count);
    let mut quantity = Vec::with_capacity(count);
    let mut price = Vec::with_capacity(count);
    let mut discount = Vec::with_capacity(count);
    let mut tax = Vec::with_capacity(count);
    let mut flag = Vec::with_capacity(count);
    let mut status = Vec::with_capacity(count);
    let mut shipdate = Vec::with_capacity(count);
    for _ in 0..count {
        orderkey.push(rng.random_range(1..=orders.max(1)) as i64);
        let q = f64::from(rng.random_range(1..=50u32));
        quantity.push(q);
        price.push(q * f64::from(rng.random_range(90_000..=200_000u32)) / 100.0);
        discount.push(f64::from(rng.random_range(0..=10u32)) / 100.0);
        tax.push(f64::from(rng.random_range(0..=8u32)) / 100.0);
        let day = DAY_1992_01_01 + 1 + rng.random_range(0..SHIP_DAYS);
        shipdate.push(day);
        if day <= DAY_1995_06_17 {
            status.push("F");
            flag.push(if rng.random_bool(0.5) { "R" } else { "A" });
        } else {
            status.push("O");
            flag.push("N");
        }
    }
    RecordBatch::try_new(
        lineitem_schema(),
        vec![
            Arc::new(Int64Array::from(orderkey)),
            Arc::new(Float64Array::from(quantity)),
            Arc::new(Float64Array::from(price)),
            Arc::new(Float64Array::from(discount)),
            Arc::new(Float64Array::from(tax)),
            Arc::new(StringArray::from(flag)),
            Arc::new(StringArray::from(status)),
            Arc::new(Date32Array::from(shipdate)),
        ],
    )
    .expect("columns match the schema")
}

/// Orders `first..first + count` (keys from 1), each of one of `customers` customers.
pub fn orders(first: u64, count: usize, customers: u64, seed: u64) -> RecordBatch {
    let mut rng = StdRng::seed_from_u64(seed ^ first.wrapping_mul(0x9FB2_1C65_1E98_DF25));
    let keys: Vec<i64> = (0..count as i64).map(|i| first as i64 + i + 1).collect();
    let custs: Vec<i64> = (0..count)
        .map(|_| rng.random_range(1..=customers.max(1)) as i64)
        .collect();
    RecordBatch::try_new(
        orders_schema(),
        vec![
            Arc::new(Int64Array::from(keys)),
            Arc::new(Int64Array::from(custs)),
        ],
    )
    .expect("columns match the schema")
}

/// Row counts at scale factor `sf`: (line items, orders, customers).
pub fn sizes(sf: f64) -> (u64, u64, u64) {
    let n = |per: f64| ((per * sf) as u64).max(1);
    (n(LINEITEMS_PER_SF), n(ORDERS_PER_SF), n(CUSTOMERS_PER_SF))
}

/// Writes `lineitem/` and `orders/` under `dir` at scale factor `sf`, in `files` files each.
pub fn generate(dir: &Path, sf: f64, files: usize, seed: u64) -> anyhow::Result<()> {
    let (lines, orders_n, customers) = sizes(sf);
    let files = files.max(1) as u64;
    std::fs::create_dir_all(dir.join("lineitem"))?;
    std::fs::create_dir_all(dir.join("orders"))?;
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for f in 0..files {
            handles.push(s.spawn(move || -> anyhow::Result<()> {
                let per = lines.div_ceil(files);
                let (first, last) = (f * per, ((f + 1) * per).min(lines));
                let chunks = (first..last).step_by(65_536).map(|start| {
                    lineitems(start, (last - start).min(65_536) as usize, orders_n, seed)
                });
                super::write_parquet_file(
                    &dir.join(format!("lineitem/part-{f:05}.parquet")),
                    lineitem_schema(),
                    chunks,
                    1 << 20,
                )?;
                let per = orders_n.div_ceil(files);
                let (first, last) = (f * per, ((f + 1) * per).min(orders_n));
                let chunks = (first..last).step_by(65_536).map(|start| {
                    orders(start, (last - start).min(65_536) as usize, customers, seed)
                });
                super::write_parquet_file(
                    &dir.join(format!("orders/part-{f:05}.parquet")),
                    orders_schema(),
                    chunks,
                    1 << 20,
                )
            }));
        }
        handles.into_iter().try_for_each(|h| {
            h.join()
                .map_err(|_| anyhow::anyhow!("generator panicked"))?
        })
    })
}

/// TPC-H Q1: line items shipped by 1998-09-02, grouped by return flag and line status.
/// `lineitem` is every Parquet file or directory of the table.
pub fn q1(lineitem: &[impl AsRef<Path>]) -> quiver::Result<Dataset> {
    q1_of(Dataset::read_parquet(lineitem)?)
}

/// TPC-H Q1 over line items read some other way (e.g. with [`quiver::Sources`] from an
/// object store that needs its own credentials).
pub fn q1_of(lineitem: Dataset) -> quiver::Result<Dataset> {
    let price = || col("l_extendedprice");
    let disc_price = || price() * (lit(1.0) - col("l_discount"));
    lineitem
        .filter(col("l_shipdate").lt_eq(lit("1998-09-02")))?
        .group_by(["l_returnflag", "l_linestatus"])
        .agg([
            sum(col("l_quantity")).alias("sum_qty"),
            sum(price()).alias("sum_base_price"),
            sum(disc_price()).alias("sum_disc_price"),
            sum(disc_price() * (lit(1.0) + col("l_tax"))).alias("sum_charge"),
            mean(col("l_quantity")).alias("avg_qty"),
            mean(price()).alias("avg_price"),
            mean(col("l_discount")).alias("avg_disc"),
            count().alias("count_order"),
        ])?
        .sort([col("l_returnflag"), col("l_linestatus")])
}

/// Revenue (`sum(price * (1 - discount))`) per customer over orders ⋈ lineitem, the top
/// `k` customers first.
pub fn top_customers(orders: &Path, lineitem: &Path, k: u64) -> quiver::Result<Dataset> {
    Dataset::read_parquet(&[lineitem])?
        .select([
            col("l_orderkey"),
            (col("l_extendedprice") * (lit(1.0) - col("l_discount"))).alias("revenue"),
        ])?
        .join_with(
            Dataset::read_parquet(&[orders])?,
            quiver::JoinOn::pairs([("l_orderkey", "o_orderkey")]).how(JoinType::Inner),
        )?
        .group_by(["o_custkey"])
        .agg([sum(col("revenue")).alias("revenue")])?
        .top_k([desc(col("revenue")), asc(col("o_custkey"))], k)
}
