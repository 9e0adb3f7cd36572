//! The stage planner: how plans are cut into stages at exchanges, fused, split and bounded,
//! checked against stages written out by hand.

use quiver_coordinator::stage_planner::{PlannerOptions, plan_stages};
use quiver_plan::aggregate::{count, count_distinct};
use quiver_plan::expr::{col, lit, lower, words};
use quiver_plan::sort::desc;
use quiver_plan::{
    AggregateExpr, AggregateMode, CsvOptions, Expr, InputFile, JoinStrategy, JoinType, PlanNode,
    ScanNode, Sink, SourceFormat, StageId, StageOutput, StageRead,
};

fn options(shuffle_partitions: u32, total_slots: u32) -> PlannerOptions {
    PlannerOptions {
        shuffle_partitions,
        total_slots,
        broadcast_threshold: Some(10 << 20),
        max_tasks_per_stage: quiver_plan::Limits::default().max_tasks_per_stage,
        max_tasks_per_job: quiver_plan::Limits::default().max_tasks_per_job,
    }
}

#[test]
fn a_file_size_from_the_wire_cannot_make_billions_of_splits() {
    // 2^62 bytes of text would be 2^35 splits of 128 MiB: refused by its count, before any
    // is made (the allocation would abort the coordinator).
    let err = plan_stages(&word_count_plan(&[1 << 62]), &Sink::Collect, options(4, 2))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("input splits") && err.contains("--max-tasks-per-stage"),
        "{err}"
    );
    // At u64::MAX the split arithmetic must not overflow either.
    assert!(plan_stages(&word_count_plan(&[u64::MAX]), &Sink::Collect, options(4, 2)).is_err());
}

#[test]
fn a_union_of_many_scans_and_a_tower_of_shuffles_are_bounded_as_a_whole() {
    // Each scan alone is within the limit; together, in one union stage, they are not.
    let scan_of = |size: u64| match word_count_plan(&[size]) {
        PlanNode::Aggregate { input, .. } => *input,
        other => other,
    };
    let limits = quiver_plan::Limits::default();
    let one = (128u64 << 20) * u64::from(limits.max_tasks_per_stage - 1);
    let union = PlanNode::Union {
        inputs: (0..4).map(|_| scan_of(one)).collect(),
        partitions: vec![],
    };
    let err = plan_stages(&union, &Sink::Collect, options(4, 2))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a union of 4 inputs") && err.contains("--max-tasks-per-stage"),
        "{err}"
    );
    // Many shuffles of few partitions each, more tasks together than a job may have.
    let mut tower = scan_of(100);
    for _ in 0..120 {
        tower = PlanNode::Repartition {
            input: Box::new(tower),
            partitions: limits.max_partitions,
            keys: vec![],
        };
    }
    let err = plan_stages(&tower, &Sink::Collect, options(4, 2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--max-tasks-per-job"), "{err}");
}

pub fn word_count_plan(file_sizes: &[u64]) -> PlanNode {
    let scan = PlanNode::Scan(ScanNode {
        format: SourceFormat::Text,
        files: file_sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| InputFile {
                path: format!("/data/{i}.txt"),
                size,
                row_groups: 0,
            })
            .collect(),
        schema: ScanNode::text_schema(),
        csv: CsvOptions::default(),
    });
    let words = PlanNode::Project {
        input: Box::new(scan),
        exprs: vec![words(col("line")).alias("word")],
    };
    let exploded = PlanNode::Explode {
        input: Box::new(words),
        column: "word".into(),
    };
    let lowered = PlanNode::Project {
        input: Box::new(exploded),
        exprs: vec![lower(col("word")).alias("word")],
    };
    PlanNode::Aggregate {
        input: Box::new(lowered),
        keys: vec![col("word")],
        aggregates: vec![count().alias("count")],
        mode: AggregateMode::Single,
        filter: None,
    }
}

