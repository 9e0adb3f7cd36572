//! [`GroupKeys`]: maps each input row's grouping key to a dense group index, and turns the
//! distinct keys back into arrays at the end.
//!
//! A single string key (word count's case) is interned directly from the string bytes; any
//! other combination of keys goes through Arrow's row format, which gives one comparable byte
//! string per row. Both keep keys in one growing byte arena and a `hashbrown::HashTable` of
//! group indices, so there is no allocation per group. A single Int64 key (ids) needs no
//! row encoding: [`Int64Keys`] indexes an array by key while the keys are narrow.
//!
//! Key columns may arrive as string dictionaries ([`super::dictionary_keys`]): packed keys
//! read them as they are, every other form decodes them to strings first.

use std::hash::BuildHasher;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, SortField};
use hashbrown::{DefaultHashBuilder, HashTable};

use super::int64_keys::Int64Keys;
use super::packed_keys::PackedKeys;
use crate::error::Result;

/// Whether two keys are equal. Keys are mostly short (words, codes, encoded ids), and for
/// those a branch-free byte loop beats a call to `memcmp`, which was a fifth of word count.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() <= 32 {
        return a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0;
    }
    a == b
}

/// Distinct byte strings, each with a dense index (the arena behind [`GroupKeys`]).
#[derive(Default)]
pub struct ByteInterner {
    table: HashTable<u32>,
    hashes: Vec<u64>,
    offsets: Vec<usize>,
    bytes: Vec<u8>,
    hasher: DefaultHashBuilder,
}

impl ByteInterner {
    /// An empty interner.
    pub fn new() -> Self {
        ByteInterner {
            offsets: vec![0],
            ..Default::default()
        }
    }

    /// The bytes of key `g`.
    pub fn get(&self, g: u32) -> &[u8] {
        let g = g as usize;
        &self.bytes[self.offsets[g]..self.offsets[g + 1]]
    }

    /// The index of `key`, if it was interned.
    pub fn find(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        self.table
            .find(hash, |&g| same_bytes(self.get(g), key))
            .copied()
    }

    /// The index of `key`, interning it if it is new.
    pub fn intern(&mut self, key: &[u8]) -> u32 {
        let hash = self.hasher.hash_one(key);
        let ByteInterner {
            table,
            hashes,
            offsets,
            bytes,
            ..
        } = self;
        let existing = table.find(hash, |&g| {
            let g = g as usize;
            same_bytes(&bytes[offsets[g]..offsets[g + 1]], key)
        });
        if let Some(&g) = existing {
            return g;
        }
        let g = hashes.len() as u32;
        hashes.push(hash);
        bytes.extend_from_slice(key);
        offsets.push(bytes.len());
        table.insert_unique(hash, g, |&g| hashes[g as usize]);
        g
    }

    /// How many distinct keys there are.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether no key was interned.
    /// (Exported, beside `len`, only where the module is: feature `internals`.)
    #[cfg(feature = "internals")]
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Bytes held (keys, offsets, hashes and table), for memory accounting.
    pub fn allocated_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.offsets.capacity() * std::mem::size_of::<usize>()
            + self.hashes.capacity() * 8
            + self.table.capacity() * 4
    }
}

/// Grouping state for one aggregation.
pub enum GroupKeys {
    /// No keys: every row is in group 0 (a global aggregate), which exists even with no rows.
    Global,
    /// One string key.
    SingleString {
        interner: ByteInterner,
        null_group: Option<u32>,
        groups: usize,
    },
    /// One Int64 key (ids): an array indexed by key, or a map, no row encoding.
    SingleInt64(Int64Keys),
    /// Several string keys, before the first batch shows whether they fit [`PackedKeys`].
    StringsUndecided {
        converter: RowConverter,
        columns: usize,
    },
    /// Several short string keys, packed into one integer per row; `converter` is for
    /// moving to [`GroupKeys::Rows`] when a longer string comes.
    Packed {
        packed: PackedKeys,
        converter: RowConverter,
    },
    /// Any other keys, through the row format.
    Rows {
        converter: RowConverter,
        interner: ByteInterner,
    },
}

impl GroupKeys {
    /// Grouping state for keys of these types.
    pub fn new(key_types: &[DataType]) -> Result<Self> {
        Ok(match key_types {
            [] => GroupKeys::Global,
            [DataType::Int64] => GroupKeys::SingleInt64(Int64Keys::new()),
            [DataType::Utf8] => GroupKeys::SingleString {
                interner: ByteInterner::new(),
                null_group: None,
                groups: 0,
            },
            types => {
                let converter =
                    RowConverter::new(types.iter().map(|t| SortField::new(t.clone())).collect())?;
                if types.iter().all(|t| t == &DataType::Utf8) {
                    GroupKeys::StringsUndecided {
                        converter,
                        columns: types.len(),
                    }
                } else {
                    GroupKeys::Rows {
                        converter,
                        interner: ByteInterner::new(),
                    }
                }
            }
        })
    }

    /// Leaves the packed or undecided state for the row format, keeping every group's
    /// index.
    fn switch_to_rows(&mut self) -> Result<()> {
        let (converter, existing) = match std::mem::replace(self, GroupKeys::Global) {
            GroupKeys::StringsUndecided { converter, .. } => (converter, None),
            GroupKeys::Packed { packed, converter } => (converter, Some(packed.into_arrays()?)),
            other => {
                *self = other;
                return Ok(());
            }
        };
        let mut interner = ByteInterner::new();
        if let Some(arrays) = existing {
            // Distinct keys in group order intern to indices 0, 1, 2, ... again.
            for row in converter.convert_columns(&arrays)?.iter() {
                interner.intern(row.as_ref());
            }
        }
        *self = GroupKeys::Rows {
            converter,
            interner,
        };
        Ok(())
    }

