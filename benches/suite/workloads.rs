//! The five workloads of the suite: their generated inputs, how Quiver runs each, and the
//! comparison of its result with the yardstick's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use arrow::array::{Array, AsArray, BinaryArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type};
use quiver::{Client, JobOptions, JobProgress, Sink};
use quiver_examples::jobs::{grep as grep_job, terasort, tpch};

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use quiver_storage::Location;

use crate::bench_data::{DataSet, DataStore, PreparedData};
use crate::duckdb_peer::PeerInputs;
use crate::yardsticks;

/// The join's k: customers in its top list.
pub const TOP_CUSTOMERS: usize = 10;

/// A workload of the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    Wordcount,
    Grep,
    Terasort,
    TpchQ1,
    Join,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Wordcount => "wordcount",
            Workload::Grep => "grep",
            Workload::Terasort => "terasort",
            Workload::TpchQ1 => "tpch-q1",
            Workload::Join => "join",
        }
    }
}

/// One row of TPC-H Q1: the group, its seven sums and averages, its count.
#[derive(Clone, Debug, PartialEq)]
pub struct Q1Row {
    pub flag: String,
    pub status: String,
    pub values: [f64; 7],
    pub count: i64,
}

/// A workload's result, in a form both sides produce.
#[derive(Clone, Debug)]
pub enum Output {
    /// Word → count (any order).
    Counts(Vec<(String, i64)>),
    /// (file name, byte offset) of matching lines, sorted.
    Matches(Vec<(String, i64)>),
    /// A sorted output: records, and a hash of the key sequence in order (also checks order).
    Sorted {
        records: u64,
        key_hash: u64,
        in_order: bool,
    },
    /// Q1's groups in order.
    Q1(Vec<Q1Row>),
    /// Top customers by revenue.
    TopCustomers(Vec<(i64, f64)>),
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

impl Output {
    /// Whether `self` (Quiver's) equals `want` (the yardstick's); an error says where not.
    pub fn check(&self, want: &Output) -> anyhow::Result<()> {
        match (self, want) {
            (Output::Counts(a), Output::Counts(b)) => {
                let mut a = a.clone();
                let mut b = b.clone();
                a.sort();
                b.sort();
                if a.len() != b.len() {
                    bail!("{} distinct words, yardstick has {}", a.len(), b.len());
                }
                if let Some((x, y)) = a.iter().zip(&b).find(|(x, y)| x != y) {
                    bail!("word counts differ: {x:?} vs yardstick {y:?}");
                }
            }
            (Output::Matches(a), Output::Matches(b)) => {
                if a != b {
                    bail!(
                        "{} matches, yardstick has {} (or they differ)",
                        a.len(),
                        b.len()
                    );
                }
            }
            (
                Output::Sorted {
                    records,
                    key_hash,
                    in_order,
                },
                Output::Sorted {
                    records: r2,
                    key_hash: h2,
                    ..
                },
            ) => {
                if !in_order {
                    bail!("output keys are not in order");
                }
                if records != r2 || key_hash != h2 {
                    bail!("{records} records, yardstick has {r2} (or the keys differ)");
                }
            }
            (Output::Q1(a), Output::Q1(b)) => {
                if a.len() != b.len() {
                    bail!("{} Q1 groups, yardstick has {}", a.len(), b.len());
                }
                for (x, y) in a.iter().zip(b) {
                    let same = x.flag == y.flag
                        && x.status == y.status
                        && x.count == y.count
                        && x.values.iter().zip(&y.values).all(|(p, q)| close(*p, *q));
                    if !same {
                        bail!("Q1 row {x:?} differs from the yardstick's {y:?}");
                    }
                }
            }
            (Output::TopCustomers(a), Output::TopCustomers(b)) => {
                let same = a.len() == b.len()
                    && a.iter().zip(b).all(|(x, y)| x.0 == y.0 && close(x.1, y.1));
                if !same {
                    bail!("top customers {a:?} differ from the yardstick's {b:?}");
                }
            }
            _ => bail!("results of different workloads"),
        }
        Ok(())
    }
}

/// The file name of a path string (paths differ in form between the two sides).
pub fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}

