//! Wire conversion of plan nodes and scans, with their enums (`SourceFormat`,
//! `AggregateMode`, `JoinType`, `JoinStrategy`). Expressions are converted by [`super::expr`];
//! stage outputs and tasks are not here.

use quiver_proto::v1 as pb;

use super::expr::{exprs_from, sort_exprs_from};
use super::{enum_value, required, schema_from_bytes, schema_to_bytes, unspecified};
use crate::aggregate::AggregateExpr;
use crate::error::{PlanError, Result};
use crate::expr::Expr;
use crate::ids::StageId;
use crate::join::{JoinStrategy, JoinType};
use crate::plan::{
    AggregateMode, CsvOptions, InputFile, PlanNode, ScanNode, SourceFormat, StageRead,
};

fn source_format_to_proto(f: SourceFormat) -> pb::SourceFormat {
    match f {
        SourceFormat::Text => pb::SourceFormat::Text,
        SourceFormat::Parquet => pb::SourceFormat::Parquet,
        SourceFormat::Csv => pb::SourceFormat::Csv,
    }
}

fn source_format_from_proto(field: &'static str, value: i32) -> Result<SourceFormat> {
    Ok(match enum_value(field, value)? {
        pb::SourceFormat::Unspecified => return Err(unspecified(field)),
        pb::SourceFormat::Text => SourceFormat::Text,
        pb::SourceFormat::Parquet => SourceFormat::Parquet,
        pb::SourceFormat::Csv => SourceFormat::Csv,
    })
}

fn aggregate_mode_to_proto(m: AggregateMode) -> pb::AggregateMode {
    match m {
        AggregateMode::Single => pb::AggregateMode::Single,
        AggregateMode::Partial => pb::AggregateMode::Partial,
        AggregateMode::Final => pb::AggregateMode::Final,
    }
}

fn aggregate_mode_from_proto(field: &'static str, value: i32) -> Result<AggregateMode> {
    Ok(match enum_value(field, value)? {
        pb::AggregateMode::Unspecified => return Err(unspecified(field)),
        pb::AggregateMode::Single => AggregateMode::Single,
        pb::AggregateMode::Partial => AggregateMode::Partial,
        pb::AggregateMode::Final => AggregateMode::Final,
    })
}

fn join_type_to_proto(t: JoinType) -> pb::JoinType {
    match t {
        JoinType::Inner => pb::JoinType::Inner,
        JoinType::Left => pb::JoinType::Left,
        JoinType::Right => pb::JoinType::Right,
        JoinType::Full => pb::JoinType::Full,
        JoinType::LeftSemi => pb::JoinType::LeftSemi,
        JoinType::LeftAnti => pb::JoinType::LeftAnti,
    }
}

fn join_type_from_proto(field: &'static str, value: i32) -> Result<JoinType> {
    Ok(match enum_value(field, value)? {
        pb::JoinType::Unspecified => return Err(unspecified(field)),
        pb::JoinType::Inner => JoinType::Inner,
        pb::JoinType::Left => JoinType::Left,
        pb::JoinType::Right => JoinType::Right,
        pb::JoinType::Full => JoinType::Full,
        pb::JoinType::LeftSemi => JoinType::LeftSemi,
        pb::JoinType::LeftAnti => JoinType::LeftAnti,
    })
}

fn join_strategy_to_proto(s: JoinStrategy) -> pb::JoinStrategy {
    match s {
        JoinStrategy::Auto => pb::JoinStrategy::Auto,
        JoinStrategy::Shuffle => pb::JoinStrategy::Shuffle,
        JoinStrategy::Broadcast => pb::JoinStrategy::Broadcast,
    }
}

fn join_strategy_from_proto(field: &'static str, value: i32) -> Result<JoinStrategy> {
    Ok(match enum_value(field, value)? {
        pb::JoinStrategy::Unspecified => return Err(unspecified(field)),
        pb::JoinStrategy::Auto => JoinStrategy::Auto,
        pb::JoinStrategy::Shuffle => JoinStrategy::Shuffle,
        pb::JoinStrategy::Broadcast => JoinStrategy::Broadcast,
    })
}

