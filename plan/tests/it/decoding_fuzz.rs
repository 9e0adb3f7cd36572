//! Property-based fuzzing of everything that turns bytes from the network into plans and
//! tasks: the protobuf decoders, the conversions to the plan model, and the validators that
//! run before anything is planned or executed (`check_submittable`, `Limits::check_plan` and
//! `check_task`, schema inference). Random bytes, random structured messages (garbage enum
//! values, missing fields, undecodable schemas, absurd numbers) and mutated encodings: none
//! may panic, and what decodes re-encodes stably.
//!
//! CI runs a short round (256 cases a property). A long run:
//! `QUIVER_FUZZ_CASES=2000000 cargo test --release -p quiver-plan --test it decoding_fuzz -- --nocapture`

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use prost::Message;
use quiver_plan::limits::{count_nodes, plan_depth};
use quiver_plan::proto_conversion::schema_to_bytes;
use quiver_plan::{Limits, PlanNode, Sink, StageOutput, TaskDefinition};
use quiver_proto::v1 as pb;

fn config() -> ProptestConfig {
    let cases = std::env::var("QUIVER_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        // Shrinking a failure of a deep plan can take long; the seed is printed anyway.
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    }
}

fn type_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        select(vec![
            DataType::Int64,
            DataType::Int32,
            DataType::Float64,
            DataType::Utf8,
            DataType::Boolean,
            DataType::Binary,
            DataType::Date32,
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        ])
        .prop_map(|t| schema_to_bytes(&Schema::new(vec![Field::new("t", t, true)]))),
        vec(any::<u8>(), 0..24),
    ]
}

fn schema_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(schema_to_bytes(&Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("f", DataType::Float64, true),
        ]))),
        Just(schema_to_bytes(&Schema::new(vec![Field::new(
            "line",
            DataType::Utf8,
            true
        )]))),
        vec(any::<u8>(), 0..40),
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec!["a", "s", "f", "line", "word", "", "a_right"]).prop_map(String::from),
        "[a-z/.]{0,6}",
    ]
}

fn function_name() -> impl Strategy<Value = String> {
    select(vec![
        "lower",
        "upper",
        "words",
        "length",
        "contains",
        "substring",
        "coalesce",
        "year",
        "month",
        "regexp_like",
        "starts_with",
        "ends_with",
        "no_such_function",
    ])
    .prop_map(String::from)
}

fn scalar() -> impl Strategy<Value = pb::ScalarValue> {
    use pb::scalar_value::Value;
    option::of(prop_oneof![
        any::<bool>().prop_map(Value::NullValue),
        any::<bool>().prop_map(Value::BoolValue),
        any::<i64>().prop_map(Value::Int64Value),
        any::<f64>().prop_map(Value::Float64Value),
        ".{0,6}".prop_map(Value::Utf8Value),
    ])
    .prop_map(|value| pb::ScalarValue { value })
}

fn expr() -> impl Strategy<Value = pb::Expr> {
    use pb::expr::Kind;
    let leaf = prop_oneof![
        name().prop_map(|c| Some(Kind::Column(c))),
        scalar().prop_map(|v| Some(Kind::Literal(v))),
        Just(None),
    ]
    .prop_map(|kind| pb::Expr { kind });
    leaf.prop_recursive(5, 40, 3, |inner| {
        let boxed = || option::of(inner.clone().prop_map(Box::new));
        prop_oneof![
            (boxed(), -1i32..16, boxed()).prop_map(|(left, op, right)| Kind::Binary(Box::new(
                pb::BinaryExpr { left, op, right }
            ))),
            boxed().prop_map(|input| Kind::Not(Box::new(pb::NotExpr { input }))),
            (function_name(), vec(inner.clone(), 0..4))
                .prop_map(|(name, args)| Kind::Function(pb::FunctionCall { name, args })),
            (boxed(), name())
                .prop_map(|(input, name)| Kind::Alias(Box::new(pb::AliasExpr { input, name }))),
            (boxed(), type_bytes())
                .prop_map(|(input, to_type)| Kind::Cast(Box::new(pb::CastExpr { input, to_type }))),
            (
                vec((option::of(inner.clone()), option::of(inner.clone())), 0..3),
                boxed()
            )
                .prop_map(|(branches, otherwise)| Kind::Case(Box::new(pb::CaseExpr {
                    branches: branches
                        .into_iter()
                        .map(|(when, then)| pb::CaseBranch { when, then })
                        .collect(),
                    otherwise,
                }))),
            (name(), vec(inner.clone(), 0..3), type_bytes()).prop_map(
                |(name, args, return_type)| Kind::Udf(pb::UdfCall {
                    name,
                    args,
                    return_type
                })
            ),
        ]
        .prop_map(|kind| pb::Expr { kind: Some(kind) })
    })
}

fn sort_expr() -> impl Strategy<Value = pb::SortExpr> {
    (option::of(expr()), any::<bool>(), any::<bool>()).prop_map(
        |(expr, descending, nulls_first)| pb::SortExpr {
            expr,
            descending,
            nulls_first,
        },
    )
}

