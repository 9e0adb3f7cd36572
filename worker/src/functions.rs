//! [`FunctionRegistry`]: user functions, registered by name, compiled into the worker.
//!
//! Rust closures cannot travel over the network, so a job names its functions and every worker
//! that runs it must have them registered. `quiver-worker` has none; a user with functions runs
//! workers from their own binary (see the SDK's worker entry point). Three kinds:
//! - scalar (row) functions: `&[ScalarValue] -> ScalarValue`, used in expressions;
//! - batch functions: `RecordBatch -> RecordBatch`, a plan step of their own;
//! - flat-map functions: one row -> zero or more rows, a plan step of their own.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, BooleanBuilder, Float64Builder, Int64Builder,
    StringBuilder, new_null_array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use quiver_plan::{Expr, PlanError, ScalarValue};

use crate::error::{Result, WorkerError};

type ScalarFn = dyn Fn(&[ScalarValue]) -> std::result::Result<ScalarValue, String> + Send + Sync;
type BatchFn = dyn Fn(RecordBatch) -> std::result::Result<RecordBatch, String> + Send + Sync;
type FlatMapFn =
    dyn Fn(&[ScalarValue]) -> std::result::Result<Vec<Vec<ScalarValue>>, String> + Send + Sync;

#[derive(Clone)]
struct ScalarUdf {
    return_type: DataType,
    f: Arc<ScalarFn>,
}

#[derive(Clone)]
struct BatchUdf {
    schema: SchemaRef,
    f: Arc<BatchFn>,
}

#[derive(Clone)]
struct FlatMapUdf {
    schema: SchemaRef,
    f: Arc<FlatMapFn>,
}

/// The user functions a worker can run.
#[derive(Clone, Default)]
pub struct FunctionRegistry {
    scalar: BTreeMap<String, ScalarUdf>,
    batch: BTreeMap<String, BatchUdf>,
    flat_map: BTreeMap<String, FlatMapUdf>,
}

