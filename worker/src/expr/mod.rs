//! Expression evaluation over Arrow batches, below both the operators and the shuffle: the
//! operators evaluate predicates, projections, keys and aggregate inputs with it, the shuffle
//! writer evaluates partition keys and range partitioning sort keys.
//!
//! # Layout
//! - [`expr_eval`] — evaluates a plan `Expr` over a batch with Arrow kernels; filter masks.
//! - [`text_functions`] — kernels of the built-in string functions (`lower`, `words`, ...).
//! - [`regex_match`] — `regexp_like` over a whole column at once.
//! - [`sort_keys`] — sort orders in Arrow's row format and a batch's sort key columns.

pub mod expr_eval;
pub mod regex_match;
pub mod sort_keys;
pub mod text_functions;
