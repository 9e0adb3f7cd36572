//! Kernels for the built-in string functions (`lower`, `upper`, `length`, `words`) over Arrow
//! string arrays. Arrow has no Unicode case-mapping or tokenizing kernels, so these are ours;
//! each has an ASCII fast path because most text is ASCII.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, ListArray, StringArray};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field};

use crate::error::Result;

/// Casts any string array to `Utf8`.
fn as_utf8(array: &ArrayRef) -> Result<StringArray> {
    let array = if array.data_type() == &DataType::Utf8 {
        array.clone()
    } else {
        arrow::compute::cast(array, &DataType::Utf8)?
    };
    Ok(array.as_string::<i32>().clone())
}

fn map_case(
    array: &ArrayRef,
    ascii: fn(&mut [u8]),
    unicode: fn(&str) -> String,
) -> Result<ArrayRef> {
    let strings = as_utf8(array)?;
    let values = strings.values();
    if values.is_ascii() {
        // Case mapping keeps every ASCII byte's length: the offsets and nulls carry over.
        let mut bytes = values.to_vec();
        ascii(&mut bytes);
        let out = StringArray::try_new(
            strings.offsets().clone(),
            bytes.into(),
            strings.nulls().cloned(),
        )?;
        return Ok(Arc::new(out));
    }
    // Mixed text: each ASCII string is mapped in place in the output buffer; only the
    // others go through `unicode` (which allocates).
    let mut bytes: Vec<u8> = Vec::with_capacity(values.len());
    let mut offsets: Vec<i32> = Vec::with_capacity(strings.len() + 1);
    offsets.push(0);
    for s in strings.iter() {
        match s {
            Some(s) if s.is_ascii() => {
                let start = bytes.len();
                bytes.extend_from_slice(s.as_bytes());
                ascii(&mut bytes[start..]);
            }
            Some(s) => bytes.extend_from_slice(unicode(s).as_bytes()),
            None => {}
        }
        offsets.push(
            i32::try_from(bytes.len())
                .map_err(|_| arrow::error::ArrowError::OffsetOverflowError(bytes.len()))?,
        );
    }
    let out = StringArray::try_new(
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        bytes.into(),
        strings.nulls().cloned(),
    )?;
    Ok(Arc::new(out))
}

/// Unicode lowercase.
pub fn lower(array: &ArrayRef) -> Result<ArrayRef> {
    map_case(array, <[u8]>::make_ascii_lowercase, str::to_lowercase)
}

/// Unicode uppercase.
pub fn upper(array: &ArrayRef) -> Result<ArrayRef> {
    map_case(array, <[u8]>::make_ascii_uppercase, str::to_uppercase)
}

/// Number of characters (not bytes).
pub fn length(array: &ArrayRef) -> Result<ArrayRef> {
    let strings = as_utf8(array)?;
    let out: Int64Array = strings
        .iter()
        .map(|s| s.map(|s| s.chars().count() as i64))
        .collect();
    Ok(Arc::new(out))
}

/// Splits each string into its words, maximal runs of Unicode alphanumeric characters, giving a
/// `List<Utf8>`. A null string gives a null list.
pub fn words(array: &ArrayRef) -> Result<ArrayRef> {
    let strings = as_utf8(array)?;
    let values = strings.values();
    let mut word_bytes: Vec<u8> = Vec::with_capacity(values.len());
    let mut word_offsets: Vec<i32> = Vec::with_capacity(values.len() / 4 + 1);
    word_offsets.push(0);
    let mut list_offsets: Vec<i32> = Vec::with_capacity(strings.len() + 1);
    list_offsets.push(0);
    for s in strings.iter() {
        if let Some(s) = s {
            for_each_word(s, |w| {
                word_bytes.extend_from_slice(w.as_bytes());
                word_offsets.push(word_bytes.len() as i32);
            });
        }
        list_offsets.push((word_offsets.len() - 1) as i32);
    }
    let words = StringArray::try_new(
        OffsetBuffer::new(ScalarBuffer::from(word_offsets)),
        word_bytes.into(),
        None,
    )?;
    let list = ListArray::try_new(
        Arc::new(Field::new("item", DataType::Utf8, true)),
        OffsetBuffer::new(ScalarBuffer::from(list_offsets)),
        Arc::new(words),
        strings.nulls().cloned(),
    )?;
    Ok(Arc::new(list))
}

/// Calls `f` with every maximal run of alphanumeric characters in `s`.
pub fn for_each_word<'a>(s: &'a str, mut f: impl FnMut(&'a str)) {
    let bytes = s.as_bytes();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (is_word, width) = if b.is_ascii() {
            (b.is_ascii_alphanumeric(), 1)
        } else {
            // Not ASCII: decode the one character starting here.
            let c = s[i..].chars().next().unwrap_or(char::REPLACEMENT_CHARACTER);
            (c.is_alphanumeric(), c.len_utf8())
        };
        match (is_word, start) {
            (true, None) => start = Some(i),
            (false, Some(st)) => {
                f(&s[st..i]);
                start = None;
            }
            _ => {}
        }
        i += width;
    }
    if let Some(st) = start {
        f(&s[st..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words_of(s: &str) -> Vec<String> {
        let mut out = vec![];
        for_each_word(s, |w| out.push(w.to_string()));
        out
    }

    #[test]
    fn words_are_alphanumeric_runs() {
        assert_eq!(
            words_of("Hello, wörld! 42x  _a-b"),
            ["Hello", "wörld", "42x", "a", "b"]
        );
        assert_eq!(words_of(""), Vec::<String>::new());
        assert_eq!(words_of("東京タワー is tall"), ["東京タワー", "is", "tall"]);
    }

    #[test]
    fn lower_handles_ascii_and_unicode() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![
            Some("AbC"),
            None,
            Some("ÄÖÜ Straße"),
        ]));
        let l = lower(&a).unwrap();
        let l = l.as_string::<i32>();
        assert_eq!(l.value(0), "abc");
        assert!(l.is_null(1));
        assert_eq!(l.value(2), "äöü straße");
    }
}