#[test]
fn word_count_is_a_map_and_a_reduce_stage_joined_by_a_hash_shuffle() {
    let stages = plan_stages(
        &word_count_plan(&[100 << 20, 10]),
        &Sink::Collect,
        options(8, 2),
    )
    .unwrap();
    assert_eq!(stages.len(), 2);
    let (map, reduce) = (&stages[0], &stages[1]);
    assert!(map.inputs.is_empty());
    assert!(
        matches!(&map.output, StageOutput::HashShuffle { keys, partitions: 8 } if keys == &vec![col("word")])
    );
    assert!(matches!(
        &map.plan,
        PlanNode::Aggregate {
            mode: AggregateMode::Partial,
            ..
        }
    ));
    assert_eq!(reduce.inputs, vec![StageId(0)]);
    assert_eq!(reduce.partitions, 8);
    assert_eq!(reduce.output, StageOutput::Collect);
    match &reduce.plan {
        PlanNode::Aggregate {
            input,
            mode: AggregateMode::Final,
            ..
        } => {
            assert!(matches!(
                input.as_ref(),
                PlanNode::StageRead(StageRead::Shuffle {
                    stage: StageId(0),
                    ..
                })
            ));
        }
        other => panic!("unexpected reduce plan {other:?}"),
    }
    // 100 MiB over 2 slots x 4 splits per slot = 12.5 MiB splits -> 8 splits, plus the small file.
    assert_eq!(map.partitions, 9);
    // The splits cover each file exactly once, in order.
    let first_file: Vec<_> = map
        .splits
        .iter()
        .flatten()
        .filter(|s| s.path == "/data/0.txt")
        .collect();
    assert_eq!(first_file.first().unwrap().start, 0);
    assert_eq!(first_file.last().unwrap().end, 100 << 20);
    for w in first_file.windows(2) {
        assert_eq!(w[0].end, w[1].start);
    }
}

#[test]
fn a_global_aggregate_reduces_into_one_partition() {
    let scan = word_count_plan(&[10]);
    let PlanNode::Aggregate { input, .. } = scan else {
        unreachable!()
    };
    let global = PlanNode::Aggregate {
        input,
        keys: vec![],
        aggregates: vec![count()],
        mode: AggregateMode::Single,
        filter: None,
    };
    let stages = plan_stages(&global, &Sink::Collect, options(8, 2)).unwrap();
    assert_eq!(stages[1].partitions, 1);
}

/// A text scan of files of these sizes with a `line` column renamed to `name`.
pub(crate) fn lines(file_sizes: &[u64], name: &str) -> PlanNode {
    let PlanNode::Aggregate { input, .. } = word_count_plan(file_sizes) else {
        unreachable!()
    };
    PlanNode::Project {
        input,
        exprs: vec![col("word").alias(name)],
    }
}

pub(crate) fn join(left: PlanNode, right: PlanNode, join_type: JoinType) -> PlanNode {
    PlanNode::Join {
        left: Box::new(left),
        right: Box::new(right),
        left_keys: vec![col("a")],
        right_keys: vec![col("b")],
        join_type,
        strategy: JoinStrategy::Auto,
    }
}