impl std::fmt::Debug for FunctionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl FunctionRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a row function returning `return_type` (Int64, Float64, Utf8 or Boolean).
    /// Its arguments arrive as `ScalarValue`s (integers as Int64, floats as Float64).
    pub fn register_scalar(
        &mut self,
        name: &str,
        return_type: DataType,
        f: impl Fn(&[ScalarValue]) -> std::result::Result<ScalarValue, String> + Send + Sync + 'static,
    ) -> &mut Self {
        self.scalar.insert(
            name.to_string(),
            ScalarUdf {
                return_type,
                f: Arc::new(f),
            },
        );
        self
    }

    /// Registers a batch function producing batches of `schema`.
    pub fn register_batch(
        &mut self,
        name: &str,
        schema: SchemaRef,
        f: impl Fn(RecordBatch) -> std::result::Result<RecordBatch, String> + Send + Sync + 'static,
    ) -> &mut Self {
        self.batch.insert(
            name.to_string(),
            BatchUdf {
                schema,
                f: Arc::new(f),
            },
        );
        self
    }

    /// Registers a flat-map function producing rows of `schema` (values per row in the
    /// schema's column order).
    pub fn register_flat_map(
        &mut self,
        name: &str,
        schema: SchemaRef,
        f: impl Fn(&[ScalarValue]) -> std::result::Result<Vec<Vec<ScalarValue>>, String>
        + Send
        + Sync
        + 'static,
    ) -> &mut Self {
        self.flat_map.insert(
            name.to_string(),
            FlatMapUdf {
                schema,
                f: Arc::new(f),
            },
        );
        self
    }

    /// Every registered name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .scalar
            .keys()
            .chain(self.batch.keys())
            .chain(self.flat_map.keys())
            .cloned()
            .collect();
        names.sort();
        names
    }

    fn unknown(&self, name: &str) -> PlanError {
        PlanError::UnknownUserFunction {
            name: name.to_string(),
            registered: self.names(),
        }
    }

    /// An expression calling the row function `name` with `args`, typed by its registration.
    pub fn call(&self, name: &str, args: Vec<Expr>) -> Result<Expr, PlanError> {
        let udf = self.scalar.get(name).ok_or_else(|| self.unknown(name))?;
        Ok(Expr::Udf {
            name: name.to_string(),
            args,
            return_type: udf.return_type.clone(),
        })
    }

    /// The output schema of the batch function `name`.
    pub fn batch_schema(&self, name: &str) -> Result<SchemaRef, PlanError> {
        Ok(self
            .batch
            .get(name)
            .ok_or_else(|| self.unknown(name))?
            .schema
            .clone())
    }

    /// The output schema of the flat-map function `name`.
    pub fn flat_map_schema(&self, name: &str) -> Result<SchemaRef, PlanError> {
        Ok(self
            .flat_map
            .get(name)
            .ok_or_else(|| self.unknown(name))?
            .schema
            .clone())
    }

    /// Applies the row function `name` to every row of `args`.
    pub fn eval_scalar(&self, name: &str, args: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
        let udf = self.scalar.get(name).ok_or_else(|| self.unknown(name))?;
        let args = canonical(args)?;
        let mut out = OutputColumn::new(&udf.return_type, rows)?;
        let mut row = Vec::with_capacity(args.len());
        for i in 0..rows {
            row.clear();
            row.extend(args.iter().map(|a| scalar_at(a, i)));
            let v = (udf.f)(&row).map_err(|message| user_error(name, message))?;
            out.push(name, v)?;
        }
        Ok(out.finish())
    }

    /// Applies the batch function `name`.
    pub fn eval_batch(&self, name: &str, batch: RecordBatch) -> Result<RecordBatch> {
        let udf = self.batch.get(name).ok_or_else(|| self.unknown(name))?;
        let out = (udf.f)(batch).map_err(|message| user_error(name, message))?;
        RecordBatch::try_new(udf.schema.clone(), out.columns().to_vec()).map_err(|e| {
            user_error(
                name,
                format!("returned a batch that does not match its declared schema: {e}"),
            )
        })
    }

    /// Applies the flat-map function `name` to every row of `batch`.
    pub fn eval_flat_map(&self, name: &str, batch: &RecordBatch) -> Result<RecordBatch> {
        let udf = self.flat_map.get(name).ok_or_else(|| self.unknown(name))?;
        let args = canonical(batch.columns())?;
        let mut columns = udf
            .schema
            .fields()
            .iter()
            .map(|f| OutputColumn::new(f.data_type(), batch.num_rows()))
            .collect::<Result<Vec<_>>>()?;
        let mut row = Vec::with_capacity(args.len());
        for i in 0..batch.num_rows() {
            row.clear();
            row.extend(args.iter().map(|a| scalar_at(a, i)));
            for out_row in (udf.f)(&row).map_err(|message| user_error(name, message))? {
                if out_row.len() != columns.len() {
                    return Err(user_error(
                        name,
                        format!(
                            "returned a row of {} values; its schema has {}",
                            out_row.len(),
                            columns.len()
                        ),
                    ));
                }
                for (c, v) in columns.iter_mut().zip(out_row) {
                    c.push(name, v)?;
                }
            }
        }
        let columns: Vec<ArrayRef> = columns.into_iter().map(OutputColumn::finish).collect();
        Ok(RecordBatch::try_new(udf.schema.clone(), columns)?)
    }
}

fn user_error(name: &str, message: String) -> WorkerError {
    WorkerError::UserFunction {
        name: name.to_string(),
        message,
    }
}

/// Casts arguments to the types functions see: Int64, Float64, Utf8, Boolean.
fn canonical(arrays: &[ArrayRef]) -> Result<Vec<ArrayRef>> {
    arrays
        .iter()
        .map(|a| {
            let t = a.data_type();
            let target = if t.is_integer() {
                DataType::Int64
            } else if t.is_floating() {
                DataType::Float64
            } else if quiver_plan::types::is_string(t) {
                DataType::Utf8
            } else {
                return Ok(a.clone());
            };
            Ok(if *t == target {
                a.clone()
            } else {
                cast(a, &target)?
            })
        })
        .collect()
}