/// Count, order and hash of a sequence of key arrays.
pub fn sorted_summary<'a>(keys: impl Iterator<Item = &'a BinaryArray>) -> Output {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let (mut records, mut in_order) = (0u64, true);
    let mut previous: Option<Vec<u8>> = None;
    for array in keys {
        for i in 0..array.len() {
            let k = array.value(i);
            if previous.as_deref().is_some_and(|p| p > k) {
                in_order = false;
            }
            hasher.update(k);
            previous = Some(k.to_vec());
        }
        records += array.len() as u64;
    }
    Output::Sorted {
        records,
        key_hash: hasher.digest(),
        in_order,
    }
}

/// The sorted summary of local Parquet files of `key` and `payload`, in the order given.
pub fn sorted_file_summary(files: &[PathBuf]) -> anyhow::Result<Output> {
    let mut arrays = Vec::new();
    for f in files {
        let file = std::fs::File::open(f).with_context(|| format!("opening {}", f.display()))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
        for b in reader {
            let b = b?;
            let keys = b
                .column_by_name("key")
                .with_context(|| format!("{} has no column key", f.display()))?;
            let keys = keys.as_binary_opt::<i32>().with_context(|| {
                format!("{}: key is {}, not binary", f.display(), keys.data_type())
            })?;
            arrays.push(keys.clone());
        }
    }
    Ok(sorted_summary(arrays.iter()))
}

/// The generated inputs of the chosen workloads, where the cluster reads them and where the
/// yardsticks do (this host), and where outputs go.
pub struct Inputs {
    pub data: DataStore,
    pub text: Option<PreparedData>,
    pub terasort: Option<PreparedData>,
    pub tpch: Option<PreparedData>,
    pub pattern: String,
    /// The word `pattern` looks for.
    pub word: String,
    /// Where Quiver's terasort writes (emptied after each run).
    pub output: Location,
}

/// A location as the path-like argument the example jobs take (URLs pass through unchanged).
fn job_path(location: &Location) -> PathBuf {
    PathBuf::from(location.to_string())
}

impl Inputs {
    /// Makes the inputs of `workloads` at `scale` ready in `data`: `scale` GiB of text and of
    /// records, and TPC-H scale factor `4 × scale` (about 1.1 GiB of line items in memory per
    /// unit); each data set generated once and reused while its manifest matches.
    pub fn prepare(data: DataStore, scale: f64, workloads: &[Workload]) -> anyhow::Result<Inputs> {
        let needs = |set: DataSet| workloads.iter().any(|w| DataSet::of(*w) == set);
        let prepare = |set: DataSet| -> anyhow::Result<Option<PreparedData>> {
            if needs(set) {
                data.prepare(set, scale).map(Some)
            } else {
                Ok(None)
            }
        };
        let (text, terasort, tpch) = (
            prepare(DataSet::Text)?,
            prepare(DataSet::Terasort)?,
            prepare(DataSet::Tpch)?,
        );
        let output = data.location("_scratch/terasort-output")?;
        let word = quiver_examples::rare_word(42);
        Ok(Inputs {
            data,
            text,
            terasort,
            tpch,
            pattern: format!(r"\b{word}\b"),
            word,
            output,
        })
    }

    /// What the report says about the data sets.
    pub fn report(&self) -> Vec<crate::bench_data::DataReport> {
        [&self.text, &self.terasort, &self.tpch]
            .into_iter()
            .flatten()
            .map(PreparedData::report)
            .collect()
    }

    fn set(&self, w: Workload) -> anyhow::Result<&PreparedData> {
        let set = match DataSet::of(w) {
            DataSet::Text => &self.text,
            DataSet::Terasort => &self.terasort,
            DataSet::Tpch => &self.tpch,
        };
        set.as_ref()
            .with_context(|| format!("the inputs of {} were not prepared", w.name()))
    }

