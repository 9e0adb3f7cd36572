//! Per-group accumulators of the aggregate functions, with their partial state.
//!
//! Inputs are cast to a few canonical types before they arrive here (Int64, Float64, Utf8), so
//! each accumulator has one tight loop over plain slices. The state layout must match
//! `quiver_plan::aggregate::AggregateExpr::state_fields`.
//!
//! Integer sums are kept in 128 bits, where no realistic input overflows, and narrowed to the
//! Int64 result only when a partial state or the final value is taken: a sum that does not fit
//! is an error naming the aggregate, never a wrapped number.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use quiver_plan::AggregateFunction;

use crate::error::{Result, WorkerError};

/// Interleaved partial sums per group in [`add_by_group`].
const LANES: usize = 4;
/// Up to this many groups, [`add_by_group`] keeps [`LANES`] partial sums per group.
const LANE_GROUPS: usize = 1024;

/// Adds the `i`th of `values` into `sums[groups[i]]` for every row `i` (a count adds ones). With few
/// groups (Q1 has four) consecutive rows mostly hit the same group, and one running sum per
/// group makes each add wait for the previous one: a column-at-a-time aggregate was bound by
/// that latency. Row `i` goes to lane `i % 4` of its group instead, so four adds are in
/// flight; the lanes are summed at the end of the batch.
fn add_by_group<T: Copy + Default>(
    sums: &mut [T],
    groups: &[u32],
    values: impl Iterator<Item = T>,
    add: impl Fn(T, T) -> T,
) {
    let mut values = values;
    let rest = if sums.len() > LANE_GROUPS {
        0
    } else {
        groups.len() - groups.len() % LANES
    };
    if rest > 0 {
        let mut lanes = vec![T::default(); sums.len() * LANES];
        for gs in groups[..rest].chunks_exact(LANES) {
            for (k, (&g, x)) in gs.iter().zip(values.by_ref()).enumerate() {
                let lane = g as usize * LANES + k;
                lanes[lane] = add(lanes[lane], x);
            }
        }
        for (sum, lane) in sums.iter_mut().zip(lanes.chunks_exact(LANES)) {
            *sum = lane.iter().fold(*sum, |s, &x| add(s, x));
        }
    }
    for (&g, x) in groups[rest..].iter().zip(values) {
        let g = g as usize;
        sums[g] = add(sums[g], x);
    }
}

/// [`add_by_group`] over a slice of values: the same sums, in fewer instructions per row
/// (fixed-size chunks of groups and values, no iterator to advance in step).
fn add_slice_by_group<T: Copy + Default>(
    sums: &mut [T],
    groups: &[u32],
    values: &[T],
    add: impl Fn(T, T) -> T,
) {
    let n = groups.len().min(values.len());
    let (groups, values) = (&groups[..n], &values[..n]);
    let rest = if sums.len() > LANE_GROUPS {
        0
    } else {
        n - n % LANES
    };
    if rest > 0 {
        let mut lanes = vec![T::default(); sums.len() * LANES];
        for (gs, xs) in groups[..rest]
            .chunks_exact(LANES)
            .zip(values[..rest].chunks_exact(LANES))
        {
            for k in 0..LANES {
                let lane = gs[k] as usize * LANES + k;
                lanes[lane] = add(lanes[lane], xs[k]);
            }
        }
        for (sum, lane) in sums.iter_mut().zip(lanes.chunks_exact(LANES)) {
            *sum = lane.iter().fold(*sum, |s, &x| add(s, x));
        }
    }
    for (&g, &x) in groups[rest..].iter().zip(&values[rest..]) {
        let g = g as usize;
        sums[g] = add(sums[g], x);
    }
}

/// The number of rows in each of `slots` groups: `out[g]` counts the `g`s of `groups`.
pub fn rows_per_group(groups: &[u32], slots: usize, out: &mut Vec<i64>) {
    out.clear();
    out.resize(slots, 0);
    add_by_group(out, groups, std::iter::repeat(1), |a, b| a + b);
}

/// The batch's sum of `values` in each of `slots` groups (for [`Accumulator::add_group_sums`]).
pub fn sums_per_group(groups: &[u32], values: &[f64], slots: usize) -> Vec<f64> {
    let mut sums = vec![0.0; slots];
    add_slice_by_group(&mut sums, groups, values, |a, b| a + b);
    sums
}

/// Adds an Int64 input without NULLs to `sums`, row by row, by group.
fn add_int_sums(sums: &mut [i128], groups: &[u32], v: &ArrayRef) {
    let values = v.as_primitive::<Int64Type>().values();
    add_by_group(
        sums,
        groups,
        values.iter().map(|&x| i128::from(x)),
        |a, b| a + b,
    );
}

