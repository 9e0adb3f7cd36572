//! The yardsticks: for each workload, a straightforward single-threaded Rust program that
//! computes the same result from the same files with no framework — what one good thread does.
//!
//! They use the same file formats and the same libraries a careful programmer would reach for
//! (the `parquet` crate reading only the columns needed, `hashbrown` maps, the `regex` crate),
//! and nothing of Quiver's.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Float64Type, Int64Type};
use hashbrown::HashMap;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::workloads::{Output, Q1Row};

/// The files under `paths`, in name order (directories read recursively).
pub fn files_under(path: &Path, ext: Option<&str>) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if path.is_file() {
        out.push(path.to_path_buf());
    } else {
        for e in std::fs::read_dir(path)? {
            let p = e?.path();
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            if name.is_some_and(|n| n.starts_with('_') || n.starts_with('.')) {
                continue;
            }
            out.extend(files_under(&p, ext)?);
        }
    }
    out.retain(|p| ext.is_none_or(|e| p.extension().is_some_and(|x| x == e)));
    out.sort();
    Ok(out)
}

/// Batches of `columns` of a Parquet file.
fn parquet_columns(path: &Path, columns: &[&str]) -> anyhow::Result<Vec<RecordBatch>> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
}

/// Word count: maximal runs of alphanumeric characters, lowercased, counted.
pub fn wordcount(files: &[PathBuf]) -> anyhow::Result<Output> {
    let mut counts: HashMap<String, i64> = HashMap::new();
    let mut lower = String::new();
    let mut line = String::new();
    for f in files {
        let mut reader = BufReader::with_capacity(1 << 20, File::open(f)?);
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                break;
            }
            for word in line.split(|c: char| !c.is_alphanumeric()) {
                if word.is_empty() {
                    continue;
                }
                lower.clear();
                if word.is_ascii() {
                    lower.push_str(word);
                    lower.make_ascii_lowercase();
                } else {
                    lower.extend(word.chars().flat_map(char::to_lowercase));
                }
                match counts.get_mut(lower.as_str()) {
                    Some(n) => *n += 1,
                    None => {
                        counts.insert(lower.clone(), 1);
                    }
                }
            }
        }
    }
    Ok(Output::Counts(counts.into_iter().collect()))
}

/// Grep: (file name, byte offset) of every line matching `pattern`.
pub fn grep(files: &[PathBuf], pattern: &str) -> anyhow::Result<Output> {
    let re = regex::Regex::new(pattern)?;
    let mut matches = Vec::new();
    let mut line = String::new();
    for f in files {
        let name = crate::workloads::file_name(&f.to_string_lossy());
        let mut reader = BufReader::with_capacity(1 << 20, File::open(f)?);
        let mut offset = 0i64;
        loop {
            line.clear();
            let n = reader.read_line(&mut line)?;
            if n == 0 {
                break;
            }
            let text = line.trim_end_matches('\n').trim_end_matches('\r');
            if re.is_match(text) {
                matches.push((name.clone(), offset));
            }
            offset += n as i64;
        }
    }
    matches.sort();
    Ok(Output::Matches(matches))
}

/// TeraSort: read every record, sort by key, write one sorted Parquet file into `output`.
pub fn terasort(input: &Path, output: &Path) -> anyhow::Result<Output> {
    let mut batches = Vec::new();
    for f in files_under(input, Some("parquet"))? {
        batches.extend(parquet_columns(&f, &["key", "payload"])?);
    }
    let schema = quiver_examples::jobs::terasort::schema();
    let all = arrow::compute::concat_batches(&schema, &batches)?;
    drop(batches);
    let keys = all.column(0).as_binary::<i32>();
    let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
    order.sort_unstable_by(|&a, &b| keys.value(a as usize).cmp(keys.value(b as usize)));
    let sorted = arrow::compute::take_record_batch(&all, &arrow::array::UInt32Array::from(order))?;
    drop(all);
    std::fs::create_dir_all(output)?;
    let chunks: Vec<RecordBatch> = (0..sorted.num_rows())
        .step_by(64 * 1024)
        .map(|s| sorted.slice(s, (64 * 1024).min(sorted.num_rows() - s)))
        .collect();
    quiver_examples::jobs::write_parquet_file(
        &output.join("part-00000.parquet"),
        schema,
        chunks,
        1 << 20,
    )?;
    let keys = sorted.column(0).as_binary::<i32>();
    Ok(crate::workloads::sorted_summary(std::iter::once(keys)))
}

