//! The nodes only stage plans hold: they cross the wire as the same messages as before, a
//! submitted plan holding one is refused, and `map_children` rewrites inputs only.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use quiver_plan::aggregate::{count, sum};
use quiver_plan::expr::{col, lit};
use quiver_plan::proto_conversion::schema_to_bytes;
use quiver_plan::{AggregateMode, JoinStrategy, JoinType, PlanNode, StageId, StageRead};
use quiver_proto::v1 as pb;

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
    ]))
}

fn shuffle_read(stage: u32) -> PlanNode {
    PlanNode::StageRead(StageRead::Shuffle {
        stage: StageId(stage),
        schema: schema(),
    })
}

fn fused_partial() -> PlanNode {
    PlanNode::Aggregate {
        input: Box::new(shuffle_read(0)),
        keys: vec![col("k")],
        aggregates: vec![sum(col("v")).alias("s"), count()],
        mode: AggregateMode::Partial,
        filter: Some(col("v").gt(lit(3))),
    }
}

#[test]
fn stage_reads_are_the_shuffle_and_broadcast_read_messages() {
    let broadcast = PlanNode::StageRead(StageRead::Broadcast {
        stage: StageId(7),
        schema: schema(),
        buckets: 5,
    });
    let cases = [
        (shuffle_read(3), "shuffle_read", 3),
        (broadcast, "broadcast_read", 7),
    ];
    for (node, message, stage) in cases {
        let encoded = pb::PlanNode::from(&node);
        let expected_schema = schema_to_bytes(&schema());
        let fields = match (&encoded.node, message) {
            (Some(pb::plan_node::Node::ShuffleRead(r)), "shuffle_read") => (r.stage_id, &r.schema),
            (Some(pb::plan_node::Node::BroadcastRead(r)), "broadcast_read") => {
                (r.stage_id, &r.schema)
            }
            other => panic!("{message} encoded as {other:?}"),
        };
        assert_eq!(fields, (stage, &expected_schema));
        assert_eq!(PlanNode::try_from(&encoded).unwrap(), node);
        let err = node.check_submittable().unwrap_err().to_string();
        assert!(err.contains(message) && err.contains("planner"), "{err}");
    }
}

#[test]
fn a_fused_filter_round_trips_and_is_stage_only() {
    let plan = fused_partial();
    let encoded = pb::PlanNode::from(&plan);
    let Some(pb::plan_node::Node::Aggregate(a)) = &encoded.node else {
        panic!("not an aggregate: {encoded:?}");
    };
    assert!(a.filter.is_some());
    assert_eq!(PlanNode::try_from(&encoded).unwrap(), plan);
    assert!(plan.label().ends_with(" where (v > 3)"), "{}", plan.label());
    // Its predicate is validated like a filter's, and only a partial step may hold one.
    let with = |mode, filter| PlanNode::Aggregate {
        input: Box::new(shuffle_read(0)),
        keys: vec![col("k")],
        aggregates: vec![count()],
        mode,
        filter: Some(filter),
    };
    assert!(with(AggregateMode::Partial, col("k")).schema().is_err());
    assert!(
        with(AggregateMode::Partial, col("nope").gt(lit(1)))
            .schema()
            .is_err()
    );
    assert!(
        with(AggregateMode::Single, col("v").gt(lit(1)))
            .schema()
            .is_err()
    );
    // A client may not send one, not even in single mode.
    let err = with(AggregateMode::Single, col("v").gt(lit(1)))
        .check_submittable()
        .unwrap_err()
        .to_string();
    assert!(err.contains("fused filter"), "{err}");
    // A submitted aggregation without one is accepted.
    let single = PlanNode::Aggregate {
        input: Box::new(PlanNode::Filter {
            input: Box::new(PlanNode::Union {
                inputs: vec![],
                partitions: vec![],
            }),
            predicate: lit(true),
        }),
        keys: vec![],
        aggregates: vec![count()],
        mode: AggregateMode::Single,
        filter: None,
    };
    assert!(single.check_submittable().is_ok());
}

#[test]
fn map_children_replaces_inputs_in_order_and_keeps_every_other_field() {
    let join = PlanNode::Join {
        left: Box::new(fused_partial()),
        right: Box::new(shuffle_read(1)),
        left_keys: vec![col("k")],
        right_keys: vec![col("k")],
        join_type: JoinType::LeftSemi,
        strategy: JoinStrategy::Shuffle,
    };
    let mut seen = Vec::new();
    let rewritten = join
        .clone()
        .map_children(|child| -> Result<PlanNode, ()> {
            seen.push(child.label());
            Ok(shuffle_read(9))
        })
        .unwrap();
    assert_eq!(
        seen,
        [fused_partial().label(), shuffle_read(1).label()],
        "left, then right"
    );
    let expected = PlanNode::Join {
        left: Box::new(shuffle_read(9)),
        right: Box::new(shuffle_read(9)),
        left_keys: vec![col("k")],
        right_keys: vec![col("k")],
        join_type: JoinType::LeftSemi,
        strategy: JoinStrategy::Shuffle,
    };
    assert_eq!(rewritten, expected);
    // A leaf has no inputs: `f` is not called and the node comes back whole.
    let leaf = shuffle_read(4);
    assert_eq!(
        leaf.clone()
            .map_children(|_| -> Result<PlanNode, ()> { Err(()) }),
        Ok(leaf)
    );
    // The first error stops the rewrite.
    let mut calls = 0;
    let failed = join.map_children(|_| {
        calls += 1;
        Err::<PlanNode, _>("no")
    });
    assert_eq!((failed, calls), (Err("no"), 1));
}