/// Adds a Float64 input without NULLs to `sums`, row by row, by group.
fn add_float_sums(sums: &mut [f64], groups: &[u32], v: &ArrayRef) {
    add_slice_by_group(
        sums,
        groups,
        v.as_primitive::<Float64Type>().values(),
        |a, b| a + b,
    );
}

/// The state of one aggregate over all groups.
pub enum Accumulator {
    Count(Vec<i64>),
    SumInt {
        sums: Vec<i128>,
        seen: Vec<bool>,
    },
    SumFloat {
        sums: Vec<f64>,
        seen: Vec<bool>,
    },
    ExtremeInt {
        values: Vec<i64>,
        seen: Vec<bool>,
        min: bool,
    },
    ExtremeFloat {
        values: Vec<f64>,
        seen: Vec<bool>,
        min: bool,
    },
    ExtremeString {
        values: Vec<Option<String>>,
        min: bool,
    },
    Mean {
        sums: Vec<f64>,
        counts: Vec<i64>,
    },
}

fn better<T: PartialOrd>(min: bool, candidate: &T, current: &T) -> bool {
    if min {
        candidate < current
    } else {
        candidate > current
    }
}

impl Accumulator {
    /// An accumulator for `function` whose final value has type `output`.
    pub fn new(function: AggregateFunction, output: &DataType) -> Self {
        let min = function == AggregateFunction::Min;
        match (function, output) {
            (AggregateFunction::Count, _) => Accumulator::Count(vec![]),
            (AggregateFunction::Sum, DataType::Float64) => Accumulator::SumFloat {
                sums: vec![],
                seen: vec![],
            },
            (AggregateFunction::Sum, _) => Accumulator::SumInt {
                sums: vec![],
                seen: vec![],
            },
            (AggregateFunction::Mean, _) => Accumulator::Mean {
                sums: vec![],
                counts: vec![],
            },
            (_, DataType::Float64) => Accumulator::ExtremeFloat {
                values: vec![],
                seen: vec![],
                min,
            },
            (_, DataType::Utf8) => Accumulator::ExtremeString {
                values: vec![],
                min,
            },
            (_, _) => Accumulator::ExtremeInt {
                values: vec![],
                seen: vec![],
                min,
            },
        }
    }

    /// The type raw input values are cast to before [`Accumulator::update`].
    pub fn input_type(&self) -> Option<DataType> {
        match self {
            Accumulator::Count(_) => None,
            Accumulator::SumInt { .. } | Accumulator::ExtremeInt { .. } => Some(DataType::Int64),
            Accumulator::SumFloat { .. }
            | Accumulator::ExtremeFloat { .. }
            | Accumulator::Mean { .. } => Some(DataType::Float64),
            Accumulator::ExtremeString { .. } => Some(DataType::Utf8),
        }
    }

    /// Makes room for `groups` groups.
    pub fn resize(&mut self, groups: usize) {
        match self {
            Accumulator::Count(c) => c.resize(groups, 0),
            Accumulator::SumInt { sums, seen } => {
                sums.resize(groups, 0);
                seen.resize(groups, false);
            }
            Accumulator::SumFloat { sums, seen } => {
                sums.resize(groups, 0.0);
                seen.resize(groups, false);
            }
            Accumulator::ExtremeInt { values, seen, .. } => {
                values.resize(groups, 0);
                seen.resize(groups, false);
            }
            Accumulator::ExtremeFloat { values, seen, .. } => {
                values.resize(groups, 0.0);
                seen.resize(groups, false);
            }
            Accumulator::ExtremeString { values, .. } => values.resize(groups, None),
            Accumulator::Mean { sums, counts } => {
                sums.resize(groups, 0.0);
                counts.resize(groups, 0);
            }
        }
    }

