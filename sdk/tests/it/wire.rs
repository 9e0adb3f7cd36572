//! What crosses the wire between a driver and the coordinator means the same on both sides:
//! job and stage states from the coordinator's `JobStatus` to the SDK's `JobProgress`.

use quiver::arrow::datatypes::{DataType, Field, Schema};
use quiver::{JobProgress, JobState, StageState};
use quiver_plan::proto_conversion::schema_to_bytes;
use quiver_proto::v1 as pb;

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
    ];
    for state in stages {
        match state {
            StageState::Waiting
            | StageState::Running
            | StageState::Complete
            | StageState::Failed => {}
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