    /// Bytes of input files a workload reads (from its manifest).
    pub fn input_bytes(&self, w: Workload) -> anyhow::Result<u64> {
        let m = &self.set(w)?.manifest;
        Ok(match w {
            Workload::TpchQ1 => m.bytes_under("lineitem/"),
            _ => m.bytes_under(""),
        })
    }

    /// Where the cluster reads `w`'s data set, and `table` inside it when given.
    fn cluster_path(&self, w: Workload, table: Option<&str>) -> anyhow::Result<PathBuf> {
        let set = self.set(w)?;
        Ok(match table {
            Some(t) => job_path(&set.location.child(t)?),
            None => job_path(&set.location),
        })
    }

    /// The local copy the yardsticks read.
    fn local_path(&self, w: Workload) -> anyhow::Result<PathBuf> {
        Ok(self.set(w)?.local.clone())
    }

    /// What DuckDB reads for `w`: the same local files as the yardstick.
    pub fn peer_inputs(&self, w: Workload) -> anyhow::Result<PeerInputs<'_>> {
        let local = self.local_path(w)?;
        let (files, orders) = match w {
            Workload::Wordcount | Workload::Grep => {
                (yardsticks::files_under(&local, Some("txt"))?, vec![])
            }
            Workload::Terasort => (yardsticks::files_under(&local, Some("parquet"))?, vec![]),
            Workload::TpchQ1 => (
                yardsticks::files_under(&local.join("lineitem"), Some("parquet"))?,
                vec![],
            ),
            Workload::Join => (
                yardsticks::files_under(&local.join("lineitem"), Some("parquet"))?,
                yardsticks::files_under(&local.join("orders"), Some("parquet"))?,
            ),
        };
        Ok(PeerInputs {
            files,
            orders,
            word: &self.word,
            k: TOP_CUSTOMERS,
        })
    }

    /// Runs the yardstick; returns its result and wall time.
    pub fn yardstick(&self, w: Workload, scratch: &Path) -> anyhow::Result<(Output, Duration)> {
        let local = self.local_path(w)?;
        let started = Instant::now();
        let out = match w {
            Workload::Wordcount => {
                yardsticks::wordcount(&yardsticks::files_under(&local, Some("txt"))?)?
            }
            Workload::Grep => yardsticks::grep(
                &yardsticks::files_under(&local, Some("txt"))?,
                &self.pattern,
            )?,
            Workload::Terasort => {
                let out = scratch.join("yardstick-terasort");
                let result = yardsticks::terasort(&local, &out)?;
                std::fs::remove_dir_all(&out)?;
                result
            }
            Workload::TpchQ1 => yardsticks::tpch_q1(&local.join("lineitem"))?,
            Workload::Join => yardsticks::join(
                &local.join("orders"),
                &local.join("lineitem"),
                TOP_CUSTOMERS,
            )?,
        };
        Ok((out, started.elapsed()))
    }

    /// Runs the workload on Quiver; returns its result, wall time and final progress with its
    /// task attempts.
    pub async fn quiver(
        &self,
        w: Workload,
        client: &Client,
    ) -> anyhow::Result<(Output, Duration, JobProgress)> {
        let options = JobOptions::default();
        let started = Instant::now();
        let (batches, job) = match w {
            Workload::Terasort => {
                // Each run replaces the previous run's output.
                let sink = Sink::WriteParquet {
                    directory: self.output.to_string(),
                    mode: quiver::WriteMode::Overwrite,
                };
                let job = client
                    .submit_with(
                        &terasort::sort_job(&[self.cluster_path(w, None)?])?,
                        sink,
                        "terasort",
                        options,
                    )
                    .await?;
                job.wait().await.context("terasort failed")?;
                (vec![], job)
            }
            _ => {
                let ds = match w {
                    Workload::Wordcount => {
                        quiver_examples::word_count(&[self.cluster_path(w, None)?])?
                    }
                    Workload::Grep => {
                        grep_job::grep_job(&[self.cluster_path(w, None)?], &self.pattern)?
                    }
                    Workload::TpchQ1 => tpch::q1(&[self.cluster_path(w, Some("lineitem"))?])?,
                    _ => tpch::top_customers(
                        &self.cluster_path(w, Some("orders"))?,
                        &self.cluster_path(w, Some("lineitem"))?,
                        TOP_CUSTOMERS as u64,
                    )?,
                };
                let job = client
                    .submit_with(&ds, Sink::Collect, w.name(), options)
                    .await?;
                let batches = job
                    .collect()
                    .await
                    .with_context(|| format!("{} failed", w.name()))?;
                (batches, job)
            }
        };
        let elapsed = started.elapsed();
        // Every attempt of every task, for the per-stage and per-worker figures.
        let progress = job.details().await?;
        let out = match w {
            Workload::Wordcount => Output::Counts(pairs_str_i64(&batches)),
            Workload::Grep => {
                let mut m: Vec<(String, i64)> = batches
                    .iter()
                    .flat_map(|b| {
                        let (p, o) = (
                            b.column(0).as_string::<i32>().clone(),
                            b.column(1).as_primitive::<Int64Type>().clone(),
                        );
                        (0..b.num_rows()).map(move |i| (file_name(p.value(i)), o.value(i)))
                    })
                    .collect();
                m.sort();
                Output::Matches(m)
            }
            Workload::Terasort => {
                let (data, output) = (&self.data, &self.output);
                // Reading back is blocking work: off the runtime's async threads.
                tokio::task::block_in_place(|| -> anyhow::Result<Output> {
                    let out = read_sorted(data, output)?;
                    data.remove(output)?;
                    Ok(out)
                })?
            }
            Workload::TpchQ1 => Output::Q1(q1_rows(&batches)),
            Workload::Join => Output::TopCustomers(
                batches
                    .iter()
                    .flat_map(|b| {
                        let (c, r) = (
                            b.column(0).as_primitive::<Int64Type>().clone(),
                            b.column(1).as_primitive::<Float64Type>().clone(),
                        );
                        (0..b.num_rows()).map(move |i| (c.value(i), r.value(i)))
                    })
                    .collect(),
            ),
        };
        Ok((out, elapsed, progress))
    }
}

