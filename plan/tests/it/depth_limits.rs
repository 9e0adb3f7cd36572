//! `Limits::check_plan`'s depth against prost's decoder: a plan at the ceiling still decodes as
//! a worker's `LaunchTaskRequest`, one level deeper does not, and is refused before it could be
//! sent. Checked for every way a plan grows deep: chained steps, nested expressions of each
//! kind, expressions under aggregates (and their fused filters) and sorts, joins and unions.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use prost::Message;
use quiver_plan::aggregate::sum;
use quiver_plan::expr::{col, lit, lower, when};
use quiver_plan::limits::{MAX_PLAN_DEPTH_CEILING, plan_depth};
use quiver_plan::sort::asc;
use quiver_plan::{
    CsvOptions, Expr, InputFile, JobId, Limits, PlanError, PlanNode, ScanNode, SourceFormat,
    StageId, StageOutput, TaskAttempt, TaskDefinition,
};
use quiver_proto::v1 as pb;

fn scan() -> PlanNode {
    PlanNode::Scan(ScanNode {
        format: SourceFormat::Csv,
        files: vec![InputFile {
            path: "/data/a.csv".into(),
            size: 10,
            row_groups: 0,
        }],
        schema: Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ])),
        csv: CsvOptions {
            has_header: true,
            delimiter: b',',
        },
    })
}

/// Whether `plan` decodes when a worker receives it in a task.
fn decodes_as_task(plan: &PlanNode) -> bool {
    let task = TaskDefinition {
        attempt: TaskAttempt {
            job: JobId::random(),
            stage: StageId(0),
            partition: 0,
            attempt: 0,
        },
        plan: plan.clone(),
        output: StageOutput::Collect,
        splits: vec![],
        inputs: vec![],
        batch_size: 8192,
        storage_options: Default::default(),
        shuffle_buckets: None,
    };
    let bytes = pb::LaunchTaskRequest {
        task: Some((&task).into()),
    }
    .encode_to_vec();
    pb::LaunchTaskRequest::decode(bytes.as_slice()).is_ok()
}

/// Ways of making a plan one step deeper.
fn deepen(kind: usize, plan: PlanNode, level: usize) -> PlanNode {
    match kind {
        0 => PlanNode::Limit {
            input: Box::new(plan),
            n: level as u64,
        },
        1 => PlanNode::Filter {
            input: Box::new(plan),
            predicate: col("a").gt(lit(level as i64)),
        },
        2 => PlanNode::Union {
            inputs: vec![plan, scan()],
            partitions: vec![],
        },
        _ => PlanNode::Join {
            left: Box::new(scan()),
            right: Box::new(plan),
            left_keys: vec![col("a")],
            right_keys: vec![col("a")],
            join_type: quiver_plan::JoinType::Inner,
            strategy: quiver_plan::JoinStrategy::Auto,
        },
    }
}

/// Ways of nesting an expression one level deeper.
fn nest(kind: usize, e: Expr) -> Expr {
    match kind {
        0 => e + lit(1),
        1 => e.gt(lit(0)).not(),
        2 => lower(e),
        3 => e.alias("x"),
        4 => e.cast(DataType::Int64),
        5 => when(col("a").gt(lit(0)), e).otherwise(lit(0)),
        _ => Expr::Udf {
            name: "f".into(),
            args: vec![e],
            return_type: DataType::Int64,
        },
    }
}

/// The deepest plan `grow` makes whose depth is at most `target`.
fn grow_to(target: u32, mut grow: impl FnMut(usize) -> PlanNode) -> PlanNode {
    let mut level = 0;
    let mut last = grow(0);
    loop {
        let next = grow(level + 1);
        if plan_depth(&next) > target {
            return last;
        }
        last = next;
        level += 1;
    }
}

