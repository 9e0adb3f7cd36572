//! [`PackedKeys`]: grouping by several short string keys (flags, status codes, country codes:
//! TPC-H Q1's `l_returnflag, l_linestatus`) with each row's keys packed into one `u128`, so
//! that a row costs a few byte copies and one integer hash lookup instead of a row-format
//! encoding and a byte-string comparison.
//!
//! Each key column gets a fixed slot of the 16 bytes: a length byte (`0xFF` for NULL), then
//! the string's bytes, zero-padded. The slot widths are chosen from the first batch, with the
//! spare bytes shared out; a later string too long for its slot makes [`PackedKeys::pack`]
//! refuse the batch, and the caller moves the groups to the row format ([`GroupKeys`]
//! does this). Nothing here knows about aggregates.
//!
//! A key column may also come as a `Dictionary(Int32, Utf8)` (a Parquet scan keeps string
//! keys as dictionaries: [`super::dictionary_keys`]). Its values are packed once per batch,
//! and each row takes its key's packed slot. When every key column is a dictionary and the
//! combinations of their values are few, a row's group is found in a dense table indexed by
//! its dictionary keys, without hashing (TPC-H Q1: four groups, 2 × 3 combinations).
//!
//! [`GroupKeys`]: super::group_keys::GroupKeys

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, DictionaryArray, StringArray, StringBuilder};
use arrow::datatypes::Int32Type;

use crate::error::Result;

/// Bytes in a packed key.
const PACKED_BYTES: usize = 16;
/// The length byte of a NULL.
const NULL_LENGTH: u8 = 0xFF;
/// Most combinations of dictionary values (each dictionary's length plus one for NULL,
/// multiplied) for which [`PackedKeys::intern`] uses a dense table instead of hashing.
const DENSE_COMBINATIONS: usize = 4096;

/// Groups keyed by several string columns, packed into one `u128` per row.
pub struct PackedKeys {
    /// Byte offset of each column's slot in the packed key, and the slot's width.
    slots: Vec<(usize, usize)>,
    map: hashbrown::HashMap<u128, u32>,
    /// The packed key of each group, in group order.
    keys: Vec<u128>,
    /// Reused between batches: the packed key of each row.
    scratch: Vec<u128>,
    /// Reused between batches, with dictionary keys: each row's combination of them.
    codes: Vec<u32>,
    /// Reused between batches, with dictionary keys: the group of each combination, or
    /// `u32::MAX` where the batch has not met it yet.
    dense: Vec<u32>,
}

/// The strings of a key column: a `Utf8` array, or the values of a `Dictionary(Int32, Utf8)`.
fn strings_of(column: &ArrayRef) -> Option<&StringArray> {
    match column.as_dictionary_opt::<Int32Type>() {
        Some(dict) => dict.values().as_string_opt::<i32>(),
        None => column.as_string_opt::<i32>(),
    }
}

impl PackedKeys {
    /// Packed keys for `first`, a batch's key columns, if all are `Utf8` and the longest
    /// string of each fits together in 16 bytes (with a length byte each).
    pub fn for_batch(first: &[ArrayRef]) -> Option<Self> {
        let mut widths = Vec::with_capacity(first.len());
        for column in first {
            let strings = strings_of(column)?;
            let longest = strings
                .value_offsets()
                .windows(2)
                .map(|w| (w[1] - w[0]) as usize)
                .max()
                .unwrap_or(0);
            widths.push(longest + 1);
        }
        let needed: usize = widths.iter().sum();
        if first.len() < 2 || needed > PACKED_BYTES {
            return None;
        }
        // Room for somewhat longer strings later: the spare bytes, shared out.
        let spare = (PACKED_BYTES - needed) / first.len();
        let mut slots = Vec::with_capacity(widths.len());
        let mut offset = 0;
        for w in widths {
            let width = (w + spare).min(usize::from(NULL_LENGTH));
            slots.push((offset, width));
            offset += width;
        }
        Some(PackedKeys {
            slots,
            map: hashbrown::HashMap::new(),
            keys: Vec::new(),
            scratch: Vec::new(),
            codes: Vec::new(),
            dense: Vec::new(),
        })
    }

