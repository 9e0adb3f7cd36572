//! [`Dataset`]: a lazily built, validated plan. Every method checks the new step against the
//! schema it reads, so an unknown column or a type error is reported where it is written, not
//! after submission.

use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use quiver_plan::aggregate::count;
use quiver_plan::{
    AggregateExpr, AggregateMode, CsvOptions, Expr, JoinStrategy, JoinType, PlanNode, ScanNode,
    SchemaRef, Sink, SortExpr, SourceFormat, WriteMode,
};

use crate::client::{Client, JobOptions};
use crate::error::{Error, Result};
use crate::job_handle::{JobHandle, JobProgress};
use crate::source_listing;
use quiver_storage::StorageOptions;

/// A distributed collection of rows with a known schema, described by the steps that make it.
///
/// Nothing runs until a sink (`collect`, `count`, `write_parquet`) submits it to a cluster.
///
/// ```no_run
/// use quiver::prelude::*;
///
/// # async fn run() -> quiver::Result<()> {
/// let cluster = LocalCluster::start(2).await?;
/// let client = cluster.client().await?;
/// let counts = Dataset::read_text(&["corpus/"])?
///     .select([words(col("line")).alias("word")])?
///     .explode("word")?
///     .select([lower(col("word")).alias("word")])?
///     .group_by(["word"])
///     .agg([count().alias("count")])?;
/// let batches = counts.collect(&client).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Dataset {
    plan: PlanNode,
    schema: SchemaRef,
}

impl Dataset {
    fn new(plan: PlanNode) -> Result<Self> {
        let schema = plan.schema()?;
        Ok(Dataset { plan, schema })
    }

    fn source(format: SourceFormat, paths: &[impl AsRef<Path>], csv: CsvOptions) -> Result<Self> {
        Self::source_with(format, paths, csv, false, &StorageOptions::new())
    }

    /// A scan of `paths` (local paths or object store URLs, listed with `storage`).
    pub(crate) fn source_with(
        format: SourceFormat,
        paths: &[impl AsRef<Path>],
        csv: CsvOptions,
        positions: bool,
        storage: &StorageOptions,
    ) -> Result<Self> {
        let paths: Vec<PathBuf> = paths.iter().map(|p| p.as_ref().to_path_buf()).collect();
        let mut files = source_listing::list_files(&paths, storage)?;
        let schema = match format {
            SourceFormat::Text if positions => ScanNode::text_schema_with_positions(),
            SourceFormat::Text => ScanNode::text_schema(),
            SourceFormat::Parquet => source_listing::inspect_parquet(&mut files, storage)?,
            SourceFormat::Csv => source_listing::infer_csv_schema(&files, &csv, storage)?,
        };
        Dataset::new(PlanNode::Scan(ScanNode {
            format,
            files,
            schema,
            csv,
        }))
    }

    /// UTF-8 text files (or directories of them), one row per line in a column `line`.
    /// Lines end at `\n`; a `\r` before it is dropped.
    ///
    /// Every source takes local paths, object store URLs (`s3://bucket/logs/`,
    /// `gs://...`, `az://...`, `https://...`) and globs in the last segments
    /// (`s3://bucket/logs/2024-*/*.txt`); credentials come from the environment, or from
    /// [`crate::Sources::with_storage`].
    pub fn read_text(paths: &[impl AsRef<Path>]) -> Result<Self> {
        Self::source(SourceFormat::Text, paths, CsvOptions::default())
    }

    /// Like [`Dataset::read_text`], with two more columns: `path` (the file) and `offset`
    /// (the byte offset where the line starts in it), e.g. to report where matches are.
    pub fn read_text_with_positions(paths: &[impl AsRef<Path>]) -> Result<Self> {
        Self::source_with(
            SourceFormat::Text,
            paths,
            CsvOptions::default(),
            true,
            &StorageOptions::new(),
        )
    }

    /// Parquet files (or directories of them), which must share one schema.
    pub fn read_parquet(paths: &[impl AsRef<Path>]) -> Result<Self> {
        Self::source(SourceFormat::Parquet, paths, CsvOptions::default())
    }

    /// CSV files with a header row, comma-separated; the schema is inferred from the first file.
    pub fn read_csv(paths: &[impl AsRef<Path>]) -> Result<Self> {
        Self::source(SourceFormat::Csv, paths, CsvOptions::default())
    }

    /// CSV files with explicit options.
    pub fn read_csv_with(paths: &[impl AsRef<Path>], options: CsvOptions) -> Result<Self> {
        Self::source(SourceFormat::Csv, paths, options)
    }

    /// The schema of the rows.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The plan that makes these rows.
    pub fn plan(&self) -> &PlanNode {
        &self.plan
    }