fn leaf_plan() -> impl Strategy<Value = pb::plan_node::Node> {
    use pb::plan_node::Node;
    let file = (
        select(vec!["/data/a.txt", "", "../x", "/etc/shadow", "relative"]),
        any::<u64>(),
        any::<u32>(),
    )
        .prop_map(|(path, size, row_groups)| pb::InputFile {
            path: path.into(),
            size,
            row_groups,
        });
    prop_oneof![
        (
            -1i32..5,
            vec(file, 0..3),
            schema_bytes(),
            option::of(
                (any::<bool>(), any::<u32>()).prop_map(|(has_header, delimiter)| {
                    pb::CsvOptions {
                        has_header,
                        delimiter,
                    }
                })
            )
        )
            .prop_map(|(format, files, schema, csv)| Node::Scan(pb::ScanNode {
                format,
                files,
                schema,
                csv,
            })),
        (any::<u32>(), schema_bytes()).prop_map(|(stage_id, schema)| Node::ShuffleRead(
            pb::ShuffleReadNode { stage_id, schema }
        )),
        (any::<u32>(), schema_bytes(), any::<u32>()).prop_map(|(stage_id, schema, buckets)| {
            Node::BroadcastRead(pb::BroadcastReadNode {
                stage_id,
                schema,
                buckets,
            })
        }),
    ]
}

fn plan() -> impl Strategy<Value = pb::PlanNode> {
    use pb::plan_node::Node;
    let leaf = option::of(leaf_plan()).prop_map(|node| pb::PlanNode { node });
    leaf.prop_recursive(5, 24, 2, |inner| {
        let input = || option::of(inner.clone().prop_map(Box::new));
        let aggregate =
            (-1i32..8, option::of(expr()), name()).prop_map(|(function, input, name)| {
                pb::AggregateExpr {
                    function,
                    input,
                    name,
                }
            });
        prop_oneof![
            (input(), option::of(expr())).prop_map(|(input, predicate)| Node::Filter(Box::new(
                pb::FilterNode { input, predicate }
            ))),
            (input(), vec(expr(), 0..4)).prop_map(|(input, exprs)| Node::Project(Box::new(
                pb::ProjectNode { input, exprs }
            ))),
            (input(), name()).prop_map(|(input, column)| Node::Explode(Box::new(
                pb::ExplodeNode { input, column }
            ))),
            (
                input(),
                vec(expr(), 0..3),
                vec(aggregate, 0..3),
                -1i32..5,
                option::of(expr())
            )
                .prop_map(|(input, keys, aggregates, mode, filter)| {
                    Node::Aggregate(Box::new(pb::AggregateNode {
                        input,
                        keys,
                        aggregates,
                        mode,
                        filter,
                    }))
                }),
            (input(), name(), schema_bytes(), any::<bool>()).prop_map(
                |(input, function, schema, flat)| {
                    let node = Box::new(pb::UserFunctionNode {
                        input,
                        function,
                        schema,
                    });
                    if flat {
                        Node::FlatMap(node)
                    } else {
                        Node::MapBatches(node)
                    }
                }
            ),
            (input(), any::<u64>())
                .prop_map(|(input, n)| Node::Limit(Box::new(pb::LimitNode { input, n }))),
            (input(), any::<u32>(), vec(expr(), 0..3)).prop_map(|(input, partitions, keys)| {
                Node::Repartition(Box::new(pb::RepartitionNode {
                    input,
                    partitions,
                    keys,
                }))
            }),
            (
                input(),
                input(),
                vec(expr(), 0..3),
                vec(expr(), 0..3),
                -1i32..8,
                -1i32..4
            )
                .prop_map(
                    |(left, right, left_keys, right_keys, join_type, strategy)| {
                        Node::Join(Box::new(pb::JoinNode {
                            left,
                            right,
                            left_keys,
                            right_keys,
                            join_type,
                            strategy,
                        }))
                    }
                ),
            (input(), vec(sort_expr(), 0..3), option::of(any::<u64>())).prop_map(
                |(input, order, limit)| Node::Sort(Box::new(pb::SortNode {
                    input,
                    order,
                    limit
                }))
            ),
            (input(), any::<u32>())
                .prop_map(|(input, rows)| Node::Sample(Box::new(pb::SampleNode { input, rows }))),
            (vec(inner.clone(), 0..3), vec(any::<u32>(), 0..3))
                .prop_map(|(inputs, partitions)| Node::Union(pb::UnionNode { inputs, partitions })),
        ]
        .prop_map(|node| pb::PlanNode { node: Some(node) })
    })
}

fn stage_output() -> impl Strategy<Value = pb::StageOutput> {
    use pb::stage_output::Kind;
    option::of(prop_oneof![
        (vec(expr(), 0..3), any::<u32>()).prop_map(|(keys, partitions)| Kind::HashShuffle(
            pb::HashShuffleOutput { keys, partitions }
        )),
        Just(Kind::Collect(pb::CollectSink {})),
        (name(), -1..5i32).prop_map(
            |(directory, mode)| Kind::WriteParquet(pb::WriteParquetSink { directory, mode })
        ),
        (vec(sort_expr(), 0..3), any::<u32>(), any::<u32>()).prop_map(
            |(order, partitions, sample_stage)| Kind::RangeShuffle(pb::RangeShuffleOutput {
                order,
                partitions,
                sample_stage,
            })
        ),
    ])
    .prop_map(|kind| pb::StageOutput { kind })
}

