//! [`Int64Keys`]: the group index of one Int64 grouping key (ids: customer keys, order
//! keys), for [`super::group_keys::GroupKeys`].
//!
//! While the distinct keys lie within a narrow range — at most [`DENSE_SLOTS_PER_GROUP`]
//! slots per group, plus [`DENSE_MIN_SLOTS`] — the group of key `k` is `slots[k - base]`: no
//! hashing, no compare, one memory access per row. Keys spread wider go through a hash map;
//! a map whose keys come to fill their range (the groups grow, the range does not) moves to
//! the array, and an array whose range would grow past the limit moves back to the map.
//! Either way a group keeps its index, so the accumulators never notice.

use arrow::array::{Array, Int64Array};

/// At most this many array slots (4 bytes each) per group: no more memory than the hash map
/// (16 bytes an entry, plus its empty ones) holds for the same groups, roughly.
const DENSE_SLOTS_PER_GROUP: usize = 8;
/// Any key range this narrow goes into the array however few its groups (256 KiB).
const DENSE_MIN_SLOTS: usize = 1 << 16;
/// An empty slot of the array.
const NO_GROUP: u32 = u32::MAX;

/// Where each key's group is.
enum Index {
    Map(hashbrown::HashMap<i64, u32>),
    /// The group of key `k` is `slots[k - base]`, [`NO_GROUP`] for none yet.
    Dense {
        base: i64,
        slots: Vec<u32>,
    },
}

/// Distinct Int64 keys, each with a dense group index in order of first appearance.
pub struct Int64Keys {
    index: Index,
    /// Each group's key, in group order (0 for the NULL group).
    values: Vec<i64>,
    null_group: Option<u32>,
    /// The smallest and largest non-NULL key so far (`lo > hi` while there is none).
    lo: i64,
    hi: i64,
}

impl Default for Int64Keys {
    fn default() -> Self {
        Int64Keys {
            index: Index::Map(hashbrown::HashMap::new()),
            values: Vec::new(),
            null_group: None,
            lo: i64::MAX,
            hi: i64::MIN,
        }
    }
}

/// Whether `slots` slots (an i128: the span of two i64 keys may not fit an i64) are at most
/// `per_item` per item of `items`, plus `floor`: the test of every table indexed by an Int64
/// key (this group index, the hash join's dense and ranked build tables).
pub(super) fn slots_fit(slots: i128, items: usize, per_item: usize, floor: usize) -> bool {
    slots <= items.saturating_mul(per_item).saturating_add(floor) as i128
}

/// Whether keys in `lo ..= hi` for up to `groups` groups may use the array.
fn fits_dense(lo: i64, hi: i64, groups: usize) -> bool {
    let span = i128::from(hi) - i128::from(lo) + 1;
    slots_fit(span, groups, DENSE_SLOTS_PER_GROUP, DENSE_MIN_SLOTS)
}

/// The NULL key's group, made (with a placeholder value) on first use.
fn null_group_of(null_group: &mut Option<u32>, values: &mut Vec<i64>) -> u32 {
    *null_group.get_or_insert_with(|| {
        values.push(0);
        (values.len() - 1) as u32
    })
}

impl Int64Keys {
    /// No keys yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many groups exist (the NULL group included).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no group exists yet.
    /// (Exported, beside `len`, only where the module is: feature `internals`.)
    #[cfg(feature = "internals")]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether the keys are in the array (for tests).
    #[cfg(test)]
    fn is_dense(&self) -> bool {
        matches!(self.index, Index::Dense { .. })
    }

    /// Roughly the bytes held.
    pub fn allocated_bytes(&self) -> usize {
        self.values.capacity() * 8
            + match &self.index {
                Index::Map(map) => map.capacity() * 16,
                Index::Dense { slots, .. } => slots.capacity() * 4,
            }
    }

    /// Each group's key, in group order, and which group is the NULL key.
    pub fn into_values(self) -> (Vec<i64>, Option<u32>) {
        (self.values, self.null_group)
    }