    /// How many groups exist.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no group exists yet.
    /// (Exported, beside `len`, only where the module is: feature `internals`.)
    #[cfg(feature = "internals")]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Bytes held, for memory accounting.
    pub fn allocated_bytes(&self) -> usize {
        self.map.capacity() * 32
            + (self.keys.capacity() + self.scratch.capacity()) * 16
            + (self.codes.capacity() + self.dense.capacity()) * 4
    }

    /// Writes the group of each of the `rows` rows of `columns` into `out`. Returns false,
    /// changing nothing, when a string does not fit its slot.
    pub fn intern(&mut self, columns: &[ArrayRef], rows: usize, out: &mut Vec<u32>) -> bool {
        if let Some(done) = self.intern_dense(columns, rows, out) {
            return done;
        }
        if !self.pack(columns, rows) {
            return false;
        }
        let PackedKeys {
            map, keys, scratch, ..
        } = self;
        out.extend(scratch.iter().map(|&k| {
            *map.entry(k).or_insert_with(|| {
                keys.push(k);
                (keys.len() - 1) as u32
            })
        }));
        true
    }

    /// Packs every row's keys into `self.scratch`; false if one does not fit.
    fn pack(&mut self, columns: &[ArrayRef], rows: usize) -> bool {
        self.scratch.clear();
        self.scratch.resize(rows, 0);
        for (column, &(offset, width)) in columns.iter().zip(&self.slots) {
            if let Some(dict) = column.as_dictionary_opt::<Int32Type>() {
                let Some(table) = dictionary_slots(dict, offset, width) else {
                    return false;
                };
                let null_slot = table.len() - 1;
                let keys = dict.keys();
                for (i, (packed, &k)) in self.scratch.iter_mut().zip(keys.values()).enumerate() {
                    let k = if keys.is_valid(i) {
                        k as usize
                    } else {
                        null_slot
                    };
                    *packed |= table[k];
                }
                continue;
            }
            let Some(strings) = column.as_string_opt::<i32>() else {
                return false;
            };
            let values = strings.values();
            let shift = 8 * offset as u32;
            let offsets = strings.value_offsets().windows(2);
            for (i, (packed, w)) in self.scratch.iter_mut().zip(offsets).enumerate() {
                let (start, end) = (w[0] as usize, w[1] as usize);
                let len = end - start;
                if len >= width {
                    if strings.is_null(i) {
                        continue; // a NULL may span bytes; its slot is written below
                    }
                    return false;
                }
                // Built in a register: a byte array and `memcpy` stalled on the reload.
                let mut slot = len as u128;
                for (j, &b) in values[start..end].iter().enumerate() {
                    slot |= u128::from(b) << (8 * (j + 1));
                }
                *packed |= slot << shift;
            }
            if let Some(nulls) = strings.nulls().filter(|n| n.null_count() > 0) {
                let mask = slot_mask(width) << shift;
                for (packed, valid) in self.scratch.iter_mut().zip(nulls.iter()) {
                    if !valid {
                        *packed = (*packed & !mask) | (u128::from(NULL_LENGTH) << shift);
                    }
                }
            }
        }
        true
    }