fn task() -> impl Strategy<Value = pb::TaskDefinition> {
    let split = (name(), any::<u64>(), any::<u64>(), vec(any::<u32>(), 0..3)).prop_map(
        |(path, start, end, row_groups)| pb::FileSplit {
            path,
            start,
            end,
            row_groups,
        },
    );
    (
        prop_oneof![
            Just("3f2b8c1e-5d4a-4e2f-9b7c-0a1d2e3f4a5b".to_string()),
            "[a-z0-9./-]{0,40}"
        ],
        any::<u32>(),
        any::<u32>(),
        option::of(plan()),
        option::of(stage_output()),
        vec(split, 0..3),
        any::<u32>(),
    )
        .prop_map(
            |(job_id, stage_id, partition, plan, output, splits, batch_size)| pb::TaskDefinition {
                job_id,
                stage_id,
                partition,
                attempt: 0,
                plan,
                output,
                splits,
                inputs: vec![],
                batch_size,
                storage_options: None,
                shuffle_buckets: None,
            },
        )
}

/// Everything the coordinator does with a submitted plan before it plans stages.
fn exercise_plan(p: &pb::PlanNode) {
    let Ok(plan) = PlanNode::try_from(p) else {
        return;
    };
    let limits = Limits::default();
    let _ = plan.check_submittable();
    let _ = limits.check_plan(&plan);
    let _ = plan.schema();
    let _ = plan.describe();
    let _ = plan.user_functions();
    let _ = (plan_depth(&plan), count_nodes(&plan));
    // What decoded re-encodes to a message that decodes to the same encoding.
    let encoded = pb::PlanNode::from(&plan).encode_to_vec();
    let again = PlanNode::try_from(&pb::PlanNode::decode(encoded.as_slice()).unwrap())
        .expect("a re-encoded plan decodes");
    assert_eq!(pb::PlanNode::from(&again).encode_to_vec(), encoded);
}

fn exercise_submit(r: &pb::SubmitJobRequest) {
    if let Some(p) = &r.plan {
        exercise_plan(p);
    }
    if let Some(s) = &r.sink {
        let _ = Sink::try_from(s);
    }
}

fn exercise_task(t: &pb::TaskDefinition) {
    if let Ok(task) = TaskDefinition::try_from(t) {
        let _ = Limits::default().check_task(&task);
        let _ = task.plan.schema();
        let _ = task.output.label();
    }
    if let Some(o) = &t.output {
        let _ = StageOutput::try_from(o);
    }
}

/// Decodes `bytes` as every message a Quiver process receives from a peer, and exercises what
/// decodes.
fn exercise_bytes(bytes: &[u8]) {
    if let Ok(r) = pb::SubmitJobRequest::decode(bytes) {
        exercise_submit(&r);
    }
    if let Ok(r) = pb::LaunchTaskRequest::decode(bytes)
        && let Some(t) = &r.task
    {
        exercise_task(t);
    }
    if let Ok(r) = pb::RegisterWorkerResponse::decode(bytes)
        && let Some(l) = &r.limits
    {
        let limits = Limits::from(l);
        assert!(limits.max_plan_depth <= quiver_plan::limits::MAX_PLAN_DEPTH_CEILING);
    }
    let _ = pb::ShuffleTicket::decode(bytes);
    let _ = pb::TaskResult::decode(bytes);
    let _ = pb::RegisterWorkerRequest::decode(bytes);
    let _ = pb::JobStatus::decode(bytes);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..1024)) {
        exercise_bytes(&bytes);
    }

    #[test]
    fn random_plans_never_panic(plan in plan(), directory in option::of(name()), mode in -1..5i32) {
        let sink = directory.map(|d| pb::Sink {
            kind: Some(pb::sink::Kind::WriteParquet(pb::WriteParquetSink { directory: d, mode })),
        });
        exercise_submit(&pb::SubmitJobRequest { name: String::new(), plan: Some(plan), sink, options: None, storage_options: None });
    }

    #[test]
    fn random_tasks_never_panic(task in task()) {
        exercise_task(&task);
    }

    #[test]
    fn mutated_messages_never_panic(
        plan in plan(),
        task in task(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
        cut in any::<prop::sample::Index>(),
    ) {
        for mut bytes in [
            pb::SubmitJobRequest { name: "j".into(), plan: Some(plan), sink: None, options: None, storage_options: None }.encode_to_vec(),
            pb::LaunchTaskRequest { task: Some(task) }.encode_to_vec(),
        ] {
            if bytes.is_empty() {
                continue;
            }
            for (at, value) in &flips {
                let i = at.index(bytes.len());
                bytes[i] ^= value;
            }
            exercise_bytes(&bytes);
            exercise_bytes(&bytes[..cut.index(bytes.len())]);
        }
    }
}
