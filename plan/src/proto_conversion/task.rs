//! Wire conversion of what the coordinator sends and signs: sinks, stage outputs, task
//! definitions (splits, shuffle inputs) and read grants. Plans
//! and expressions are converted by [`super::plan`] and [`super::expr`].

use quiver_proto::v1 as pb;

use super::expr::{exprs_from, sort_exprs_from};
use super::{enum_value, required, unspecified};
use crate::error::{PlanError, Result};
use crate::ids::{JobId, StageId, TaskAttempt, WorkerId};
use crate::stage::{
    FileSplit, MapOutputLocation, ReadGrant, ShuffleInput, Sink, StageOutput, TaskDefinition,
};
use quiver_storage::WriteMode;

fn write_mode_to_proto(m: WriteMode) -> pb::WriteMode {
    match m {
        WriteMode::ErrorIfExists => pb::WriteMode::ErrorIfExists,
        WriteMode::Overwrite => pb::WriteMode::Overwrite,
        WriteMode::Append => pb::WriteMode::Append,
    }
}

fn write_mode_from(value: i32) -> Result<WriteMode> {
    let field = "sink.write_parquet.mode";
    Ok(match enum_value(field, value)? {
        pb::WriteMode::Unspecified => return Err(unspecified(field)),
        pb::WriteMode::ErrorIfExists => WriteMode::ErrorIfExists,
        pb::WriteMode::Overwrite => WriteMode::Overwrite,
        pb::WriteMode::Append => WriteMode::Append,
    })
}

impl From<&Sink> for pb::Sink {
    fn from(s: &Sink) -> Self {
        use pb::sink::Kind;
        let kind = match s {
            Sink::Collect => Kind::Collect(pb::CollectSink {}),
            Sink::WriteParquet { directory, mode } => Kind::WriteParquet(pb::WriteParquetSink {
                directory: directory.clone(),
                mode: write_mode_to_proto(*mode) as i32,
            }),
        };
        pb::Sink { kind: Some(kind) }
    }
}

impl TryFrom<&pb::Sink> for Sink {
    type Error = PlanError;
    fn try_from(s: &pb::Sink) -> Result<Self> {
        use pb::sink::Kind;
        Ok(match required("sink.kind", &s.kind)? {
            Kind::Collect(_) => Sink::Collect,
            Kind::WriteParquet(w) => Sink::WriteParquet {
                directory: w.directory.clone(),
                mode: write_mode_from(w.mode)?,
            },
        })
    }
}

impl From<&StageOutput> for pb::StageOutput {
    fn from(o: &StageOutput) -> Self {
        use pb::stage_output::Kind;
        let kind = match o {
            StageOutput::HashShuffle { keys, partitions } => {
                Kind::HashShuffle(pb::HashShuffleOutput {
                    keys: keys.iter().map(Into::into).collect(),
                    partitions: *partitions,
                })
            }
            StageOutput::RangeShuffle {
                order,
                partitions,
                sample,
            } => Kind::RangeShuffle(pb::RangeShuffleOutput {
                order: order.iter().map(Into::into).collect(),
                partitions: *partitions,
                sample_stage: sample.0,
            }),
            StageOutput::Collect => Kind::Collect(pb::CollectSink {}),
            StageOutput::WriteParquet { directory } => Kind::WriteParquet(pb::WriteParquetSink {
                directory: directory.clone(),
                mode: pb::WriteMode::Unspecified as i32,
            }),
        };
        pb::StageOutput { kind: Some(kind) }
    }
}