    /// How many groups exist so far.
    pub fn len(&self) -> usize {
        match self {
            GroupKeys::Global => 1,
            GroupKeys::SingleString { groups, .. } => *groups,
            GroupKeys::SingleInt64(keys) => keys.len(),
            GroupKeys::StringsUndecided { .. } => 0,
            GroupKeys::Packed { packed, .. } => packed.len(),
            GroupKeys::Rows { interner, .. } => interner.len(),
        }
    }

    /// Roughly the bytes the keys and their table hold.
    pub fn allocated_bytes(&self) -> usize {
        match self {
            GroupKeys::Global | GroupKeys::StringsUndecided { .. } => 0,
            GroupKeys::Packed { packed, .. } => packed.allocated_bytes(),
            GroupKeys::SingleInt64(keys) => keys.allocated_bytes(),
            GroupKeys::SingleString { interner, .. } | GroupKeys::Rows { interner, .. } => {
                interner.allocated_bytes()
            }
        }
    }

    /// Whether no group exists yet.
    /// (Exported, beside `len`, only where the module is: feature `internals`.)
    #[cfg(feature = "internals")]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the group index of every row of `keys` into `out`.
    pub fn intern(&mut self, keys: &[ArrayRef], rows: usize, out: &mut Vec<u32>) -> Result<()> {
        out.clear();
        if matches!(self, GroupKeys::StringsUndecided { .. }) {
            match PackedKeys::for_batch(keys) {
                Some(packed) => {
                    if let GroupKeys::StringsUndecided { converter, .. } =
                        std::mem::replace(self, GroupKeys::Global)
                    {
                        *self = GroupKeys::Packed { packed, converter };
                    }
                }
                None => self.switch_to_rows()?,
            }
        }
        if let GroupKeys::Packed { packed, .. } = self {
            if packed.intern(keys, rows, out) {
                return Ok(());
            }
            self.switch_to_rows()?;
        }
        // Only packed keys read dictionaries; the others take their strings.
        let decoded: Vec<ArrayRef>;
        let keys = if keys
            .iter()
            .any(|k| matches!(k.data_type(), DataType::Dictionary(..)))
        {
            decoded = keys
                .iter()
                .map(|k| match k.data_type() {
                    DataType::Dictionary(_, values) => cast(k, values),
                    _ => Ok(k.clone()),
                })
                .collect::<std::result::Result<_, _>>()?;
            &decoded[..]
        } else {
            keys
        };
        match self {
            GroupKeys::Global => out.resize(rows, 0),
            GroupKeys::SingleString {
                interner,
                null_group,
                groups,
            } => {
                let strings = keys[0].as_string::<i32>();
                for i in 0..rows {
                    let g = if strings.is_null(i) {
                        *null_group.get_or_insert_with(|| {
                            // The null group holds an empty placeholder in the arena.
                            interner.hashes.push(0);
                            interner.offsets.push(interner.bytes.len());
                            (interner.hashes.len() - 1) as u32
                        })
                    } else {
                        interner.intern(strings.value(i).as_bytes())
                    };
                    out.push(g);
                }
                *groups = interner.len();
            }
            GroupKeys::SingleInt64(int_keys) => {
                int_keys.intern(keys[0].as_primitive::<arrow::datatypes::Int64Type>(), out)
            }
            GroupKeys::Rows {
                converter,
                interner,
            } => {
                let encoded = converter.convert_columns(keys)?;
                for row in encoded.iter() {
                    out.push(interner.intern(row.as_ref()));
                }
            }
            GroupKeys::StringsUndecided { .. } | GroupKeys::Packed { .. } => {
                unreachable!("moved to packed or row keys above")
            }
        }
        Ok(())
    }

    /// The distinct keys, one array per key column, in group-index order.
    pub fn into_arrays(self) -> Result<Vec<ArrayRef>> {
        Ok(match self {
            GroupKeys::Global => vec![],
            GroupKeys::SingleString {
                interner,
                null_group,
                ..
            } => {
                let offsets: Vec<i32> = interner.offsets.iter().map(|&o| o as i32).collect();
                let nulls = null_group
                    .map(|ng| NullBuffer::from_iter((0..interner.len()).map(|g| g != ng as usize)));
                let array = StringArray::try_new(
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    interner.bytes.into(),
                    nulls,
                )?;
                vec![Arc::new(array) as ArrayRef]
            }
            GroupKeys::SingleInt64(keys) => {
                let (values, null_group) = keys.into_values();
                let nulls = null_group
                    .map(|ng| NullBuffer::from_iter((0..values.len()).map(|g| g != ng as usize)));
                vec![Arc::new(arrow::array::Int64Array::new(values.into(), nulls)) as ArrayRef]
            }
            GroupKeys::StringsUndecided { columns, .. } => {
                vec![arrow::array::new_empty_array(&DataType::Utf8); columns]
            }
            GroupKeys::Packed { packed, .. } => packed.into_arrays()?,
            GroupKeys::Rows {
                converter,
                interner,
            } => {
                let parser = converter.parser();
                let rows = (0..interner.len() as u32).map(|g| parser.parse(interner.get(g)));
                converter.convert_rows(rows)?
            }
        })
    }
}
