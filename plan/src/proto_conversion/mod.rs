//! Conversions between the model of this crate and the generated `quiver-proto` messages,
//! one file per kind of message: [`expr`] (scalars, expressions, aggregates, sort keys),
//! [`plan`] (plan nodes and scans) and [`task`] (sinks, stage outputs, task definitions, read
//! grants; the Flight ticket bytes are `quiver-net`'s). This module holds what they share: schemas as bytes, required
//! fields and the errors of enum fields. It owns no message of its own and must not grow
//! conversions of one kind of message.
//!
//! Encoding never fails. Decoding validates: a missing field, an enum left `Unspecified` or of
//! an unknown value, or an undecodable schema becomes [`PlanError::MalformedProto`] naming the
//! field, never a panic or a default, because these messages come from peers. Every enum is
//! converted by an exhaustive `match` in each direction.

mod expr;
mod plan;
mod task;

pub use task::{storage_options_from_proto, storage_options_to_proto};

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::convert::try_schema_from_flatbuffer_bytes;
use arrow::ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteOptions};

use crate::error::{PlanError, Result};

/// Encodes a schema as an Arrow IPC schema message.
pub fn schema_to_bytes(schema: &Schema) -> Vec<u8> {
    IpcDataGenerator::default()
        .schema_to_bytes_with_dictionary_tracker(
            schema,
            &mut DictionaryTracker::new(false),
            &IpcWriteOptions::default(),
        )
        .ipc_message
}

/// Decodes a schema written by [`schema_to_bytes`].
pub fn schema_from_bytes(bytes: &[u8]) -> Result<SchemaRef> {
    if bytes.is_empty() {
        return Err(PlanError::missing("schema"));
    }
    try_schema_from_flatbuffer_bytes(bytes)
        .map(Arc::new)
        .map_err(|e| PlanError::MalformedProto {
            field: "schema",
            problem: e.to_string(),
        })
}

/// The value of a message field a peer must send, or the error naming it.
pub fn required<'a, T>(field: &'static str, value: &'a Option<T>) -> Result<&'a T> {
    value.as_ref().ok_or_else(|| PlanError::missing(field))
}

/// Decodes an enum field's number: a number this build does not know is an error naming the
/// field. Callers `match` the result exhaustively and refuse `Unspecified` with
/// [`unspecified`], so that a new variant does not compile until it is handled.
pub fn enum_value<T: TryFrom<i32>>(field: &'static str, value: i32) -> Result<T> {
    T::try_from(value).map_err(|_| PlanError::MalformedProto {
        field,
        problem: format!("has unknown value {value}"),
    })
}

/// The error for an enum field left at `Unspecified` (0, which is also what an absent field
/// decodes to).
pub fn unspecified(field: &'static str) -> PlanError {
    PlanError::missing(field)
}

/// Checks of an enum's wire conversion, for the tests of each kind of message.
#[cfg(test)]
pub(crate) mod enum_checks {
    use crate::error::Result;

    /// Every variant of `$t`, through a `match` that stops compiling when one is added.
    macro_rules! all_variants {
        ($t:ident: $($v:ident),+ $(,)?) => {{
            let all = [$($t::$v),+];
            for v in all {
                match v {
                    $($t::$v)|+ => {}
                }
            }
            all
        }};
    }
    pub(crate) use all_variants;

    /// `LtEq` as the proto spells it: `LT_EQ`.
    fn screaming_snake(name: &str) -> String {
        let mut out = String::new();
        for (i, c) in name.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        out
    }

    /// Checks that `all` (every variant of a model enum) and the proto enum whose values are
    /// `proto_name` maps to names (`None` for a number the proto does not define) correspond
    /// one to one, by name: each variant encodes to the proto value of its own name
    /// (`{prefix}{NAME}`) and decodes back to itself, every proto value but `Unspecified` is
    /// some variant's, and decoding `Unspecified` or an unknown number is an error naming
    /// `field`.
    pub(crate) fn check_enum<T: Copy + std::fmt::Debug + PartialEq>(
        all: &[T],
        prefix: &str,
        field: &'static str,
        encode: impl Fn(T) -> i32,
        decode: impl Fn(&'static str, i32) -> Result<T>,
        proto_name: impl Fn(i32) -> Option<&'static str>,
    ) {
        let mut numbers = Vec::new();
        for &v in all {
            let n = encode(v);
            let expected = format!("{prefix}{}", screaming_snake(&format!("{v:?}")));
            assert_eq!(
                proto_name(n),
                Some(expected.as_str()),
                "{v:?} encodes as {n}"
            );
            assert_eq!(decode(field, n).unwrap(), v, "{v:?} decodes back");
            numbers.push(n);
        }
        let defined: Vec<i32> = (1..1000).filter(|&n| proto_name(n).is_some()).collect();
        numbers.sort_unstable();
        assert_eq!(
            numbers, defined,
            "every proto value of {prefix}* is a variant's, once"
        );
        assert_eq!(proto_name(0), Some(format!("{prefix}UNSPECIFIED").as_str()));
        let err = decode(field, 0).unwrap_err().to_string();
        assert!(err.contains(field) && err.contains("missing"), "{err}");
        let err = decode(field, 1000).unwrap_err().to_string();
        assert!(
            err.contains(field) && err.contains("unknown value 1000"),
            "{err}"
        );
        let err = decode(field, -1).unwrap_err().to_string();
        assert!(
            err.contains(field) && err.contains("unknown value -1"),
            "{err}"
        );
    }
}