    /// Adds raw input rows. `values` is `None` only for `count()`. `rows_per_group`, when
    /// given, is the batch's row count in each group ([`rows_per_group`]): counts, and which
    /// groups a sum has seen, come from it, one step per group instead of one per row (the
    /// caller gives it only when the groups are few beside the batch's rows; `None`: one step
    /// per row).
    pub fn update(
        &mut self,
        groups: &[u32],
        rows_per_group: Option<&[i64]>,
        values: Option<&ArrayRef>,
    ) -> Result<()> {
        let values = match (values, self.input_type()) {
            (Some(v), Some(t)) if v.data_type() != &t => Some(cast(v, &t)?),
            (v, _) => v.cloned(),
        };
        let add_counts = |counts: &mut [i64]| match rows_per_group {
            Some(rows) => counts.iter_mut().zip(rows).for_each(|(c, &n)| *c += n),
            None => groups.iter().for_each(|&g| counts[g as usize] += 1),
        };
        let mark_seen = |seen: &mut [bool]| match rows_per_group {
            Some(rows) => seen.iter_mut().zip(rows).for_each(|(s, &n)| *s |= n > 0),
            None => groups.iter().for_each(|&g| seen[g as usize] = true),
        };
        match (self, values) {
            (Accumulator::Count(counts), None) => add_counts(counts),
            (Accumulator::Count(counts), Some(v)) if v.null_count() == 0 => add_counts(counts),
            (Accumulator::Count(counts), Some(v)) => {
                for (i, &g) in groups.iter().enumerate() {
                    if v.is_valid(i) {
                        counts[g as usize] += 1;
                    }
                }
            }
            (Accumulator::Mean { sums, counts }, Some(v)) if v.null_count() == 0 => {
                let v = v.as_primitive::<Float64Type>().values();
                add_slice_by_group(sums, groups, v, |a, b| a + b);
                add_counts(counts);
            }
            // Sums without NULLs: the rows added as `fold` does, the groups seen per group.
            (Accumulator::SumInt { sums, seen }, Some(v)) if v.null_count() == 0 => {
                add_int_sums(sums, groups, &v);
                mark_seen(seen);
            }
            (Accumulator::SumFloat { sums, seen }, Some(v)) if v.null_count() == 0 => {
                add_float_sums(sums, groups, &v);
                mark_seen(seen);
            }
            (Accumulator::Mean { sums, counts }, Some(v)) => {
                let v = v.as_primitive::<Float64Type>();
                for (i, &g) in groups.iter().enumerate() {
                    if v.is_valid(i) {
                        sums[g as usize] += v.value(i);
                        counts[g as usize] += 1;
                    }
                }
            }
            (acc, Some(v)) => acc.fold(groups, &v)?,
            (_, None) => {}
        }
        Ok(())
    }

    /// Whether [`Accumulator::add_group_sums`] can take this aggregate's input: a sum or a
    /// mean of floats.
    pub fn takes_group_sums(&self) -> bool {
        matches!(
            self,
            Accumulator::SumFloat { .. } | Accumulator::Mean { .. }
        )
    }

    /// Adds a batch of Float64 inputs without NULLs given as its sum ([`sums_per_group`]) and
    /// row count ([`rows_per_group`]) in each group: a sum and a mean of the same input
    /// (TPC-H Q1 has two such pairs) add its rows up once.
    pub fn add_group_sums(&mut self, sums_per_group: &[f64], rows_per_group: &[i64]) {
        match self {
            Accumulator::SumFloat { sums, seen } => {
                for ((sum, seen), (&x, &n)) in sums
                    .iter_mut()
                    .zip(seen.iter_mut())
                    .zip(sums_per_group.iter().zip(rows_per_group))
                {
                    if n > 0 {
                        *sum += x;
                        *seen = true;
                    }
                }
            }
            Accumulator::Mean { sums, counts } => {
                for ((sum, count), (&x, &n)) in sums
                    .iter_mut()
                    .zip(counts.iter_mut())
                    .zip(sums_per_group.iter().zip(rows_per_group))
                {
                    *sum += x;
                    *count += n;
                }
            }
            _ => {}
        }
    }

    /// Sum, min and max combine raw values and partial states the same way.
    fn fold(&mut self, groups: &[u32], v: &ArrayRef) -> Result<()> {
        match self {
            // Without NULLs (the usual case) a straight zip, no validity test per row.
            Accumulator::SumInt { sums, seen } if v.null_count() == 0 => {
                add_int_sums(sums, groups, v);
                groups.iter().for_each(|&g| seen[g as usize] = true);
            }
            Accumulator::SumFloat { sums, seen } if v.null_count() == 0 => {
                add_float_sums(sums, groups, v);
                groups.iter().for_each(|&g| seen[g as usize] = true);
            }
            Accumulator::SumInt { sums, seen } => {
                let v = v.as_primitive::<Int64Type>();
                for (i, &g) in groups.iter().enumerate() {
                    if v.is_valid(i) {
                        let g = g as usize;
                        sums[g] += i128::from(v.value(i));
                        seen[g] = true;
                    }
                }
            }
            Accumulator::SumFloat { sums, seen } => {
                let v = v.as_primitive::<Float64Type>();
                for (i, &g) in groups.iter().enumerate() {
                    if v.is_valid(i) {
                        let g = g as usize;
                        sums[g] += v.value(i);
                        seen[g] = true;
                    }
                }
            }
            Accumulator::ExtremeInt { values, seen, min } => {
                let v = v.as_primitive::<Int64Type>();
                for (i, &g) in groups.iter().enumerate() {
                    let g = g as usize;
                    if v.is_valid(i) && (!seen[g] || better(*min, &v.value(i), &values[g])) {
                        values[g] = v.value(i);
                        seen[g] = true;
                    }
                }
            }
            Accumulator::ExtremeFloat { values, seen, min } => {
                let v = v.as_primitive::<Float64Type>();
                for (i, &g) in groups.iter().enumerate() {
                    let g = g as usize;
                    if v.is_valid(i) && (!seen[g] || better(*min, &v.value(i), &values[g])) {
                        values[g] = v.value(i);
                        seen[g] = true;
                    }
                }
            }
            Accumulator::ExtremeString { values, min } => {
                let v = v.as_string::<i32>();
                for (i, &g) in groups.iter().enumerate() {
                    if v.is_valid(i) {
                        let s = v.value(i);
                        let slot = &mut values[g as usize];
                        if slot.as_deref().is_none_or(|cur| better(*min, &s, &cur)) {
                            *slot = Some(s.to_string());
                        }
                    }
                }
            }
            Accumulator::Count(_) | Accumulator::Mean { .. } => {}
        }
        Ok(())
    }