    /// Keeps the rows where `predicate` is true.
    pub fn filter(self, predicate: Expr) -> Result<Self> {
        Dataset::new(PlanNode::Filter {
            input: Box::new(self.plan),
            predicate,
        })
    }

    /// Computes exactly these columns (each named by its alias, or its column name).
    pub fn select(self, exprs: impl IntoIterator<Item = Expr>) -> Result<Self> {
        Dataset::new(PlanNode::Project {
            input: Box::new(self.plan),
            exprs: exprs.into_iter().collect(),
        })
    }

    /// Adds a column, or replaces the column of that name.
    pub fn with_column(self, name: &str, expr: Expr) -> Result<Self> {
        let mut exprs: Vec<Expr> = self
            .schema
            .fields()
            .iter()
            .map(|f| Expr::Column(f.name().clone()))
            .collect();
        let new = expr.alias(name);
        match self.schema.index_of(name) {
            Ok(i) => exprs[i] = new,
            Err(_) => exprs.push(new),
        }
        self.select(exprs)
    }

    /// One row per element of the list column `column` (other columns repeated); rows with
    /// an empty or null list disappear.
    pub fn explode(self, column: &str) -> Result<Self> {
        Dataset::new(PlanNode::Explode {
            input: Box::new(self.plan),
            column: column.to_string(),
        })
    }

    /// Applies the user batch function `function` (registered on the workers) to every
    /// batch; it produces batches of `schema` (see [`crate::FunctionRegistry::batch_schema`]).
    pub fn map_batches(self, function: &str, schema: SchemaRef) -> Result<Self> {
        Dataset::new(PlanNode::MapBatches {
            input: Box::new(self.plan),
            function: function.to_string(),
            schema,
        })
    }

    /// Applies the user flat-map function `function` (registered on the workers): each row
    /// becomes zero or more rows of `schema` (see [`crate::FunctionRegistry::flat_map_schema`]).
    pub fn flat_map(self, function: &str, schema: SchemaRef) -> Result<Self> {
        Dataset::new(PlanNode::FlatMap {
            input: Box::new(self.plan),
            function: function.to_string(),
            schema,
        })
    }

    /// At most `n` rows. Without a sort, which rows is not specified; tasks stop reading their
    /// input once they have `n`.
    pub fn limit(self, n: u64) -> Result<Self> {
        Dataset::new(PlanNode::Limit {
            input: Box::new(self.plan),
            n,
        })
    }