impl From<&PlanNode> for pb::PlanNode {
    fn from(node: &PlanNode) -> Self {
        use pb::plan_node::Node;
        let input = |n: &PlanNode| Some(Box::new(pb::PlanNode::from(n)));
        let node = match node {
            PlanNode::Scan(s) => Node::Scan(pb::ScanNode {
                format: source_format_to_proto(s.format) as i32,
                files: s
                    .files
                    .iter()
                    .map(|f| pb::InputFile {
                        path: f.path.clone(),
                        size: f.size,
                        row_groups: f.row_groups,
                    })
                    .collect(),
                schema: schema_to_bytes(&s.schema),
                csv: Some(pb::CsvOptions {
                    has_header: s.csv.has_header,
                    delimiter: u32::from(s.csv.delimiter),
                }),
            }),
            PlanNode::Filter {
                input: i,
                predicate,
            } => Node::Filter(Box::new(pb::FilterNode {
                input: input(i),
                predicate: Some(predicate.into()),
            })),
            PlanNode::Project { input: i, exprs } => Node::Project(Box::new(pb::ProjectNode {
                input: input(i),
                exprs: exprs.iter().map(Into::into).collect(),
            })),
            PlanNode::Explode { input: i, column } => Node::Explode(Box::new(pb::ExplodeNode {
                input: input(i),
                column: column.clone(),
            })),
            PlanNode::Aggregate {
                input: i,
                keys,
                aggregates,
                mode,
                filter,
            } => Node::Aggregate(Box::new(pb::AggregateNode {
                input: input(i),
                keys: keys.iter().map(Into::into).collect(),
                aggregates: aggregates.iter().map(Into::into).collect(),
                mode: aggregate_mode_to_proto(*mode) as i32,
                filter: filter.as_ref().map(Into::into),
            })),
            PlanNode::StageRead(StageRead::Shuffle { stage, schema }) => {
                Node::ShuffleRead(pb::ShuffleReadNode {
                    stage_id: stage.0,
                    schema: schema_to_bytes(schema),
                })
            }
            PlanNode::MapBatches {
                input: i,
                function,
                schema,
            } => Node::MapBatches(Box::new(pb::UserFunctionNode {
                input: input(i),
                function: function.clone(),
                schema: schema_to_bytes(schema),
            })),
            PlanNode::Limit { input: i, n } => Node::Limit(Box::new(pb::LimitNode {
                input: input(i),
                n: *n,
            })),
            PlanNode::Repartition {
                input: i,
                partitions,
                keys,
            } => Node::Repartition(Box::new(pb::RepartitionNode {
                input: input(i),
                partitions: *partitions,
                keys: keys.iter().map(Into::into).collect(),
            })),
            PlanNode::FlatMap {
                input: i,
                function,
                schema,
            } => Node::FlatMap(Box::new(pb::UserFunctionNode {
                input: input(i),
                function: function.clone(),
                schema: schema_to_bytes(schema),
            })),
            PlanNode::Join {
                left,
                right,
                left_keys,
                right_keys,
                join_type,
                strategy,
            } => Node::Join(Box::new(pb::JoinNode {
                left: input(left),
                right: input(right),
                left_keys: left_keys.iter().map(Into::into).collect(),
                right_keys: right_keys.iter().map(Into::into).collect(),
                join_type: join_type_to_proto(*join_type) as i32,
                strategy: join_strategy_to_proto(*strategy) as i32,
            })),
            PlanNode::StageRead(StageRead::Broadcast {
                stage,
                schema,
                buckets,
            }) => Node::BroadcastRead(pb::BroadcastReadNode {
                stage_id: stage.0,
                schema: schema_to_bytes(schema),
                buckets: *buckets,
            }),
            PlanNode::Sort {
                input: i,
                order,
                limit,
            } => Node::Sort(Box::new(pb::SortNode {
                input: input(i),
                order: order.iter().map(Into::into).collect(),
                limit: *limit,
            })),
            PlanNode::Sample { input: i, rows } => Node::Sample(Box::new(pb::SampleNode {
                input: input(i),
                rows: *rows,
            })),
            PlanNode::Union { inputs, partitions } => Node::Union(pb::UnionNode {
                inputs: inputs.iter().map(pb::PlanNode::from).collect(),
                partitions: partitions.clone(),
            }),
        };
        pb::PlanNode { node: Some(node) }
    }
}