impl TryFrom<&pb::StageOutput> for StageOutput {
    type Error = PlanError;
    fn try_from(o: &pb::StageOutput) -> Result<Self> {
        use pb::stage_output::Kind;
        Ok(match required("output.kind", &o.kind)? {
            Kind::HashShuffle(h) => {
                if h.partitions == 0 {
                    return Err(PlanError::MalformedProto {
                        field: "hash_shuffle.partitions",
                        problem: "is 0".into(),
                    });
                }
                StageOutput::HashShuffle {
                    keys: exprs_from(&h.keys)?,
                    partitions: h.partitions,
                }
            }
            Kind::RangeShuffle(r) => {
                if r.partitions == 0 {
                    return Err(PlanError::MalformedProto {
                        field: "range_shuffle.partitions",
                        problem: "is 0".into(),
                    });
                }
                StageOutput::RangeShuffle {
                    order: sort_exprs_from(&r.order)?,
                    partitions: r.partitions,
                    sample: StageId(r.sample_stage),
                }
            }
            Kind::Collect(_) => StageOutput::Collect,
            Kind::WriteParquet(w) => StageOutput::WriteParquet {
                directory: w.directory.clone(),
            },
        })
    }
}

impl From<&TaskDefinition> for pb::TaskDefinition {
    fn from(t: &TaskDefinition) -> Self {
        pb::TaskDefinition {
            job_id: t.attempt.job.0.clone(),
            stage_id: t.attempt.stage.0,
            partition: t.attempt.partition,
            attempt: t.attempt.attempt,
            plan: Some((&t.plan).into()),
            output: Some((&t.output).into()),
            splits: t
                .splits
                .iter()
                .map(|s| pb::FileSplit {
                    path: s.path.clone(),
                    start: s.start,
                    end: s.end,
                    row_groups: s.row_groups.clone(),
                })
                .collect(),
            inputs: t
                .inputs
                .iter()
                .map(|i| pb::ShuffleInput {
                    stage_id: i.stage.0,
                    locations: i
                        .locations
                        .iter()
                        .map(|l| pb::MapOutputLocation {
                            map_partition: l.map_partition,
                            worker_id: l.worker.0.clone(),
                            address: l.address.clone(),
                        })
                        .collect(),
                    grant: i.grant.as_ref().map(pb::ReadGrant::from),
                })
                .collect(),
            batch_size: u32::try_from(t.batch_size).unwrap_or(u32::MAX),
            storage_options: storage_options_to_proto(&t.storage_options),
            shuffle_buckets: t.shuffle_buckets.as_ref().map(|r| pb::BucketRange {
                start: r.start,
                end: r.end,
            }),
        }
    }
}

impl From<&ReadGrant> for pb::ReadGrant {
    fn from(g: &ReadGrant) -> Self {
        pb::ReadGrant {
            job_id: g.job.clone(),
            stage_id: g.stage.0,
            expires_at_ms: g.expires_at_ms,
            signature: g.signature.clone(),
        }
    }
}

impl From<&pb::ReadGrant> for ReadGrant {
    fn from(g: &pb::ReadGrant) -> Self {
        ReadGrant {
            job: g.job_id.clone(),
            stage: StageId(g.stage_id),
            expires_at_ms: g.expires_at_ms,
            signature: g.signature.clone(),
        }
    }
}

/// Decodes a task definition. The job id must be a UUID (it names directories on the
/// worker); limits on sizes are checked separately, by [`crate::limits::Limits::check_task`].
impl TryFrom<&pb::TaskDefinition> for TaskDefinition {
    type Error = PlanError;
    fn try_from(t: &pb::TaskDefinition) -> Result<Self> {
        Ok(TaskDefinition {
            attempt: TaskAttempt {
                job: JobId::parse(&t.job_id)?,
                stage: StageId(t.stage_id),
                partition: t.partition,
                attempt: t.attempt,
            },
            plan: required("task.plan", &t.plan)?.try_into()?,
            output: required("task.output", &t.output)?.try_into()?,
            splits: t
                .splits
                .iter()
                .map(|s| FileSplit {
                    path: s.path.clone(),
                    start: s.start,
                    end: s.end,
                    row_groups: s.row_groups.clone(),
                })
                .collect(),
            inputs: t
                .inputs
                .iter()
                .map(|i| ShuffleInput {
                    stage: StageId(i.stage_id),
                    locations: i
                        .locations
                        .iter()
                        .map(|l| MapOutputLocation {
                            map_partition: l.map_partition,
                            worker: WorkerId(l.worker_id.clone()),
                            address: l.address.clone(),
                        })
                        .collect(),
                    grant: i.grant.as_ref().map(ReadGrant::from),
                })
                .collect(),
            // As the coordinator resolved it; `Limits::check_task` refuses 0.
            batch_size: t.batch_size as usize,
            storage_options: storage_options_from_proto(t.storage_options.as_ref())?,
            // Its size is checked against the limits with the rest (`Limits::check_task`).
            shuffle_buckets: t.shuffle_buckets.as_ref().map(|r| r.start..r.end),
        })
    }
}