#[test]
fn a_small_right_side_is_broadcast_and_a_large_one_shuffled() {
    let big = || lines(&[200 << 20], "a");
    let small = || lines(&[1 << 20], "b");
    let stages = plan_stages(
        &join(big(), small(), JoinType::Inner),
        &Sink::Collect,
        options(8, 2),
    )
    .unwrap();
    // The small side writes one bucket; the join runs in the big side's scan tasks.
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0].output.buckets(), 1);
    assert_eq!(stages[1].inputs, vec![StageId(0)]);
    assert!(stages[1].partitions > 1);
    assert!(
        stages[1]
            .plan
            .nodes()
            .iter()
            .any(|n| matches!(n, PlanNode::StageRead(StageRead::Broadcast { .. })))
    );

    // A right join keeps unmatched right rows, which must be seen by one task only.
    let stages = plan_stages(
        &join(big(), small(), JoinType::Right),
        &Sink::Collect,
        options(8, 2),
    )
    .unwrap();
    assert_eq!(stages.len(), 3);
    assert_eq!(stages[2].inputs, vec![StageId(0), StageId(1)]);
    assert_eq!(stages[2].partitions, 8);

    // Big on the right: shuffle both sides, unless adaptive execution finds the right side
    // small once measured (it may: the join is a candidate).
    let big_right = || {
        join(
            lines(&[1 << 20], "a"),
            lines(&[200 << 20], "b"),
            JoinType::Inner,
        )
    };
    let stages = plan_stages(&big_right(), &Sink::Collect, options(8, 2)).unwrap();
    assert_eq!(stages.len(), 3);
    for side in &stages[..2] {
        assert_eq!(side.output.buckets(), 8);
    }
    assert!(
        stages[2]
            .join_candidate
            .is_some_and(|c| c.left == StageId(0))
    );
    // One partition: the join stage may be where a limit merges; it must stay one task.
    let stages = plan_stages(&big_right(), &Sink::Collect, options(1, 2)).unwrap();
    assert_eq!(stages[2].join_candidate, None);
}

#[test]
fn a_global_sort_samples_then_range_partitions_then_sorts() {
    let sort = PlanNode::Sort {
        input: Box::new(lines(&[64 << 20], "a")),
        order: vec![desc(col("a"))],
        limit: None,
    };
    let stages = plan_stages(&sort, &Sink::Collect, options(6, 2)).unwrap();
    assert_eq!(stages.len(), 3);
    assert!(matches!(stages[0].plan, PlanNode::Sample { .. }));
    assert_eq!(stages[0].output.buckets(), 1);
    assert!(matches!(
        &stages[1].output,
        StageOutput::RangeShuffle {
            partitions: 6,
            sample: StageId(0),
            ..
        }
    ));
    assert_eq!(stages[1].inputs, vec![StageId(0)]);
    assert_eq!(stages[1].partitions, stages[0].partitions);
    assert!(matches!(stages[2].plan, PlanNode::Sort { limit: None, .. }));
    assert_eq!(stages[2].partitions, 6);

    // Sort + limit is a top-k: local top-k, then one merging task; no sample.
    let top = PlanNode::Limit {
        input: Box::new(sort),
        n: 10,
    };
    let stages = plan_stages(&top, &Sink::Collect, options(6, 2)).unwrap();
    assert_eq!(stages.len(), 2);
    assert!(matches!(
        stages[0].plan,
        PlanNode::Sort {
            limit: Some(10),
            ..
        }
    ));
    assert_eq!(stages[1].partitions, 1);
}

#[test]
fn a_union_runs_every_input_in_one_stage_and_count_distinct_is_two_aggregations() {
    let union = PlanNode::Union {
        inputs: vec![lines(&[64 << 20], "a"), lines(&[10], "a")],
        partitions: vec![],
    };
    let stages = plan_stages(&union, &Sink::Collect, options(6, 2)).unwrap();
    assert_eq!(stages.len(), 1);
    let PlanNode::Union { partitions, .. } = &stages[0].plan else {
        panic!("expected a union, got {:?}", stages[0].plan)
    };
    assert_eq!(partitions.iter().sum::<u32>(), stages[0].partitions);
    assert_eq!(partitions[1], 1);

    let distinct = PlanNode::Aggregate {
        input: Box::new(lines(&[10], "a")),
        keys: vec![],
        aggregates: vec![count_distinct(col("a")).alias("n")],
        mode: AggregateMode::Single,
        filter: None,
    };
    let stages = plan_stages(&distinct, &Sink::Collect, options(6, 2)).unwrap();
    assert_eq!(stages.len(), 3);
    assert_eq!(stages[2].partitions, 1);
    assert_eq!(stages[2].plan.schema().unwrap(), distinct.schema().unwrap());
}