fn pairs_str_i64(batches: &[RecordBatch]) -> Vec<(String, i64)> {
    batches
        .iter()
        .flat_map(|b| {
            let (w, n) = (
                b.column(0).as_string::<i32>().clone(),
                b.column(1).as_primitive::<Int64Type>().clone(),
            );
            (0..b.num_rows()).map(move |i| (w.value(i).to_string(), n.value(i)))
        })
        .collect()
}

fn q1_rows(batches: &[RecordBatch]) -> Vec<Q1Row> {
    let mut rows = Vec::new();
    for b in batches {
        let (flag, status) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_string::<i32>(),
        );
        for i in 0..b.num_rows() {
            let v = |c: usize| b.column(c).as_primitive::<Float64Type>().value(i);
            rows.push(Q1Row {
                flag: flag.value(i).to_string(),
                status: status.value(i).to_string(),
                values: [v(2), v(3), v(4), v(5), v(6), v(7), v(8)],
                count: b.column(9).as_primitive::<Int64Type>().value(i),
            });
        }
    }
    rows
}

/// The sorted summary of a terasort output directory, files in name order.
fn read_sorted(data: &DataStore, dir: &Location) -> anyhow::Result<Output> {
    let mut arrays = Vec::new();
    for object in data.parquet_objects(dir)? {
        let reader = ParquetRecordBatchReaderBuilder::try_new(object)?.build()?;
        for b in reader {
            arrays.push(b?.column(0).as_binary::<i32>().clone());
        }
    }
    Ok(sorted_summary(arrays.iter()))
}
