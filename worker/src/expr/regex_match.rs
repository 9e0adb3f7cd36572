//! [`regexp_is_match`]: `regexp_like(column, pattern)` over a whole string column at once.
//!
//! A per-row `is_match` pays the regex engine's start-up for every line; grep-like filters
//! look for a rare pattern in many short lines. So the column's values are searched as one
//! haystack, each followed by a newline: each match found names the row it starts in, that
//! row alone is checked (a match may run on into the next row), and the search goes on from
//! the next row's start. A row holding a match is never skipped: the leftmost match from any
//! row's start begins no later than that row's own match — as long as a match within a row
//! does not depend on what surrounds the row. Word boundaries (`\b`, `\B`) only look at
//! whether the neighbouring character is a word character, and the newline between rows is
//! not one, just like the start or end of a row on its own; so they may be searched this
//! way. Patterns with line or text anchors (`^`, `$`, `\A`, `\z`), or that match the empty
//! string, are matched row by row. Owns only the matching; what the filter does with the
//! result is the caller's.

use std::cell::RefCell;

use arrow::array::{Array, BooleanArray, StringArray};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::error::ArrowError;
use regex::bytes::Regex;

/// A compiled pattern and whether the whole-column search applies to it.
struct Compiled {
    pattern: String,
    regex: Regex,
    whole_column: bool,
}

thread_local! {
    /// The last pattern this thread compiled: a filter calls this once per batch with the
    /// same pattern.
    static LAST: RefCell<Option<Compiled>> = const { RefCell::new(None) };
}

/// Whether `regex` may be searched for across rows: no anchors (conservatively, any
/// character that could start one), and no empty match.
fn whole_column_applies(pattern: &str, regex: &Regex) -> bool {
    let anchored =
        pattern.contains(['^', '$']) || pattern.contains(r"\A") || pattern.contains(r"\z");
    !anchored && !regex.is_match(b"")
}

/// Which rows of `array` match `pattern` (NULL for a NULL row), like Arrow's
/// `regexp_is_match_scalar`.
pub fn regexp_is_match(array: &StringArray, pattern: &str) -> Result<BooleanArray, ArrowError> {
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.as_ref().is_none_or(|c| c.pattern != pattern) {
            let regex = Regex::new(pattern).map_err(|e| {
                ArrowError::ComputeError(format!("regexp_like: invalid pattern {pattern:?}: {e}"))
            })?;
            let whole_column = whole_column_applies(pattern, &regex);
            *last = Some(Compiled {
                pattern: pattern.to_string(),
                regex,
                whole_column,
            });
        }
        let Some(compiled) = last.as_ref() else {
            unreachable!("compiled above")
        };
        let matched = match compiled.whole_column {
            true => search_column(array, &compiled.regex),
            false => (0..array.len())
                .map(|i| compiled.regex.is_match(array.value(i).as_bytes()))
                .collect(),
        };
        Ok(BooleanArray::new(
            BooleanBuffer::from(matched),
            array
                .nulls()
                .cloned()
                .filter(|n: &NullBuffer| n.null_count() > 0),
        ))
    })
}

/// The whole-column search (see the module comment).
fn search_column(array: &StringArray, regex: &Regex) -> Vec<bool> {
    let (offsets, data) = (array.value_offsets(), array.value_data());
    let bytes = (offsets[array.len()] - offsets[0]) as usize;
    let mut haystack = Vec::with_capacity(bytes + array.len());
    // Where each row ends in the haystack (its newline's position).
    let mut ends = Vec::with_capacity(array.len());
    for w in offsets.windows(2) {
        haystack.extend_from_slice(&data[w[0] as usize..w[1] as usize]);
        ends.push(haystack.len());
        haystack.push(b'\n');
    }
    let mut matched = vec![false; array.len()];
    let mut from = 0;
    while let Some(m) = regex.find_at(&haystack, from) {
        // The row the match starts in: the first that ends after the start (a match starting
        // at a newline names the next row, which is checked like any other).
        let row = ends.partition_point(|&end| end <= m.start());
        if row >= array.len() {
            break;
        }
        matched[row] = regex.is_match(array.value(row).as_bytes());
        from = ends[row] + 1;
    }
    matched
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Against `regex::Regex::is_match` row by row (the plain definition), on rows built so
    /// that matches span rows, sit at row edges, repeat, and hide behind spanning ones.
    #[test]
    fn matches_like_a_row_by_row_check() {
        let rows: Vec<Option<&str>> = vec![
            Some("the quick fox"),
            Some("ab"),
            Some("cd abcd"),
            None,
            Some(""),
            Some("xxab"),
            Some("cdxx"),
            Some("abcd"),
            Some("zzz"),
            Some("ab"),
            Some("c"),
            Some("déjà vu abcd"),
            Some("ABCD"),
        ];
        let patterns = [
            "abcd", "b.d", "ab(c|x)d", "(?i)abcd", "o.", "z+", "^ab", "cd$", r"\bab", r"\bcd\b",
            r"\Bb", r"\s+ab", r"\w+\s\w", "x*", "é", "nothing", "[a-c]{3}",
        ];
        for sliced in [false, true] {
            let array = StringArray::from(rows.clone());
            let array = match sliced {
                true => array.slice(1, rows.len() - 2),
                false => array,
            };
            for p in patterns {
                let reference = regex::Regex::new(p).unwrap();
                let got = regexp_is_match(&array, p).unwrap();
                for i in 0..array.len() {
                    let want = (!array.is_null(i)).then(|| reference.is_match(array.value(i)));
                    let have = (!got.is_null(i)).then(|| got.value(i));
                    assert_eq!(have, want, "pattern {p:?}, row {i} {:?}", array.value(i));
                }
            }
        }
        assert!(regexp_is_match(&StringArray::from(vec!["a"]), "(").is_err());
    }

    #[test]
    fn look_around_and_empty_matches_go_row_by_row() {
        let re = |p: &str| Regex::new(p).unwrap();
        assert!(whole_column_applies("abcd", &re("abcd")));
        assert!(whole_column_applies(r"\bab\b", &re(r"\bab\b")));
        for p in ["^a", "a$", r"\Aa", r"a\z", "x*", "(?m)^a"] {
            assert!(!whole_column_applies(p, &re(p)), "{p}");
        }
    }
}
