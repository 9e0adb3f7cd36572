//! The workloads behind the example programs and the benchmark suite: deterministic data
//! generators, the jobs themselves (as [`quiver::Dataset`]s), and checks of their output.
//!
//! Each module owns one workload; the example binaries (`terasort.rs`, `tpch_q1.rs`, ...) only
//! parse flags, call into here and print. The benchmark program reuses the same generators and
//! jobs, so what is measured is exactly what the examples run.

pub mod grep;
pub mod pagerank;
pub mod terasort;
pub mod tpch;

use std::path::{Path, PathBuf};

use quiver::arrow::record_batch::RecordBatch;
use quiver::{Client, ClientArgs, Dataset, JobOptions, LocalCluster, Sink};

/// The flags every example takes to say where it runs.
#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    /// Run on this coordinator instead of a local cluster.
    #[arg(long, env = "QUIVER_COORDINATOR")]
    pub coordinator: Option<String>,
    /// The token and TLS settings for --coordinator.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Workers of the local cluster.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
}

/// Runs `dataset` as a collect job named `name` (what the dashboard and `quiver jobs` show)
/// and returns its rows.
pub async fn collect_named(
    client: &Client,
    dataset: &Dataset,
    name: &str,
) -> quiver::Result<Vec<RecordBatch>> {
    let job = client
        .submit_with(dataset, Sink::Collect, name, JobOptions::default())
        .await?;
    job.wait_with_progress().await?;
    job.collect().await
}

/// Logs warnings and errors to stderr (`RUST_LOG` to change).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
}

/// A client, and the local cluster it talks to when no coordinator was named.
pub struct ExampleCluster {
    local: Option<LocalCluster>,
    pub client: Client,
}

impl ExampleCluster {
    /// Connects to `--coordinator`, or starts a local cluster of `--workers` workers.
    pub async fn connect(args: &ClusterArgs) -> quiver::Result<Self> {
        let workers = args.workers;
        match args.coordinator.as_deref() {
            Some(url) => Ok(ExampleCluster {
                local: None,
                client: Client::connect_with(url, args.client.options()).await?,
            }),
            None => {
                let local = LocalCluster::start(workers).await?;
                let client = local.client().await?;
                Ok(ExampleCluster {
                    local: Some(local),
                    client,
                })
            }
        }
    }

    /// Stops the local cluster, if one was started.
    pub async fn shutdown(self) {
        if let Some(local) = self.local {
            local.shutdown().await;
        }
    }
}

/// A directory of generated data under the system's temp directory, made by `generate` the
/// first time and reused afterwards (a `_COMPLETE` marker tells a finished one).
pub fn generated_dir(
    name: &str,
    generate: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(name);
    let marker = dir.join("_COMPLETE");
    if !marker.exists() {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        println!("generating {name} in {} ...", dir.display());
        generate(&dir)?;
        std::fs::write(&marker, b"")?;
    }
    Ok(dir)
}

/// The Parquet files of `dir` (no markers), in name order.
pub fn parquet_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    Ok(files)
}

/// The batches of one Parquet file, read one at a time.
pub fn read_parquet_file(
    path: &Path,
) -> anyhow::Result<impl Iterator<Item = anyhow::Result<arrow::record_batch::RecordBatch>> + use<>>
{
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(path)?,
    )?
    .build()?;
    Ok(reader.map(|b| Ok(b?)))
}

/// Writes `batches` into one Parquet file (Snappy, row groups of `group_rows` rows).
pub fn write_parquet_file(
    path: &Path,
    schema: arrow::datatypes::SchemaRef,
    batches: impl IntoIterator<Item = arrow::record_batch::RecordBatch>,
    group_rows: usize,
) -> anyhow::Result<()> {
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Compression;
    use parquet::file::properties::WriterProperties;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(group_rows))
        .build();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path)?, schema, Some(props))?;
    for b in batches {
        w.write(&b)?;
    }
    w.close()?;
    Ok(())
}

/// `batches` as an aligned text table with a header row.
pub fn format_table(batches: &[arrow::record_batch::RecordBatch]) -> String {
    use arrow::array::Array;
    use arrow::util::display::array_value_to_string;
    let Some(first) = batches.first() else {
        return "(no rows)".into();
    };
    let mut rows: Vec<Vec<String>> = vec![
        first
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect(),
    ];
    for b in batches {
        for r in 0..b.num_rows() {
            rows.push(
                b.columns()
                    .iter()
                    .map(|c| {
                        if c.is_null(r) {
                            "NULL".into()
                        } else {
                            array_value_to_string(c, r).unwrap_or_default()
                        }
                    })
                    .collect(),
            );
        }
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(v, w)| format!("{v:>w$}"))
                .collect::<Vec<_>>()
                .join("  ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}
