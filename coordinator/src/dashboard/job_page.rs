//! One job's page: its summary, its stage graph, a table of its stages, and its task
//! attempts (a timeline per worker and a table).

use std::collections::HashMap;
use std::fmt::Write as _;

use quiver_proto::v1 as pb;

use super::html::{self, badge, esc};
use super::pages::{display_name, job_state, progress, tasks_done};
use super::svg::{self, stage_state};

/// The `<main>` of the page of `job`; `workers` name the workers its tasks ran on.
pub fn main(job: &pb::JobStatus, workers: &[pb::WorkerStatus]) -> String {
    let mut out = String::new();
    let (done, total) = tasks_done(job);
    let _ = write!(
        out,
        "<p class=\"crumbs\"><a href=\"/jobs\">Jobs</a> ›</p>\
         <h1 class=\"job-name\">{}</h1>\
         <dl class=\"facts\"><dt>job</dt><dd class=\"mono job-id\">{}</dd>\
         <dt>state</dt><dd class=\"job-state\">{}</dd><dt>submitted</dt><dd>{}</dd>\
         <dt>duration</dt><dd>{}</dd><dt>progress</dt><dd>{}</dd></dl>",
        esc(display_name(&job.name)),
        esc(&job.job_id),
        badge(&job_state(job)),
        html::time(job.submitted_at_ms),
        html::duration(job.elapsed_ms),
        progress(done, total),
    );
    if let Some(e) = &job.error {
        let _ = write!(out, "<pre class=\"error\">{}</pre>", esc(e));
    }
    if let Some(w) = &job.waiting_reason {
        let _ = write!(out, "<p class=\"waiting\">Waiting: {}</p>", esc(w));
    }
    out.push_str("<h2>Stages</h2>");
    out.push_str(&svg::stage_graph(&job.stages));
    if !job.stages.is_empty() {
        out.push_str(&stage_table(&job.stages));
    }
    let addresses: HashMap<&str, &str> = workers
        .iter()
        .map(|w| (w.worker_id.as_str(), w.address.as_str()))
        .collect();
    out.push_str(&tasks(job, &addresses));
    out
}