fn scalar_at(a: &ArrayRef, i: usize) -> ScalarValue {
    if a.is_null(i) {
        return ScalarValue::Null;
    }
    match a.data_type() {
        DataType::Int64 => ScalarValue::Int64(a.as_primitive::<Int64Type>().value(i)),
        DataType::Float64 => ScalarValue::Float64(a.as_primitive::<Float64Type>().value(i)),
        DataType::Utf8 => ScalarValue::Utf8(a.as_string::<i32>().value(i).to_string()),
        DataType::Boolean => ScalarValue::Boolean(a.as_boolean().value(i)),
        _ => ScalarValue::Null,
    }
}

/// A column being built from returned values.
enum OutputColumn {
    Int64(Int64Builder),
    Float64(Float64Builder),
    Utf8(StringBuilder),
    Boolean(BooleanBuilder),
    Null(usize),
}

impl OutputColumn {
    fn new(t: &DataType, capacity: usize) -> Result<Self> {
        Ok(match t {
            DataType::Int64 => OutputColumn::Int64(Int64Builder::with_capacity(capacity)),
            DataType::Float64 => OutputColumn::Float64(Float64Builder::with_capacity(capacity)),
            DataType::Utf8 => {
                OutputColumn::Utf8(StringBuilder::with_capacity(capacity, capacity * 8))
            }
            DataType::Boolean => OutputColumn::Boolean(BooleanBuilder::with_capacity(capacity)),
            DataType::Null => OutputColumn::Null(0),
            other => {
                return Err(WorkerError::UserFunction {
                    name: String::new(),
                    message: format!(
                        "user functions may produce Int64, Float64, Utf8 or Boolean values, not {other}"
                    ),
                });
            }
        })
    }

    fn push(&mut self, name: &str, v: ScalarValue) -> Result<()> {
        let mismatch = |v: &ScalarValue, want: &str| {
            user_error(
                name,
                format!("returned {} where {want} was declared", v.data_type()),
            )
        };
        match (self, v) {
            (OutputColumn::Int64(b), ScalarValue::Null) => b.append_null(),
            (OutputColumn::Float64(b), ScalarValue::Null) => b.append_null(),
            (OutputColumn::Utf8(b), ScalarValue::Null) => b.append_null(),
            (OutputColumn::Boolean(b), ScalarValue::Null) => b.append_null(),
            (OutputColumn::Null(n), ScalarValue::Null) => *n += 1,
            (OutputColumn::Int64(b), ScalarValue::Int64(x)) => b.append_value(x),
            (OutputColumn::Float64(b), ScalarValue::Float64(x)) => b.append_value(x),
            (OutputColumn::Float64(b), ScalarValue::Int64(x)) => b.append_value(x as f64),
            (OutputColumn::Utf8(b), ScalarValue::Utf8(s)) => b.append_value(s),
            (OutputColumn::Boolean(b), ScalarValue::Boolean(x)) => b.append_value(x),
            (OutputColumn::Int64(_), v) => return Err(mismatch(&v, "Int64")),
            (OutputColumn::Float64(_), v) => return Err(mismatch(&v, "Float64")),
            (OutputColumn::Utf8(_), v) => return Err(mismatch(&v, "Utf8")),
            (OutputColumn::Boolean(_), v) => return Err(mismatch(&v, "Boolean")),
            (OutputColumn::Null(_), v) => return Err(mismatch(&v, "Null")),
        }
        Ok(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            OutputColumn::Int64(mut b) => Arc::new(b.finish()),
            OutputColumn::Float64(mut b) => Arc::new(b.finish()),
            OutputColumn::Utf8(mut b) => ArrayBuilder::finish(&mut b),
            OutputColumn::Boolean(mut b) => Arc::new(b.finish()),
            OutputColumn::Null(n) => new_null_array(&DataType::Null, n),
        }
    }
}