    /// Adds partial states (the columns [`Accumulator::state`] produced elsewhere).
    pub fn merge(&mut self, groups: &[u32], states: &[ArrayRef]) -> Result<()> {
        match self {
            Accumulator::Count(counts) => {
                let c = states[0].as_primitive::<Int64Type>();
                for (i, &g) in groups.iter().enumerate() {
                    if c.is_valid(i) {
                        counts[g as usize] += c.value(i);
                    }
                }
            }
            Accumulator::Mean { sums, counts } => {
                let s = states[0].as_primitive::<Float64Type>();
                let c = states[1].as_primitive::<Int64Type>();
                for (i, &g) in groups.iter().enumerate() {
                    if s.is_valid(i) {
                        sums[g as usize] += s.value(i);
                        counts[g as usize] += c.value(i);
                    }
                }
            }
            _ => {
                let state = match self.input_type() {
                    Some(t) if states[0].data_type() != &t => cast(&states[0], &t)?,
                    _ => states[0].clone(),
                };
                self.fold(groups, &state)?;
            }
        }
        Ok(())
    }

    /// The partial state, one or two columns. `name` names the aggregate in an error.
    pub fn state(&self, name: &str) -> Result<Vec<ArrayRef>> {
        Ok(match self {
            Accumulator::Mean { sums, counts } => vec![
                Arc::new(Float64Array::from(sums.clone())),
                Arc::new(Int64Array::from(counts.clone())),
            ],
            other => vec![other.finish(name)?],
        })
    }

    /// The final values. `name` names the aggregate in an error.
    pub fn finish(&self, name: &str) -> Result<ArrayRef> {
        let masked_i = |v: &[i64], seen: &[bool]| -> ArrayRef {
            Arc::new(Int64Array::from_iter(
                v.iter().zip(seen).map(|(v, s)| s.then_some(*v)),
            ))
        };
        let masked_f = |v: &[f64], seen: &[bool]| -> ArrayRef {
            Arc::new(Float64Array::from_iter(
                v.iter().zip(seen).map(|(v, s)| s.then_some(*v)),
            ))
        };
        Ok(match self {
            Accumulator::Count(c) => Arc::new(Int64Array::from(c.clone())),
            Accumulator::SumInt { sums, seen } => {
                let narrowed = sums
                    .iter()
                    .zip(seen)
                    .map(|(&v, &s)| match i64::try_from(v) {
                        Ok(v) => Ok(s.then_some(v)),
                        Err(_) => Err(WorkerError::SumOverflow {
                            aggregate: name.to_string(),
                            value: v,
                        }),
                    })
                    .collect::<Result<Int64Array>>()?;
                Arc::new(narrowed)
            }
            Accumulator::ExtremeInt { values, seen, .. } => masked_i(values, seen),
            Accumulator::SumFloat { sums, seen } => masked_f(sums, seen),
            Accumulator::ExtremeFloat { values, seen, .. } => masked_f(values, seen),
            Accumulator::ExtremeString { values, .. } => {
                Arc::new(StringArray::from_iter(values.iter().map(|v| v.as_deref())))
            }
            Accumulator::Mean { sums, counts } => Arc::new(Float64Array::from_iter(
                sums.iter()
                    .zip(counts)
                    .map(|(s, &c)| (c > 0).then(|| s / c as f64)),
            )),
        })
    }
}
