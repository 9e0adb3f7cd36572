//! What crosses the wire between a driver and the coordinator means the same on both sides:
//! job options from the SDK's `JobOptions` to the coordinator's resolved ones, and job and
//! stage states from the coordinator's `JobStatus` to the SDK's `JobProgress`.

use quiver::arrow::datatypes::{DataType, Field, Schema};
use quiver::{JobOptions, JobProgress, JobState, StageState};
use quiver_coordinator::admission::Admission;
use quiver_plan::proto_conversion::schema_to_bytes;
use quiver_proto::v1 as pb;

/// The coordinator's options for a job the SDK submitted with `options`.
fn resolved(options: JobOptions) -> quiver_coordinator::job::JobOptions {
    Admission::default()
        .job_options(Some(&pb::JobOptions::from(&options)))
        .unwrap()
}

#[test]
fn broadcast_threshold_keeps_its_meaning() {
    let default = resolved(JobOptions {
        broadcast_threshold: None,
        ..Default::default()
    });
    assert_eq!(default.broadcast_threshold, Some(10 * 1024 * 1024));
    let never = resolved(JobOptions {
        broadcast_threshold: Some(0),
        ..Default::default()
    });
    assert_eq!(never.broadcast_threshold, None, "Some(0) means never");
    for n in [1, 4096, 10 * 1024 * 1024 + 1, u64::MAX] {
        let set = resolved(JobOptions {
            broadcast_threshold: Some(n),
            ..Default::default()
        });
        assert_eq!(set.broadcast_threshold, Some(n));
    }
    // On the wire: absent for the default, present (0 included) otherwise.
    assert_eq!(
        pb::JobOptions::from(&JobOptions::default()).broadcast_threshold,
        None
    );
    let wire = pb::JobOptions::from(&JobOptions {
        broadcast_threshold: Some(0),
        ..Default::default()
    });
    assert_eq!(wire.broadcast_threshold, Some(0));
}

#[test]
fn batch_size_and_partitions_keep_their_meaning() {
    let default = resolved(JobOptions::default());
    assert_eq!(default.batch_size, 8192);
    assert_eq!(
        default.shuffle_partitions, None,
        "decided when the job starts"
    );
    let set = resolved(JobOptions {
        shuffle_partitions: Some(7),
        batch_size: Some(97),
        broadcast_threshold: None,
    });
    assert_eq!(set.batch_size, 97);
    assert_eq!(set.shuffle_partitions, Some(7));
    // The SDK's `None` ("the default") is left out of the request, never sent as 0.
    let wire = pb::JobOptions::from(&JobOptions::default());
    assert_eq!(wire.batch_size, None);
    assert_eq!(wire.shuffle_partitions, None);
    // A job without options at all gets the same defaults.
    let none = Admission::default().job_options(None).unwrap();
    assert_eq!(none.batch_size, 8192);
    assert_eq!(none.shuffle_partitions, None);
    assert_eq!(none.broadcast_threshold, Some(10 * 1024 * 1024));
}

#[test]
fn present_options_out_of_range_are_refused() {
    let admission = Admission::default();
    for (options, expected) in [
        (
            pb::JobOptions {
                batch_size: Some(0),
                ..Default::default()
            },
            "batch_size (rows per batch) must be at least 1",
        ),
        (
            pb::JobOptions {
                shuffle_partitions: Some(0),
                ..Default::default()
            },
            "shuffle_partitions must be at least 1",
        ),
        (
            pb::JobOptions {
                batch_size: Some(u32::MAX),
                ..Default::default()
            },
            "4294967295, over the limit",
        ),
    ] {
        let err = admission
            .job_options(Some(&options))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "expected {expected:?} in {err}");
    }
}

/// A job status in `state` with one stage in `stage_state`.
fn status(state: i32, stage_state: i32) -> pb::JobStatus {
    let schema = Schema::new(vec![Field::new("n", DataType::Int64, true)]);
    pb::JobStatus {
        job_id: "j".into(),
        state,
        stages: vec![pb::StageStatus {
            state: stage_state,
            output: Some(pb::StageOutput {
                kind: Some(pb::stage_output::Kind::Collect(pb::CollectSink {})),
            }),
            ..Default::default()
        }],
        result_schema: schema_to_bytes(&schema),
        ..Default::default()
    }
}

/// `Queued` as the proto spells it: `QUEUED`.
fn screaming(name: &str) -> String {
    name.to_ascii_uppercase()
}

#[test]
fn job_and_stage_states_decode_one_to_one() {
    let jobs = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];
    for state in jobs {
        // Fails to compile when a state is added, until it is listed above.
        match state {
            JobState::Queued
            | JobState::Running
            | JobState::Succeeded
            | JobState::Failed
            | JobState::Cancelled => {}
        }
    }
    let stages = [
        StageState::Waiting,
        StageState::Running,
        StageState::Complete,
        StageState::Failed,
        StageState::Cancelled,
        StageState::Skipped,
    ];
    for state in stages {
        match state {
            StageState::Waiting
            | StageState::Running
            | StageState::Complete
            | StageState::Failed
            | StageState::Cancelled
            | StageState::Skipped => {}
        }
    }
    let defined_jobs: Vec<i32> = (1..100)
        .filter(|&n| pb::JobState::try_from(n).is_ok())
        .collect();
    assert_eq!(defined_jobs.len(), jobs.len());
    for n in defined_jobs {
        let name = pb::JobState::try_from(n).unwrap().as_str_name();
        let p = JobProgress::try_from(status(n, pb::StageState::Waiting as i32)).unwrap();
        assert_eq!(
            format!("JOB_STATE_{}", screaming(&format!("{:?}", p.state))),
            name
        );
    }
    let defined_stages: Vec<i32> = (1..100)
        .filter(|&n| pb::StageState::try_from(n).is_ok())
        .collect();
    assert_eq!(defined_stages.len(), stages.len());
    for n in defined_stages {
        let name = pb::StageState::try_from(n).unwrap().as_str_name();
        let p = JobProgress::try_from(status(pb::JobState::Running as i32, n)).unwrap();
        assert_eq!(
            format!(
                "STAGE_STATE_{}",
                screaming(&format!("{:?}", p.stages[0].state))
            ),
            name
        );
    }
}

#[test]
fn unspecified_and_unknown_states_are_refused_by_name() {
    let running = pb::JobState::Running as i32;
    let waiting = pb::StageState::Waiting as i32;
    for (s, field, problem) in [
        (status(0, waiting), "job.state", "is missing"),
        (status(99, waiting), "job.state", "unknown value 99"),
        (status(running, 0), "stage.state", "is missing"),
        (status(running, -3), "stage.state", "unknown value -3"),
    ] {
        let err = JobProgress::try_from(s).unwrap_err().to_string();
        assert!(err.contains(field) && err.contains(problem), "{err}");
    }
}