    /// Writes the group index of every row of `keys` into `out` (appending).
    pub fn intern(&mut self, keys: &Int64Array, out: &mut Vec<u32>) {
        let nulls = keys.nulls().filter(|n| n.null_count() > 0);
        // The batch's key range decides where its keys are looked up.
        let (mut lo, mut hi) = (self.lo, self.hi);
        match nulls {
            None => {
                for &k in keys.values() {
                    lo = lo.min(k);
                    hi = hi.max(k);
                }
            }
            Some(nulls) => {
                for i in nulls.valid_indices() {
                    let k = keys.value(i);
                    lo = lo.min(k);
                    hi = hi.max(k);
                }
            }
        }
        let grows = lo < self.lo || hi > self.hi;
        let was_empty = self.lo > self.hi;
        (self.lo, self.hi) = (lo, hi);
        if lo <= hi {
            match &self.index {
                Index::Dense { base, slots } if grows => {
                    // The array covers `base ..`, as far as this batch's keys or not?
                    // (`hi - base` as unsigned: it may not fit an i64.)
                    let covered =
                        lo >= *base && (hi.wrapping_sub(*base) as u64) < slots.len() as u64;
                    if !covered {
                        let groups = self.values.len() + keys.len();
                        if fits_dense(lo, hi, groups) {
                            // Room to grow by half again on the side that grew, so that keys
                            // rising batch by batch do not copy the array every time.
                            let extra = ((hi - lo) / 2).max(1024);
                            let (new_lo, new_hi) = (
                                if lo < *base {
                                    lo.saturating_sub(extra)
                                } else {
                                    lo.min(*base)
                                },
                                if lo < *base {
                                    hi
                                } else {
                                    hi.saturating_add(extra)
                                },
                            );
                            if fits_dense(new_lo, new_hi, groups) {
                                self.use_array(new_lo, new_hi);
                            } else {
                                self.use_array(lo, hi);
                            }
                        } else {
                            self.use_map();
                        }
                    }
                }
                Index::Map(_) => {
                    // A new aggregation starts in the array when its first batch fits; a map
                    // moves once its groups fill the range enough.
                    let groups = if was_empty {
                        keys.len()
                    } else {
                        self.values.len()
                    };
                    if fits_dense(lo, hi, groups) {
                        self.use_array(lo, hi);
                    }
                }
                Index::Dense { .. } => {}
            }
        }
        out.reserve(keys.len());
        let Int64Keys {
            index,
            values,
            null_group,
            ..
        } = self;
        let is_null = |i: usize| nulls.is_some_and(|n| n.is_null(i));
        match index {
            Index::Dense { base, slots } => {
                for (i, &k) in keys.values().iter().enumerate() {
                    if is_null(i) {
                        out.push(null_group_of(null_group, values));
                        continue;
                    }
                    // In range: the array was sized to this batch's keys above.
                    let slot = &mut slots[(k - *base) as usize];
                    if *slot == NO_GROUP {
                        *slot = values.len() as u32;
                        values.push(k);
                    }
                    out.push(*slot);
                }
            }
            Index::Map(map) => {
                for (i, &k) in keys.values().iter().enumerate() {
                    if is_null(i) {
                        out.push(null_group_of(null_group, values));
                        continue;
                    }
                    out.push(*map.entry(k).or_insert_with(|| {
                        values.push(k);
                        (values.len() - 1) as u32
                    }));
                }
            }
        }
    }

    /// Puts every group into an array covering `lo ..= hi` (which holds every key so far).
    fn use_array(&mut self, lo: i64, hi: i64) {
        let mut slots = vec![NO_GROUP; (hi - lo) as usize + 1];
        for (g, &k) in self.values.iter().enumerate() {
            if Some(g as u32) != self.null_group {
                slots[(k - lo) as usize] = g as u32;
            }
        }
        self.index = Index::Dense { base: lo, slots };
    }

    /// Puts every group into the hash map.
    fn use_map(&mut self) {
        let mut map = hashbrown::HashMap::with_capacity(self.values.len());
        for (g, &k) in self.values.iter().enumerate() {
            if Some(g as u32) != self.null_group {
                map.insert(k, g as u32);
            }
        }
        self.index = Index::Map(map);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Group indices the plain way: in order of first appearance, NULL a group of its own.
    fn reference(batches: &[Vec<Option<i64>>]) -> (Vec<u32>, Vec<Option<i64>>) {
        let mut seen: HashMap<Option<i64>, u32> = HashMap::new();
        let mut keys = Vec::new();
        let mut ids = Vec::new();
        for k in batches.iter().flatten() {
            let next = seen.len() as u32;
            let g = *seen.entry(*k).or_insert_with(|| {
                keys.push(*k);
                next
            });
            ids.push(g);
        }
        (ids, keys)
    }

    /// Narrow keys take the array, wide ones the map, and a key table moving between the two
    /// (a range that grows past the limit, a map whose groups fill its range) keeps every
    /// group's index: the same indices and keys as the plain reference.
    #[test]
    fn dense_and_hashed_keys_give_the_same_groups() {
        let wide = i64::MAX - 5;
        let filling: Vec<Vec<Option<i64>>> = (0..3)
            .map(|b| (0..40_000).map(|i| Some(i * 16 + b)).collect())
            .collect();
        let cases: Vec<(Vec<Vec<Option<i64>>>, bool)> = vec![
            // Narrow from the start, with NULLs and negative keys; rising keys outgrow the array.
            (
                vec![
                    vec![Some(5), None, Some(-3), Some(5), Some(7)],
                    vec![Some(7), Some(-3), None, Some(100)],
                    (2000..3000).map(Some).collect(),
                    (5000..9000).rev().map(Some).collect(),
                ],
                true,
            ),
            // Narrow, then a key far away: back to the map.
            (
                vec![vec![Some(1), Some(2), Some(1)], vec![Some(wide), Some(2)]],
                false,
            ),
            // Narrow below zero, then the largest key: the span overflows an i64.
            (
                vec![vec![Some(-5), Some(-3)], vec![Some(i64::MAX), Some(-5)]],
                false,
            ),
            // Wide from the start, including both ends of i64.
            (
                vec![vec![Some(i64::MIN), Some(0), Some(i64::MAX), Some(0)]],
                false,
            ),
            // Keys 16 apart over 640k slots: the map until the groups fill the range, then the
            // array; the range growing below the array's base later.
            (filling.clone(), true),
            (
                [filling, vec![vec![Some(-1000), Some(4), Some(-1000)]]].concat(),
                true,
            ),
            // Only NULLs.
            (vec![vec![None, None]], false),
        ];
        for (i, (batches, dense)) in cases.iter().enumerate() {
            let mut keys = Int64Keys::new();
            let mut ids = Vec::new();
            for batch in batches {
                keys.intern(&Int64Array::from(batch.clone()), &mut ids);
            }
            let (want_ids, want_keys) = reference(batches);
            assert_eq!(keys.is_dense(), *dense, "case {i}");
            assert_eq!(ids, want_ids, "case {i}");
            let (values, null_group) = keys.into_values();
            let got: Vec<Option<i64>> = values
                .iter()
                .enumerate()
                .map(|(g, &v)| (Some(g as u32) != null_group).then_some(v))
                .collect();
            assert_eq!(got, want_keys, "case {i}");
        }
    }
}