/// A job's storage options on the wire; `None` when there are none.
pub fn storage_options_to_proto(
    options: &quiver_storage::StorageOptions,
) -> Option<pb::StorageOptions> {
    (!options.is_empty()).then(|| pb::StorageOptions {
        values: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

/// Decodes a job's storage options; an unknown key is refused by name (never by value).
pub fn storage_options_from_proto(
    options: Option<&pb::StorageOptions>,
) -> Result<quiver_storage::StorageOptions> {
    let Some(options) = options else {
        return Ok(quiver_storage::StorageOptions::new());
    };
    quiver_storage::StorageOptions::from_pairs(
        options.values.iter().map(|(k, v)| (k.as_str(), v.clone())),
    )
    .map_err(|e| PlanError::MalformedProto {
        field: "storage_options",
        problem: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanNode, ScanNode};

    #[test]
    fn a_parquet_sink_keeps_its_mode_and_refuses_none() {
        for mode in [
            WriteMode::ErrorIfExists,
            WriteMode::Overwrite,
            WriteMode::Append,
        ] {
            let sink = Sink::WriteParquet {
                directory: "s3://b/out".into(),
                mode,
            };
            assert_eq!(Sink::try_from(&pb::Sink::from(&sink)).unwrap(), sink);
        }
        let unspecified = pb::Sink {
            kind: Some(pb::sink::Kind::WriteParquet(pb::WriteParquetSink {
                directory: "/out".into(),
                mode: 0,
            })),
        };
        let e = Sink::try_from(&unspecified).unwrap_err().to_string();
        assert!(e.contains("sink.write_parquet.mode"), "{e}");
    }

    #[test]
    fn a_task_carries_its_batch_size_as_resolved() {
        let task = TaskDefinition {
            attempt: TaskAttempt {
                job: JobId::parse("3f2b8c1e-5d4a-4e2f-9b7c-0a1d2e3f4a5b").unwrap(),
                stage: StageId(2),
                partition: 3,
                attempt: 1,
            },
            plan: PlanNode::StageRead(crate::plan::StageRead::Shuffle {
                stage: StageId(1),
                schema: ScanNode::text_schema(),
            }),
            output: StageOutput::Collect,
            splits: vec![],
            inputs: vec![],
            batch_size: 97,
            storage_options: quiver_storage::StorageOptions::new(),
            shuffle_buckets: None,
        };
        let wire = pb::TaskDefinition::from(&task);
        assert_eq!(wire.batch_size, 97);
        let back = TaskDefinition::try_from(&wire).unwrap();
        assert_eq!(back.batch_size, 97);
        // 0 is not "the default" any more: it decodes as 0, which the limits refuse.
        let zero = TaskDefinition::try_from(&pb::TaskDefinition {
            batch_size: 0,
            ..wire
        })
        .unwrap();
        assert_eq!(zero.batch_size, 0);
        let err = crate::Limits::default().check_task(&zero).unwrap_err();
        assert!(
            err.to_string().contains("batch_size must be at least 1"),
            "{err}"
        );
    }
}