fn check_boundary(name: &str, grow: impl Fn(usize) -> PlanNode) {
    let limits = Limits::default();
    let at = grow_to(MAX_PLAN_DEPTH_CEILING, &grow);
    assert!(
        decodes_as_task(&at),
        "{name}: depth {} is accepted but a worker cannot decode it",
        plan_depth(&at)
    );
    assert!(limits.check_plan(&at).is_ok(), "{name}");
    // The first plan deeper than the ceiling: refused, and indeed undecodable when it is
    // exactly one level too deep.
    let mut level = 0;
    let over = loop {
        let p = grow(level);
        if plan_depth(&p) > MAX_PLAN_DEPTH_CEILING {
            break p;
        }
        level += 1;
    };
    let err = limits.check_plan(&over).unwrap_err();
    assert!(
        matches!(err, PlanError::LimitExceeded { .. })
            && err.to_string().contains("--max-plan-depth"),
        "{name}: {err}"
    );
    if plan_depth(&over) == MAX_PLAN_DEPTH_CEILING + 1 {
        assert!(!decodes_as_task(&over), "{name}: the ceiling is too low");
    }
}

#[test]
fn the_depth_ceiling_is_exactly_what_a_worker_decodes() {
    for kind in 0..4 {
        check_boundary(&format!("plan step {kind}"), |n| {
            (0..n).fold(scan(), |p, level| deepen(kind, p, level))
        });
    }
    for kind in 0..7 {
        check_boundary(&format!("expression {kind} in a select"), |n| {
            PlanNode::Project {
                input: Box::new(scan()),
                exprs: vec![(0..n).fold(col("a"), |e, _| nest(kind, e)).alias("out")],
            }
        });
    }
    check_boundary("expression under an aggregate", |n| PlanNode::Aggregate {
        input: Box::new(scan()),
        keys: vec![col("s")],
        aggregates: vec![sum((0..n).fold(col("a"), |e, _| e + lit(1))).alias("t")],
        mode: quiver_plan::AggregateMode::Single,
        filter: None,
    });
    check_boundary("expression in a partial aggregate's fused filter", |n| {
        PlanNode::Aggregate {
            input: Box::new(scan()),
            keys: vec![col("s")],
            aggregates: vec![sum(col("a")).alias("t")],
            mode: quiver_plan::AggregateMode::Partial,
            filter: Some((0..n).fold(col("a"), |e, _| e + lit(1)).gt(lit(0))),
        }
    });
    check_boundary("expression under a sort", |n| PlanNode::Sort {
        input: Box::new(scan()),
        order: vec![asc((0..n).fold(col("a"), |e, _| e * lit(2)))],
        limit: None,
    });
    // Steps and expressions together.
    check_boundary("steps over a nested select", |n| {
        let base = PlanNode::Project {
            input: Box::new(scan()),
            exprs: vec![(0..20).fold(col("a"), |e, _| e + lit(1)).alias("a")],
        };
        (0..n).fold(base, |p, level| deepen(1, p, level))
    });
}

#[test]
fn plan_size_and_partition_counts_are_bounded() {
    let limits = Limits {
        max_plan_nodes: 50,
        max_partitions: 16,
        ..Limits::default()
    };
    let wide = PlanNode::Project {
        input: Box::new(scan()),
        exprs: (0..60)
            .map(|i| lit(i as i64).alias(format!("c{i}")))
            .collect(),
    };
    let err = limits.check_plan(&wide).unwrap_err().to_string();
    assert!(err.contains("--max-plan-nodes"), "{err}");
    let repartition = |partitions| PlanNode::Repartition {
        input: Box::new(scan()),
        partitions,
        keys: vec![],
    };
    assert!(limits.check_plan(&repartition(16)).is_ok());
    let err = limits
        .check_plan(&repartition(u32::MAX))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("4294967295") && err.contains("--max-partitions"),
        "{err}"
    );
    assert!(limits.check_plan(&repartition(0)).is_err());
    assert!(limits.check_batch_size(u64::from(u32::MAX)).is_err());
}
