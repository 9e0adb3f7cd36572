//! The union: in a stage, each task runs one of the union's inputs — the first
//! `partitions[0]` tasks the first input, the next `partitions[1]` the second, and so on — as
//! that input's partition. This picks the input; the union itself adds no operator.

use quiver_plan::{PlanError, PlanNode};

use crate::error::{Result, WorkerError};

/// The input the task of `partition` runs, and the partition it is of that input.
pub fn union_input<'a>(
    inputs: &'a [PlanNode],
    partitions: &[u32],
    partition: u32,
) -> Result<(&'a PlanNode, u32)> {
    quiver_plan::union_input(inputs, partitions, partition).ok_or_else(|| {
        let total: u64 = partitions.iter().map(|&p| u64::from(p)).sum();
        WorkerError::Plan(PlanError::InvalidPlan(format!(
            "task {partition} is beyond the union's {total} partitions"
        )))
    })
}