    /// The dense path of [`PackedKeys::intern`]: `None` unless every column is a dictionary
    /// and their combinations are at most [`DENSE_COMBINATIONS`]; else whether the batch was
    /// interned (false, changing nothing, when a value does not fit its slot).
    fn intern_dense(
        &mut self,
        columns: &[ArrayRef],
        rows: usize,
        out: &mut Vec<u32>,
    ) -> Option<bool> {
        let dicts = columns
            .iter()
            .map(|c| c.as_dictionary_opt::<Int32Type>())
            .collect::<Option<Vec<_>>>()?;
        let combinations = dicts
            .iter()
            .try_fold(1usize, |n, d| n.checked_mul(d.values().len() + 1))
            .filter(|&n| n <= DENSE_COMBINATIONS)?;
        let mut tables = Vec::with_capacity(dicts.len());
        for (dict, &(offset, width)) in dicts.iter().zip(&self.slots) {
            match dictionary_slots(dict, offset, width) {
                Some(table) => tables.push(table),
                None => return Some(false),
            }
        }
        // Each row's combination: its keys as digits, the first column's the lowest.
        self.codes.clear();
        self.codes.resize(rows, 0);
        let mut stride = 1u32;
        for (dict, table) in dicts.iter().zip(&tables) {
            let keys = dict.keys();
            let null_key = (table.len() - 1) as u32;
            if keys.null_count() == 0 {
                for (code, &k) in self.codes.iter_mut().zip(keys.values()) {
                    *code += k as u32 * stride;
                }
            } else {
                for (i, (code, &k)) in self.codes.iter_mut().zip(keys.values()).enumerate() {
                    let k = if keys.is_valid(i) { k as u32 } else { null_key };
                    *code += k * stride;
                }
            }
            stride *= table.len() as u32;
        }
        self.dense.clear();
        self.dense.resize(combinations, u32::MAX);
        let PackedKeys {
            map,
            keys,
            codes,
            dense,
            ..
        } = self;
        out.extend(codes.iter().map(|&code| {
            let g = dense[code as usize];
            if g != u32::MAX {
                return g;
            }
            let mut rest = code as usize;
            let mut packed = 0u128;
            for table in &tables {
                packed |= table[rest % table.len()];
                rest /= table.len();
            }
            let g = *map.entry(packed).or_insert_with(|| {
                keys.push(packed);
                (keys.len() - 1) as u32
            });
            dense[code as usize] = g;
            g
        }));
        Some(true)
    }

    /// The distinct keys, one `Utf8` array per key column, in group order.
    pub fn into_arrays(self) -> Result<Vec<ArrayRef>> {
        self.slots
            .iter()
            .map(|&(offset, _)| {
                let mut builder = StringBuilder::with_capacity(self.keys.len(), self.keys.len());
                for key in &self.keys {
                    let bytes = key.to_le_bytes();
                    let len = bytes[offset];
                    if len == NULL_LENGTH {
                        builder.append_null();
                    } else {
                        let value = &bytes[offset + 1..offset + 1 + usize::from(len)];
                        // Copied whole from a valid string, so valid UTF-8.
                        let value = std::str::from_utf8(value).map_err(|e| {
                            arrow::error::ArrowError::InvalidArgumentError(e.to_string())
                        })?;
                        builder.append_value(value);
                    }
                }
                Ok(Arc::new(builder.finish()) as ArrayRef)
            })
            .collect()
    }
}

/// The packed slot (at byte `offset`, `width` bytes) of each value of `dict`, then one for
/// NULL; `None` if a value does not fit.
fn dictionary_slots(
    dict: &DictionaryArray<Int32Type>,
    offset: usize,
    width: usize,
) -> Option<Vec<u128>> {
    let values = dict.values().as_string_opt::<i32>()?;
    let shift = 8 * offset as u32;
    let null = u128::from(NULL_LENGTH) << shift;
    let mut table = Vec::with_capacity(values.len() + 1);
    for value in values.iter() {
        table.push(match value {
            None => null,
            Some(v) if v.len() >= width => return None,
            Some(v) => {
                let slot = v.bytes().enumerate().fold(v.len() as u128, |slot, (j, b)| {
                    slot | u128::from(b) << (8 * (j + 1))
                });
                slot << shift
            }
        });
    }
    table.push(null);
    Some(table)
}

/// The low `width` bytes set.
fn slot_mask(width: usize) -> u128 {
    if width >= PACKED_BYTES {
        u128::MAX
    } else {
        (1u128 << (8 * width)) - 1
    }
}