#[test]
fn a_filter_right_below_an_aggregation_is_fused_into_its_partial_step() {
    let PlanNode::Aggregate {
        input, aggregates, ..
    } = word_count_plan(&[10])
    else {
        unreachable!()
    };
    let fusion_input = input.clone();
    let filtered = |input: PlanNode| PlanNode::Filter {
        input: Box::new(input),
        predicate: col("word").not_eq(lit("the")),
    };
    let aggregate = |input: PlanNode| PlanNode::Aggregate {
        input: Box::new(input),
        keys: vec![col("word")],
        aggregates: aggregates.clone(),
        mode: AggregateMode::Single,
        filter: None,
    };
    let stages = plan_stages(
        &aggregate(filtered(*input.clone())),
        &Sink::Collect,
        options(4, 2),
    )
    .unwrap();
    // The filter is gone from the map stage: the partial aggregation holds its predicate,
    // over the filter's input, and the stage's description says so.
    let PlanNode::Aggregate {
        input: below,
        mode: AggregateMode::Partial,
        filter: Some(predicate),
        ..
    } = &stages[0].plan
    else {
        panic!("not a fused partial aggregation: {:?}", stages[0].plan)
    };
    assert_eq!(predicate, &col("word").not_eq(lit("the")));
    assert_eq!(below.as_ref(), input.as_ref());
    assert!(
        stages[0]
            .plan
            .nodes()
            .iter()
            .all(|n| !matches!(n, PlanNode::Filter { .. }))
    );
    assert_eq!(
        stages[0].plan.describe(),
        "scan text (1 file) -> select words(line) AS word -> explode word -> \
         select lower(word) AS word -> partial aggregate by [word] [count(*) AS count] \
         where (word != 'the')"
    );
    assert!(matches!(
        &stages[1].plan,
        PlanNode::Aggregate {
            mode: AggregateMode::Final,
            filter: None,
            ..
        }
    ));
    // A filter with a step between it and the aggregation stays where it is.
    let apart = aggregate(PlanNode::Project {
        input: Box::new(filtered(*input)),
        exprs: vec![col("word")],
    });
    let stages = plan_stages(&apart, &Sink::Collect, options(4, 2)).unwrap();
    assert!(matches!(
        &stages[0].plan,
        PlanNode::Aggregate {
            mode: AggregateMode::Partial,
            filter: None,
            ..
        }
    ));
    assert!(
        stages[0]
            .plan
            .nodes()
            .iter()
            .any(|n| matches!(n, PlanNode::Filter { .. }))
    );

    // Fused, the aggregation's expressions run on the rows the filter drops too: only
    // expressions that cannot fail are fused. Integer `%` can fail (by zero) and keeps the
    // filter; floating-point arithmetic cannot and is fused.
    let with_input = |e: Expr| {
        vec![AggregateExpr {
            function: quiver_plan::AggregateFunction::Sum,
            input: Some(e),
            name: "s".into(),
        }]
    };
    let word_length = || quiver_plan::expr::length(col("word"));
    for (aggregates, fused) in [
        (with_input(lit(10) % (word_length() - lit(3))), false),
        (with_input(word_length() * lit(1.5)), true),
        (with_input(word_length()), true),
    ] {
        let plan = PlanNode::Aggregate {
            input: Box::new(filtered(fusion_input.as_ref().clone())),
            keys: vec![col("word")],
            aggregates,
            mode: AggregateMode::Single,
            filter: None,
        };
        let stages = plan_stages(&plan, &Sink::Collect, options(4, 2)).unwrap();
        let has_filter_node = stages[0]
            .plan
            .nodes()
            .iter()
            .any(|n| matches!(n, PlanNode::Filter { .. }));
        assert_eq!(has_filter_node, !fused, "{}", stages[0].plan.describe());
    }
}