/// TPC-H Q1 over `lineitem`.
pub fn tpch_q1(lineitem: &Path) -> anyhow::Result<Output> {
    // Days since 1970-01-01 of 1998-09-02.
    const CUTOFF: i32 = 10471;
    #[derive(Default)]
    struct Acc {
        qty: f64,
        base: f64,
        disc_price: f64,
        charge: f64,
        disc: f64,
        n: i64,
    }
    let mut groups: Vec<((String, String), Acc)> = Vec::new();
    for f in files_under(lineitem, Some("parquet"))? {
        let cols = [
            "l_quantity",
            "l_extendedprice",
            "l_discount",
            "l_tax",
            "l_returnflag",
            "l_linestatus",
            "l_shipdate",
        ];
        for b in parquet_columns(&f, &cols)? {
            let col = |name: &str| b.column_by_name(name).expect("projected column").clone();
            let (qty, price, disc, tax) = (
                col("l_quantity"),
                col("l_extendedprice"),
                col("l_discount"),
                col("l_tax"),
            );
            let (qty, price, disc, tax) = (
                qty.as_primitive::<Float64Type>(),
                price.as_primitive::<Float64Type>(),
                disc.as_primitive::<Float64Type>(),
                tax.as_primitive::<Float64Type>(),
            );
            let (flag, status, ship) =
                (col("l_returnflag"), col("l_linestatus"), col("l_shipdate"));
            let (flag, status, ship) = (
                flag.as_string::<i32>(),
                status.as_string::<i32>(),
                ship.as_primitive::<Date32Type>(),
            );
            for i in 0..b.num_rows() {
                if ship.value(i) > CUTOFF {
                    continue;
                }
                // Q1 has a handful of groups: a short list beats hashing two strings a row.
                let (f, st) = (flag.value(i), status.value(i));
                let at = match groups.iter().position(|(k, _)| k.0 == f && k.1 == st) {
                    Some(at) => at,
                    None => {
                        groups.push(((f.to_string(), st.to_string()), Acc::default()));
                        groups.len() - 1
                    }
                };
                let acc = &mut groups[at].1;
                let dp = price.value(i) * (1.0 - disc.value(i));
                acc.qty += qty.value(i);
                acc.base += price.value(i);
                acc.disc_price += dp;
                acc.charge += dp * (1.0 + tax.value(i));
                acc.disc += disc.value(i);
                acc.n += 1;
            }
        }
    }
    let mut rows: Vec<Q1Row> = groups
        .into_iter()
        .map(|((flag, status), a)| {
            let n = a.n as f64;
            Q1Row {
                flag,
                status,
                values: [
                    a.qty,
                    a.base,
                    a.disc_price,
                    a.charge,
                    a.qty / n,
                    a.base / n,
                    a.disc / n,
                ],
                count: a.n,
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.flag, &a.status).cmp(&(&b.flag, &b.status)));
    Ok(Output::Q1(rows))
}

/// Revenue per customer over orders ⋈ lineitem, top `k`.
pub fn join(orders: &Path, lineitem: &Path, k: usize) -> anyhow::Result<Output> {
    let mut customer_of: HashMap<i64, i64> = HashMap::new();
    for f in files_under(orders, Some("parquet"))? {
        for b in parquet_columns(&f, &["o_orderkey", "o_custkey"])? {
            let (o, c) = (
                b.column(0).as_primitive::<Int64Type>(),
                b.column(1).as_primitive::<Int64Type>(),
            );
            for i in 0..b.num_rows() {
                customer_of.insert(o.value(i), c.value(i));
            }
        }
    }
    let mut revenue: HashMap<i64, f64> = HashMap::new();
    for f in files_under(lineitem, Some("parquet"))? {
        for b in parquet_columns(&f, &["l_orderkey", "l_extendedprice", "l_discount"])? {
            let key = b.column(0).as_primitive::<Int64Type>();
            let price = b.column(1).as_primitive::<Float64Type>();
            let disc = b.column(2).as_primitive::<Float64Type>();
            for i in 0..b.num_rows() {
                if let Some(c) = customer_of.get(&key.value(i)) {
                    *revenue.entry(*c).or_default() += price.value(i) * (1.0 - disc.value(i));
                }
            }
        }
    }
    let mut all: Vec<(i64, f64)> = revenue.into_iter().collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    Ok(Output::TopCustomers(all))
}
