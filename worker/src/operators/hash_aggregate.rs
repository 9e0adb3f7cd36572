//! [`HashAggregate`]: group-by with aggregates, in any of the three modes (single, partial
//! before a shuffle, final after it). It consumes its whole input, then emits one row per
//! group in batches.

use arrow::array::ArrayRef;
use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use quiver_plan::{AggregateExpr, AggregateFunction, AggregateMode, Expr};

use super::accumulators::Accumulator;
use super::expr_eval::evaluate;
use super::group_keys::GroupKeys;
use crate::error::Result;
use crate::functions::FunctionRegistry;
use std::sync::Arc;

/// Hash aggregation state of one task.
pub struct HashAggregate {
    keys: Vec<Expr>,
    aggregates: Vec<AggregateExpr>,
    mode: AggregateMode,
    output_schema: SchemaRef,
    groups: GroupKeys,
    accumulators: Vec<Accumulator>,
    /// Reused between batches: the group index of each input row.
    group_ids: Vec<u32>,
    functions: Arc<FunctionRegistry>,
}

impl HashAggregate {
    /// `input_schema` is what arrives; `output_schema` what the plan says this node produces.
    pub fn new(
        input_schema: &SchemaRef,
        keys: Vec<Expr>,
        aggregates: Vec<AggregateExpr>,
        mode: AggregateMode,
        output_schema: SchemaRef,
        functions: Arc<FunctionRegistry>,
    ) -> Result<Self> {
        let key_types = keys
            .iter()
            .map(|k| k.data_type(input_schema, "group_by"))
            .collect::<quiver_plan::Result<Vec<_>>>()?;
        // Final outputs are the single-mode output types; in partial mode the state columns
        // of sum/min/max/count carry the final type too, and mean is built from sum + count.
        let single_types: Vec<_> = match mode {
            AggregateMode::Final => {
                let offset = keys.len();
                aggregates
                    .iter()
                    .enumerate()
                    .map(|(i, _)| output_schema.field(offset + i).data_type().clone())
                    .collect()
            }
            _ => aggregates
                .iter()
                .map(|a| a.output_type(input_schema))
                .collect::<quiver_plan::Result<_>>()?,
        };
        let accumulators = aggregates
            .iter()
            .zip(&single_types)
            .map(|(a, t)| Accumulator::new(a.function, t))
            .collect();
        Ok(HashAggregate {
            groups: GroupKeys::new(&key_types)?,
            keys,
            aggregates,
            mode,
            output_schema,
            accumulators,
            group_ids: Vec::new(),
            functions,
        })
    }

    /// Adds one input batch.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let key_arrays = self
            .keys
            .iter()
            .map(|k| evaluate(k, batch, &self.functions))
            .collect::<Result<Vec<_>>>()?;
        self.groups
            .intern(&key_arrays, batch.num_rows(), &mut self.group_ids)?;
        let n_groups = self.groups.len();
        let mut state_column = self.keys.len();
        for (acc, agg) in self.accumulators.iter_mut().zip(&self.aggregates) {
            acc.resize(n_groups);
            match self.mode {
                AggregateMode::Final => {
                    let width = if agg.function == AggregateFunction::Mean {
                        2
                    } else {
                        1
                    };
                    let states = &batch.columns()[state_column..state_column + width];
                    acc.merge(&self.group_ids, states)?;
                    state_column += width;
                }
                AggregateMode::Single | AggregateMode::Partial => {
                    let values = agg
                        .input
                        .as_ref()
                        .map(|e| evaluate(e, batch, &self.functions))
                        .transpose()?;
                    acc.update(&self.group_ids, values.as_ref())?;
                }
            }
        }
        Ok(())
    }

    /// Emits one row per group, in batches of at most `batch_size` rows.
    pub fn finish(mut self, batch_size: usize) -> Result<Vec<RecordBatch>> {
        let n_groups = self.groups.len();
        for acc in &mut self.accumulators {
            acc.resize(n_groups);
        }
        let mut columns: Vec<ArrayRef> = self.groups.into_arrays()?;
        for acc in &self.accumulators {
            match self.mode {
                AggregateMode::Partial => columns.extend(acc.state()),
                AggregateMode::Single | AggregateMode::Final => columns.push(acc.finish()),
            }
        }
        let columns = columns
            .into_iter()
            .zip(self.output_schema.fields())
            .map(|(c, f)| {
                Ok(if c.data_type() == f.data_type() {
                    c
                } else {
                    cast(&c, f.data_type())?
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let all = RecordBatch::try_new_with_options(
            self.output_schema.clone(),
            columns,
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(n_groups)),
        )?;
        let batch_size = batch_size.max(1);
        Ok((0..n_groups)
            .step_by(batch_size)
            .map(|start| all.slice(start, batch_size.min(n_groups - start)))
            .collect())
    }
}
