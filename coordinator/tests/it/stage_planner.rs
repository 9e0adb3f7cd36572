use quiver_coordinator::stage_planner::plan_stages;
use quiver_plan::aggregate::count;
use quiver_plan::expr::{col, lower, words};
use quiver_plan::{
    AggregateMode, CsvOptions, InputFile, PlanNode, ScanNode, Sink, SourceFormat, StageId,
    StageOutput,
};

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
    }
}

#[test]
fn word_count_is_a_map_and_a_reduce_stage_joined_by_a_hash_shuffle() {
    let stages = plan_stages(&word_count_plan(&[100 << 20, 10]), &Sink::Collect, 8, 2).unwrap();
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
                PlanNode::ShuffleRead {
                    stage: StageId(0),
                    ..
                }
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
    };
    let stages = plan_stages(&global, &Sink::Collect, 8, 2).unwrap();
    assert_eq!(stages[1].partitions, 1);
}