fn stage_table(stages: &[pb::StageStatus]) -> String {
    let mut out = String::from(
        "<table class=\"stages\"><thead><tr><th>stage</th><th>state</th><th>tasks</th>\
         <th>running</th><th>failed</th><th>rows out</th><th>bytes out</th><th>shuffle read</th><th>spilled</th>\
         <th>duration</th><th>reads</th><th>pipeline</th></tr></thead><tbody>",
    );
    for s in stages {
        let inputs: Vec<String> = s
            .input_stages
            .iter()
            .map(|i| format!("<a href=\"#stage-{i}\">{i}</a>"))
            .collect();
        let _ = write!(
            out,
            "<tr class=\"stage-row\" id=\"stage-{id}\" data-stage=\"{id}\"><td class=\"num\">{id}</td>\
             <td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td>\
             <td class=\"pipeline\">{}</td></tr>",
            badge(&stage_state(s)),
            progress(u64::from(s.tasks_done), u64::from(s.partitions)),
            s.tasks_running,
            failed_attempts(s),
            html::count(s.rows_out),
            html::bytes(s.bytes_out),
            html::bytes(shuffle_read(s)),
            html::bytes(s.spilled_bytes),
            html::duration(s.elapsed_ms),
            if inputs.is_empty() {
                "-".into()
            } else {
                inputs.join(", ")
            },
            if s.adaptive.is_empty() {
                esc(&s.description)
            } else {
                format!(
                    "{}<br><span class=\"adaptive\">adaptive: {}</span>",
                    esc(&s.description),
                    esc(&s.adaptive)
                )
            },
            id = s.stage_id,
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// Attempts of the stage that failed (`-` when the status carries no attempts: a job that
/// finished under an earlier coordinator).
fn failed_attempts(s: &pb::StageStatus) -> String {
    if s.attempts.is_empty() {
        return "-".into();
    }
    let failed = s
        .attempts
        .iter()
        .filter(|a| a.state == pb::TaskAttemptState::Failed as i32)
        .count();
    failed.to_string()
}

/// Shuffle input the stage's succeeded attempts read.
fn shuffle_read(s: &pb::StageStatus) -> u64 {
    s.attempts
        .iter()
        .map(|a| a.shuffle_bytes_read)
        .fold(0, u64::saturating_add)
}

/// Most attempts listed (and drawn) on one page; past it, the ones that did not succeed come
/// first.
const MAX_ATTEMPTS_SHOWN: usize = 2000;

/// An attempt's state name (`running`, `succeeded`, `failed`, `cancelled`, `lost`).
fn attempt_state(a: &pb::TaskAttemptStatus) -> String {
    match pb::TaskAttemptState::try_from(a.state) {
        Ok(s) => html::state_name(s.as_str_name(), "TASK_ATTEMPT_STATE_"),
        Err(_) => "unknown".into(),
    }
}

/// The job's task attempts: a timeline of them per worker, and a table.
fn tasks(job: &pb::JobStatus, addresses: &HashMap<&str, &str>) -> String {
    let all: Vec<(u32, &pb::TaskAttemptStatus)> = job
        .stages
        .iter()
        .flat_map(|s| s.attempts.iter().map(move |a| (s.stage_id, a)))
        .collect();
    let mut out = String::from("<h2>Tasks</h2>");
    if all.is_empty() {
        out.push_str(if job.stages.is_empty() {
            "<p class=\"muted\">No task has run yet.</p>"
        } else {
            "<p class=\"muted\">No attempts recorded (none launched yet, or the job finished \
             under an earlier coordinator).</p>"
        });
        return out;
    }
    let mut shown = all.clone();
    if shown.len() > MAX_ATTEMPTS_SHOWN {
        let succeeded = pb::TaskAttemptState::Succeeded as i32;
        shown.sort_by_key(|(_, a)| a.state == succeeded);
        shown.truncate(MAX_ATTEMPTS_SHOWN);
        shown.sort_by_key(|(s, a)| (*s, a.partition, a.attempt));
        let _ = write!(
            out,
            "<p class=\"muted\">Showing {} of {} attempts: every one that did not succeed \
             first.</p>",
            shown.len(),
            all.len()
        );
    }
    let worker = |id: &str| -> String {
        addresses
            .get(id)
            .map_or_else(|| id.get(..8).unwrap_or(id).to_string(), |a| a.to_string())
    };
    // The timeline: one lane per worker, in address order.
    let mut bars: Vec<svg::Bar> = shown
        .iter()
        .map(|(stage, a)| svg::Bar {
            lane: worker(&a.worker_id),
            start_ms: a.started_at_ms,
            end_ms: a.started_at_ms.saturating_add(a.elapsed_ms),
            state: attempt_state(a),
            label: format!(
                "stage {stage} partition {} attempt {}: {} for {}",
                a.partition,
                a.attempt,
                attempt_state(a),
                html::duration(a.elapsed_ms)
            ),
        })
        .collect();
    bars.sort_by(|x, y| x.lane.cmp(&y.lane).then(x.start_ms.cmp(&y.start_ms)));
    out.push_str("<h3>Timeline by worker</h3>");
    out.push_str(&svg::timeline(&bars));
    out.push_str(
        "<table class=\"tasks\"><thead><tr><th>stage</th><th>partition</th><th>attempt</th>\
         <th>worker</th><th>state</th><th>started</th><th>duration</th><th>rows</th>\
         <th>bytes</th><th>shuffle read</th><th>spilled</th><th>error</th></tr></thead><tbody>",
    );
    for (stage, a) in &shown {
        let state = attempt_state(a);
        let speculative = if a.speculative {
            " <span class=\"tag\">speculative</span>"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr class=\"task\" data-stage=\"{stage}\" data-partition=\"{}\" \
             data-attempt=\"{}\"><td class=\"num\">{stage}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"mono\" title=\"{}\">{}</td><td>{}{speculative}</td>\
             <td class=\"num\">+{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"error\">{}</td></tr>",
            a.partition,
            a.attempt,
            a.partition,
            a.attempt,
            esc(&a.worker_id),
            esc(&worker(&a.worker_id)),
            badge(&state),
            html::duration(a.started_at_ms.saturating_sub(job.submitted_at_ms)),
            html::duration(a.elapsed_ms),
            html::count(a.rows_out),
            html::bytes(a.bytes_out),
            html::bytes(a.shuffle_bytes_read),
            html::bytes(a.spilled_bytes),
            esc(a.error.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</tbody></table>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(partition: u32, attempt: u32, state: pb::TaskAttemptState) -> pb::TaskAttemptStatus {
        pb::TaskAttemptStatus {
            partition,
            attempt,
            worker_id: "3f2b8c1e-5d4a-4e2f-9b7c-0a1d2e3f4a5b".into(),
            state: state as i32,
            started_at_ms: 1_000 + u64::from(attempt) * 100,
            elapsed_ms: 50,
            error: (state == pb::TaskAttemptState::Failed)
                .then(|| "<script>alert(1)</script> & more".into()),
            ..Default::default()
        }
    }

    #[test]
    fn lists_every_attempt_with_its_worker_and_escaped_error() {
        let job = pb::JobStatus {
            job_id: "6a0c1d2e-3f4a-4b5c-8d6e-7f8091a2b3c4".into(),
            name: "j".into(),
            state: pb::JobState::Running as i32,
            submitted_at_ms: 900,
            stages: vec![pb::StageStatus {
                stage_id: 0,
                partitions: 2,
                state: pb::StageState::Running as i32,
                attempts: vec![
                    attempt(0, 0, pb::TaskAttemptState::Failed),
                    attempt(0, 1, pb::TaskAttemptState::Succeeded),
                    attempt(1, 2, pb::TaskAttemptState::Running),
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let workers = [pb::WorkerStatus {
            worker_id: "3f2b8c1e-5d4a-4e2f-9b7c-0a1d2e3f4a5b".into(),
            address: "http://10.0.0.7:50051".into(),
            ..Default::default()
        }];
        let html = main(&job, &workers);
        assert_eq!(html.matches("<tr class=\"task\"").count(), 3);
        assert_eq!(html.matches("<rect class=\"bar ").count(), 3);
        assert_eq!(html.matches("http://10.0.0.7:50051").count(), 3 + 1);
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"));
        assert!(!html.contains("<script>"));
        // One failed attempt in the stage's row.
        let row = &html[html.find("id=\"stage-0\"").unwrap()..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(row.contains("<td class=\"num\">1</td>"), "{row}");
    }
}