    /// Redistributes the rows into `partitions` partitions, by hash of the named columns (rows
    /// with equal keys end up together), or round-robin when no column is named.
    pub fn repartition(
        self,
        partitions: u32,
        keys: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Self> {
        Dataset::new(PlanNode::Repartition {
            input: Box::new(self.plan),
            partitions,
            keys: keys
                .into_iter()
                .map(|k| Expr::Column(k.as_ref().to_string()))
                .collect(),
        })
    }

    /// Each distinct row once.
    pub fn distinct(self) -> Result<Self> {
        let columns: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        self.group_by(columns).agg([])
    }

    /// Joins with `right` on columns that have the same names on both sides.
    ///
    /// The output has every column of this side, then those of `right` (none for semi and
    /// anti joins). In inner and left joins the `on` columns appear once; any other right
    /// column whose name is taken gets the suffix `_right`. Rows with a NULL key match
    /// nothing. A right side that reads at most the job's broadcast threshold (10 MiB by
    /// default) is sent whole to every task of this side instead of shuffling both.
    ///
    /// ```no_run
    /// # use quiver::prelude::*;
    /// # fn f(orders: Dataset, customers: Dataset) -> quiver::Result<Dataset> {
    /// orders.join(customers, ["customer_id"], JoinType::Inner)
    /// # }
    /// ```
    pub fn join(
        self,
        right: Dataset,
        on: impl IntoIterator<Item = impl AsRef<str>>,
        how: JoinType,
    ) -> Result<Self> {
        self.join_with(right, JoinOn::columns(on).how(how))
    }

    /// Joins with `right` as `spec` says: key pairs with different names or expressions, the
    /// join type and the strategy (see [`Dataset::join`] for the output columns).
    ///
    /// ```no_run
    /// # use quiver::prelude::*;
    /// # fn f(orders: Dataset, lineitem: Dataset) -> quiver::Result<Dataset> {
    /// let spec = JoinOn::pairs([("o_orderkey", "l_orderkey")])
    ///     .how(JoinType::Left)
    ///     .strategy(JoinStrategy::Shuffle);
    /// orders.join_with(lineitem, spec)
    /// # }
    /// ```
    pub fn join_with(self, right: Dataset, spec: JoinOn) -> Result<Self> {
        Dataset::new(PlanNode::Join {
            left: Box::new(self.plan),
            right: Box::new(right.plan),
            left_keys: spec.left_keys,
            right_keys: spec.right_keys,
            join_type: spec.how,
            strategy: spec.strategy,
        })
    }

    /// Sorts all rows by `order` (expressions sort ascending, nulls last; use
    /// [`crate::functions::desc`] and `.nulls_first()` for others). The result's partitions
    /// are in order, so `collect` returns sorted rows and `write_parquet` writes files whose
    /// names sort in the rows' order.
    ///
    /// ```no_run
    /// # use quiver::prelude::*;
    /// # fn f(sales: Dataset) -> quiver::Result<Dataset> {
    /// sales.sort([desc(col("revenue")), asc(col("region")).nulls_first()])
    /// # }
    /// ```
    pub fn sort(self, order: impl IntoIterator<Item = impl Into<SortExpr>>) -> Result<Self> {
        Dataset::new(PlanNode::Sort {
            input: Box::new(self.plan),
            order: order.into_iter().map(Into::into).collect(),
            limit: None,
        })
    }

    /// The first `k` rows in `order`, without sorting all rows: each task keeps its own first
    /// `k`, and one task merges them. The same as `sort(order)?.limit(k)`.
    pub fn top_k(
        self,
        order: impl IntoIterator<Item = impl Into<SortExpr>>,
        k: u64,
    ) -> Result<Self> {
        Dataset::new(PlanNode::Sort {
            input: Box::new(self.plan),
            order: order.into_iter().map(Into::into).collect(),
            limit: Some(k),
        })
    }

    /// The rows of this dataset and of `other`, which must have the same column names and
    /// types in the same order. Duplicates are kept (follow with `distinct` to drop them).
    pub fn union(self, other: Dataset) -> Result<Self> {
        let mut inputs = match self.plan {
            PlanNode::Union { inputs, .. } => inputs,
            plan => vec![plan],
        };
        inputs.push(other.plan);
        Dataset::new(PlanNode::Union {
            inputs,
            partitions: vec![],
        })
    }

    /// Groups rows by the named columns; finish with [`GroupedDataset::agg`].
    pub fn group_by(self, keys: impl IntoIterator<Item = impl AsRef<str>>) -> GroupedDataset {
        GroupedDataset {
            input: self,
            keys: keys
                .into_iter()
                .map(|k| Expr::Column(k.as_ref().to_string()))
                .collect(),
        }
    }

    /// Runs the job on `client`'s cluster and returns every row.
    pub async fn collect(&self, client: &Client) -> Result<Vec<RecordBatch>> {
        client.submit(self, Sink::Collect).await?.collect().await
    }

    /// How this dataset would run as a collect job on `client`'s cluster, without running it:
    /// see [`Client::explain`].
    pub async fn explain(&self, client: &Client) -> Result<crate::Explanation> {
        client
            .explain(self, Sink::Collect, JobOptions::default())
            .await
    }

    /// Runs the job and returns the number of rows.
    pub async fn count(&self, client: &Client) -> Result<u64> {
        let counted = Dataset::new(PlanNode::Aggregate {
            input: Box::new(self.plan.clone()),
            keys: vec![],
            aggregates: vec![count().alias("count")],
            mode: AggregateMode::Single,
            filter: None,
        })?;
        let batches = counted.collect(client).await?;
        let total = batches
            .iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .map_or(0, |a| a.value(0))
            })
            .sum::<i64>();
        Ok(total as u64)
    }

    /// Writes the rows as Parquet files into `directory` — a local path or an object store
    /// URL such as `s3://bucket/out/` — and waits for the job: one `part-NNNNN.parquet` per
    /// final partition and an empty `_SUCCESS` marker. Nothing becomes visible until every
    /// task finished: a failed or cancelled job leaves no files behind.
    ///
    /// A directory that already holds data is refused when the job is submitted, unless
    /// [`ParquetWrite::mode`] says [`WriteMode::Overwrite`] (the old files are removed once
    /// the new ones are in place) or [`WriteMode::Append`] (new files are named with the job
    /// id, beside the old ones). An output that cannot be written is refused then too.
    ///
    /// ```no_run
    /// # async fn run(client: &quiver::Client, ds: quiver::Dataset) -> quiver::Result<()> {
    /// use quiver::WriteMode;
    /// ds.write_parquet(client, "s3://bucket/counts/").await?;
    /// ds.write_parquet(client, "/data/counts")
    ///     .mode(WriteMode::Overwrite)
    ///     .name("daily counts")
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn write_parquet<'a>(
        &'a self,
        client: &'a Client,
        directory: impl AsRef<Path>,
    ) -> ParquetWrite<'a> {
        let text = directory.as_ref().to_string_lossy().into_owned();
        // Plain paths become absolute (as the workers and coordinator must see them); URLs
        // stay as written. A text that is neither is refused when submitted.
        let directory = quiver_storage::Location::parse(&text)
            .map(|l| l.to_string())
            .unwrap_or(text);
        ParquetWrite {
            dataset: self,
            client,
            directory,
            mode: WriteMode::default(),
            name: "write_parquet".to_string(),
            options: JobOptions::default(),
        }
    }
}