/// CSV options; a delimiter must be one byte.
fn csv_options_from_proto(c: &pb::CsvOptions) -> Result<CsvOptions> {
    Ok(CsvOptions {
        has_header: c.has_header,
        delimiter: u8::try_from(c.delimiter).map_err(|_| PlanError::MalformedProto {
            field: "scan.csv.delimiter",
            problem: format!("is {}, not one byte", c.delimiter),
        })?,
    })
}

fn boxed_plan(field: &'static str, n: &Option<Box<pb::PlanNode>>) -> Result<Box<PlanNode>> {
    Ok(Box::new(PlanNode::try_from(required(field, n)?.as_ref())?))
}

impl TryFrom<&pb::PlanNode> for PlanNode {
    type Error = PlanError;
    fn try_from(node: &pb::PlanNode) -> Result<Self> {
        use pb::plan_node::Node;
        Ok(match required("plan.node", &node.node)? {
            Node::Scan(s) => {
                let format = source_format_from_proto("scan.format", s.format)?;
                let csv = csv_options_from_proto(required("scan.csv", &s.csv)?)?;
                PlanNode::Scan(ScanNode {
                    format,
                    files: s
                        .files
                        .iter()
                        .map(|f| InputFile {
                            path: f.path.clone(),
                            size: f.size,
                            row_groups: f.row_groups,
                        })
                        .collect(),
                    schema: schema_from_bytes(&s.schema)?,
                    csv,
                })
            }
            Node::Filter(f) => PlanNode::Filter {
                input: boxed_plan("filter.input", &f.input)?,
                predicate: required("filter.predicate", &f.predicate)?.try_into()?,
            },
            Node::Project(p) => PlanNode::Project {
                input: boxed_plan("project.input", &p.input)?,
                exprs: exprs_from(&p.exprs)?,
            },
            Node::Explode(e) => PlanNode::Explode {
                input: boxed_plan("explode.input", &e.input)?,
                column: e.column.clone(),
            },
            Node::Aggregate(a) => PlanNode::Aggregate {
                input: boxed_plan("aggregate.input", &a.input)?,
                keys: exprs_from(&a.keys)?,
                aggregates: a
                    .aggregates
                    .iter()
                    .map(AggregateExpr::try_from)
                    .collect::<Result<_>>()?,
                mode: aggregate_mode_from_proto("aggregate.mode", a.mode)?,
                filter: a.filter.as_ref().map(Expr::try_from).transpose()?,
            },
            Node::ShuffleRead(r) => PlanNode::StageRead(StageRead::Shuffle {
                stage: StageId(r.stage_id),
                schema: schema_from_bytes(&r.schema)?,
            }),
            Node::MapBatches(m) => PlanNode::MapBatches {
                input: boxed_plan("map_batches.input", &m.input)?,
                function: m.function.clone(),
                schema: schema_from_bytes(&m.schema)?,
            },
            Node::Limit(l) => PlanNode::Limit {
                input: boxed_plan("limit.input", &l.input)?,
                n: l.n,
            },
            Node::Repartition(r) => PlanNode::Repartition {
                input: boxed_plan("repartition.input", &r.input)?,
                partitions: r.partitions,
                keys: exprs_from(&r.keys)?,
            },
            Node::FlatMap(m) => PlanNode::FlatMap {
                input: boxed_plan("flat_map.input", &m.input)?,
                function: m.function.clone(),
                schema: schema_from_bytes(&m.schema)?,
            },
            Node::Join(j) => PlanNode::Join {
                left: boxed_plan("join.left", &j.left)?,
                right: boxed_plan("join.right", &j.right)?,
                left_keys: exprs_from(&j.left_keys)?,
                right_keys: exprs_from(&j.right_keys)?,
                join_type: join_type_from_proto("join.join_type", j.join_type)?,
                strategy: join_strategy_from_proto("join.strategy", j.strategy)?,
            },
            // Its size is checked with the plan's other partition counts (`Limits::check_plan`).
            Node::BroadcastRead(r) => PlanNode::StageRead(StageRead::Broadcast {
                stage: StageId(r.stage_id),
                schema: schema_from_bytes(&r.schema)?,
                buckets: r.buckets.max(1),
            }),
            Node::Sort(o) => PlanNode::Sort {
                input: boxed_plan("sort.input", &o.input)?,
                order: sort_exprs_from(&o.order)?,
                limit: o.limit,
            },
            Node::Sample(m) => PlanNode::Sample {
                input: boxed_plan("sample.input", &m.input)?,
                rows: m.rows,
            },
            Node::Union(u) => PlanNode::Union {
                inputs: u
                    .inputs
                    .iter()
                    .map(PlanNode::try_from)
                    .collect::<Result<_>>()?,
                partitions: u.partitions.clone(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::aggregate::{count, mean};
    use crate::expr::{col, lit, lower, words};
    use crate::proto_conversion::enum_checks::{all_variants, check_enum};
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn plan_round_trips_through_proto() {
        let scan = PlanNode::Scan(ScanNode {
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
                has_header: false,
                delimiter: b';',
            },
        });
        let plan = PlanNode::Aggregate {
            input: Box::new(PlanNode::Explode {
                input: Box::new(PlanNode::Project {
                    input: Box::new(PlanNode::Filter {
                        input: Box::new(scan),
                        predicate: (col("a") % lit(3)).eq(lit(1)).or(lit(false).not()),
                    }),
                    exprs: vec![
                        words(lower(col("s"))).alias("w"),
                        col("a") / lit(2.5),
                        crate::expr::when(col("a").gt(lit(1)), lit("big"))
                            .when(col("a").is_null(), lit("none"))
                            .otherwise(crate::expr::substring(col("s"), 2, Some(3)))
                            .alias("c"),
                        crate::expr::coalesce(vec![col("a").cast(DataType::Float64), lit(0.5)])
                            .alias("k"),
                        crate::expr::regexp_like(col("s"), "^a+").alias("r"),
                    ],
                }),
                column: "w".into(),
            }),
            keys: vec![col("w")],
            aggregates: vec![count(), mean(col("a")).alias("m")],
            mode: AggregateMode::Single,
            filter: None,
        };
        let back = PlanNode::try_from(&pb::PlanNode::from(&plan)).unwrap();
        assert_eq!(back, plan);
    }

    #[test]
    fn user_functions_round_trip_and_are_listed() {
        let scan = PlanNode::Scan(ScanNode {
            format: SourceFormat::Text,
            files: vec![],
            schema: ScanNode::text_schema(),
            csv: CsvOptions::default(),
        });
        let out = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let plan = PlanNode::FlatMap {
            input: Box::new(PlanNode::MapBatches {
                input: Box::new(PlanNode::Filter {
                    input: Box::new(scan),
                    predicate: Expr::Udf {
                        name: "is_good".into(),
                        args: vec![col("line"), lit(3)],
                        return_type: DataType::Boolean,
                    },
                }),
                function: "enrich".into(),
                schema: out.clone(),
            }),
            function: "split".into(),
            schema: out,
        };
        let back = PlanNode::try_from(&pb::PlanNode::from(&plan)).unwrap();
        assert_eq!(back, plan);
        assert_eq!(back.user_functions(), vec!["enrich", "is_good", "split"]);
        assert_eq!(back.schema().unwrap().field(0).name(), "n");
    }

    #[test]
    fn missing_fields_are_named() {
        let err = PlanNode::try_from(&pb::PlanNode { node: None }).unwrap_err();
        assert!(err.to_string().contains("plan.node"), "{err}");
        let bad_fn = pb::Expr {
            kind: Some(pb::expr::Kind::Function(pb::FunctionCall {
                name: "nope".into(),
                args: vec![],
            })),
        };
        assert!(
            Expr::try_from(&bad_fn)
                .unwrap_err()
                .to_string()
                .contains("'nope'")
        );
    }

    #[test]
    fn source_formats_cross_the_wire_one_to_one() {
        let all = all_variants!(SourceFormat: Text, Parquet, Csv);
        check_enum(
            &all,
            "SOURCE_FORMAT_",
            "scan.format",
            |v| source_format_to_proto(v) as i32,
            source_format_from_proto,
            |n| pb::SourceFormat::try_from(n).ok().map(|p| p.as_str_name()),
        );
    }

    #[test]
    fn aggregate_modes_cross_the_wire_one_to_one() {
        let all = all_variants!(AggregateMode: Single, Partial, Final);
        check_enum(
            &all,
            "AGGREGATE_MODE_",
            "aggregate.mode",
            |v| aggregate_mode_to_proto(v) as i32,
            aggregate_mode_from_proto,
            |n| pb::AggregateMode::try_from(n).ok().map(|p| p.as_str_name()),
        );
    }

    #[test]
    fn join_types_cross_the_wire_one_to_one() {
        let all = all_variants!(JoinType: Inner, Left, Right, Full, LeftSemi, LeftAnti);
        check_enum(
            &all,
            "JOIN_TYPE_",
            "join.join_type",
            |v| join_type_to_proto(v) as i32,
            join_type_from_proto,
            |n| pb::JoinType::try_from(n).ok().map(|p| p.as_str_name()),
        );
    }

    #[test]
    fn join_strategies_cross_the_wire_one_to_one() {
        let all = all_variants!(JoinStrategy: Auto, Shuffle, Broadcast);
        check_enum(
            &all,
            "JOIN_STRATEGY_",
            "join.strategy",
            |v| join_strategy_to_proto(v) as i32,
            join_strategy_from_proto,
            |n| pb::JoinStrategy::try_from(n).ok().map(|p| p.as_str_name()),
        );
    }

    /// A scan node of one CSV file with `csv`.
    fn csv_scan(csv: pb::CsvOptions) -> pb::PlanNode {
        let schema = Schema::new(vec![Field::new("a", DataType::Int64, true)]);
        pb::PlanNode {
            node: Some(pb::plan_node::Node::Scan(pb::ScanNode {
                format: pb::SourceFormat::Csv as i32,
                files: vec![],
                schema: schema_to_bytes(&schema),
                csv: Some(csv),
            })),
        }
    }

    #[test]
    fn a_csv_delimiter_must_be_one_byte() {
        for (delimiter, byte) in [(u32::from(b'|'), b'|'), (0, 0), (255, 255)] {
            let scan = PlanNode::try_from(&csv_scan(pb::CsvOptions {
                has_header: true,
                delimiter,
            }))
            .unwrap();
            let PlanNode::Scan(s) = scan else {
                panic!("not a scan: {scan:?}")
            };
            assert_eq!(s.csv.delimiter, byte);
            assert!(s.csv.has_header);
        }
        for delimiter in [256, 0x1_002c, u32::MAX] {
            let err = PlanNode::try_from(&csv_scan(pb::CsvOptions {
                has_header: false,
                delimiter,
            }))
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("scan.csv.delimiter") && err.contains(&delimiter.to_string()),
                "{err}"
            );
        }
    }

    #[test]
    fn an_unspecified_enum_inside_a_plan_is_refused_by_name() {
        let mut node = pb::PlanNode::from(&PlanNode::Join {
            left: Box::new(PlanNode::Scan(ScanNode {
                format: SourceFormat::Text,
                files: vec![],
                schema: ScanNode::text_schema(),
                csv: CsvOptions::default(),
            })),
            right: Box::new(PlanNode::Scan(ScanNode {
                format: SourceFormat::Text,
                files: vec![],
                schema: ScanNode::text_schema(),
                csv: CsvOptions::default(),
            })),
            left_keys: vec![col("line")],
            right_keys: vec![col("line")],
            join_type: JoinType::Inner,
            strategy: JoinStrategy::Auto,
        });
        let Some(pb::plan_node::Node::Join(j)) = node.node.as_mut() else {
            panic!("not a join")
        };
        j.strategy = 0;
        let err = PlanNode::try_from(&node).unwrap_err().to_string();
        assert!(err.contains("join.strategy is missing"), "{err}");
    }
}