/// A `write_parquet` job about to be submitted: `.await` it, after choosing its
/// [`WriteMode`] if the default (refuse a directory that holds data) is not wanted.
#[must_use = "nothing is written until the ParquetWrite is awaited"]
pub struct ParquetWrite<'a> {
    dataset: &'a Dataset,
    client: &'a Client,
    directory: String,
    mode: WriteMode,
    name: String,
    options: JobOptions,
}

impl ParquetWrite<'_> {
    /// What to do with data already in the directory.
    pub fn mode(mut self, mode: WriteMode) -> Self {
        self.mode = mode;
        self
    }

    /// The job's name, as `quiver jobs` and the dashboard show it (default `write_parquet`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The job's options (shuffle partitions, batch size, broadcast threshold).
    pub fn options(mut self, options: JobOptions) -> Self {
        self.options = options;
        self
    }

    /// Submits the job and returns at once, to follow it (`progress()`, `wait()`) instead of
    /// awaiting its end.
    pub async fn submit(self) -> Result<JobHandle> {
        let sink = Sink::WriteParquet {
            directory: self.directory,
            mode: self.mode,
        };
        self.client
            .submit_with(self.dataset, sink, &self.name, self.options)
            .await
    }
}

impl<'a> std::future::IntoFuture for ParquetWrite<'a> {
    type Output = Result<JobProgress>;
    type IntoFuture =
        std::pin::Pin<Box<dyn std::future::Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.submit().await?.wait().await })
    }
}

/// How two datasets are joined: the key pairs, the join type and the strategy.
#[derive(Clone, Debug, PartialEq)]
pub struct JoinOn {
    left_keys: Vec<Expr>,
    right_keys: Vec<Expr>,
    how: JoinType,
    strategy: JoinStrategy,
}

impl JoinOn {
    /// An inner join on columns named the same on both sides.
    pub fn columns(names: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        let keys: Vec<Expr> = names
            .into_iter()
            .map(|n| Expr::Column(n.as_ref().to_string()))
            .collect();
        JoinOn::exprs(keys.clone(), keys)
    }

    /// An inner join on pairs of (left column, right column).
    pub fn pairs(pairs: impl IntoIterator<Item = (impl AsRef<str>, impl AsRef<str>)>) -> Self {
        let (left, right) = pairs
            .into_iter()
            .map(|(l, r)| {
                (
                    Expr::Column(l.as_ref().to_string()),
                    Expr::Column(r.as_ref().to_string()),
                )
            })
            .unzip();
        JoinOn::exprs(left, right)
    }

    /// An inner join on `left[i] = right[i]` for expressions of each side.
    pub fn exprs(left: Vec<Expr>, right: Vec<Expr>) -> Self {
        JoinOn {
            left_keys: left,
            right_keys: right,
            how: JoinType::Inner,
            strategy: JoinStrategy::Auto,
        }
    }

    /// Sets the join type.
    pub fn how(mut self, how: JoinType) -> Self {
        self.how = how;
        self
    }

    /// Forces broadcasting the right side or shuffling both (default: by estimated size).
    pub fn strategy(mut self, strategy: JoinStrategy) -> Self {
        self.strategy = strategy;
        self
    }
}

/// A dataset grouped by key columns, waiting for its aggregates.
#[derive(Clone, Debug)]
pub struct GroupedDataset {
    input: Dataset,
    keys: Vec<Expr>,
}

impl GroupedDataset {
    /// One row per distinct key: the keys, then each aggregate.
    pub fn agg(self, aggregates: impl IntoIterator<Item = AggregateExpr>) -> Result<Dataset> {
        let aggregates: Vec<_> = aggregates.into_iter().collect();
        if aggregates.is_empty() && self.keys.is_empty() {
            return Err(Error::Plan(quiver_plan::PlanError::InvalidPlan(
                "agg needs at least one key or one aggregate".into(),
            )));
        }
        Dataset::new(PlanNode::Aggregate {
            input: Box::new(self.input.plan),
            keys: self.keys,
            aggregates,
            mode: AggregateMode::Single,
            filter: None,
        })
    }
}
