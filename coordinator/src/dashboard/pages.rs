//! Which page a path names, and the pages' content: the jobs list, the workers list, and
//! (through `job_page`) one job. Content is rendered on the server from the same statuses the
//! gRPC API returns (`cluster_status`), so a page reads right without its script; the script
//! only swaps in a fresh `<main>` when the server sends one.

use std::collections::HashMap;
use std::fmt::Write as _;

use quiver_plan::JobId;
use quiver_proto::v1 as pb;

use super::html::{self, Section, badge, esc, state_name};
use super::job_page;
use crate::cluster_status;
use crate::coordinator_state::CoordinatorState;

/// A dashboard page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Page {
    Jobs,
    Job(JobId),
    Workers,
}

impl Page {
    /// The page at `path` (as routed: `/`, `/jobs`, `/jobs/<id>`, `/workers`); `None` for
    /// anything else, or a job id that is not a UUID.
    pub fn at(path: &str) -> Option<Page> {
        match path.trim_end_matches('/') {
            "" | "/jobs" => Some(Page::Jobs),
            "/workers" => Some(Page::Workers),
            p => p
                .strip_prefix("/jobs/")
                .and_then(|id| JobId::parse(id).ok())
                .map(Page::Job),
        }
    }

    /// Where the page's live updates are served.
    pub fn events_path(&self) -> String {
        match self {
            Page::Jobs => "/events/jobs".into(),
            Page::Job(id) => format!("/events/jobs/{}", id.0),
            Page::Workers => "/events/workers".into(),
        }
    }

    /// The page's `<main>` and its title, as the cluster is now; `None` for a job the
    /// coordinator does not know (or no longer keeps).
    pub fn render_main(&self, state: &CoordinatorState) -> Option<(String, String)> {
        match self {
            Page::Jobs => Some((
                "Jobs".into(),
                jobs_main(
                    &cluster_status::jobs(state),
                    &cluster_status::workers(state),
                ),
            )),
            Page::Workers => Some((
                "Workers".into(),
                workers_main(&cluster_status::workers(state), &assigned(state)),
            )),
            Page::Job(id) => {
                let job = cluster_status::job(state, id)?;
                let workers = cluster_status::workers(state);
                Some((job.name.clone(), job_page::main(&job, &workers)))
            }
        }
    }

    /// The whole page; `None` for a job the coordinator does not know.
    pub fn render(&self, state: &CoordinatorState) -> Option<String> {
        let (title, main) = self.render_main(state)?;
        let section = match self {
            Page::Workers => Section::Workers,
            Page::Jobs | Page::Job(_) => Section::Jobs,
        };
        Some(html::page(&title, section, &self.events_path(), &main))
    }
}

/// A job's state name (`queued`, `running`, `succeeded`, ...).
pub fn job_state(job: &pb::JobStatus) -> String {
    match pb::JobState::try_from(job.state) {
        Ok(s) => state_name(s.as_str_name(), "JOB_STATE_"),
        Err(_) => "unknown".into(),
    }
}

/// A worker's state name (`alive`, `draining`, `lost`, ...).
pub fn worker_state(w: &pb::WorkerStatus) -> String {
    match pb::WorkerState::try_from(w.state) {
        Ok(s) => state_name(s.as_str_name(), "WORKER_STATE_"),
        Err(_) => "unknown".into(),
    }
}

/// Tasks done and in all, over a job's stages.
pub fn tasks_done(job: &pb::JobStatus) -> (u64, u64) {
    job.stages.iter().fold((0, 0), |(d, t), s| {
        (d + u64::from(s.tasks_done), t + u64::from(s.partitions))
    })
}

/// A progress bar with `done` of `total` written beside it.
pub fn progress(done: u64, total: u64) -> String {
    format!(
        "<span class=\"progress\"><progress value=\"{done}\" max=\"{}\"></progress> \
         <span class=\"num\">{done}/{total}</span></span>",
        total.max(1)
    )
}

/// The jobs page: a summary of the cluster, then every job the coordinator keeps, in the
/// order `quiver jobs` lists them (oldest first).
pub fn jobs_main(jobs: &[pb::JobStatus], workers: &[pb::WorkerStatus]) -> String {
    let alive: Vec<_> = workers
        .iter()
        .filter(|w| worker_state(w) == "alive")
        .collect();
    let slots: u32 = alive.iter().map(|w| w.slots).sum();
    let running = jobs.iter().filter(|j| job_state(j) == "running").count();
    let mut out = String::new();
    let _ = write!(
        out,
        "<h1>Jobs</h1><p class=\"summary\">{} jobs ({running} running) · \
         <a href=\"/workers\">{} workers alive</a>, {slots} slots</p>",
        jobs.len(),
        alive.len()
    );
    if jobs.is_empty() {
        out.push_str("<p class=\"muted\">No jobs yet.</p>");
        return out;
    }
    out.push_str(
        "<table class=\"jobs\"><thead><tr><th>name</th><th>job</th><th>state</th>\
         <th>submitted</th><th>duration</th><th>progress</th><th>stages</th><th>note</th>\
         </tr></thead><tbody>",
    );
    for j in jobs {
        let (done, total) = tasks_done(j);
        let note = j
            .error
            .as_deref()
            .or(j.waiting_reason.as_deref())
            .unwrap_or("");
        let id = esc(&j.job_id);
        let _ = write!(
            out,
            "<tr class=\"job\" data-job=\"{id}\"><td><a href=\"/jobs/{id}\">{}</a></td>\
             <td><a class=\"mono\" href=\"/jobs/{id}\">{}</a></td><td>{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"note {}\" title=\"{}\">{}</td></tr>",
            esc(display_name(&j.name)),
            esc(j.job_id.get(..8).unwrap_or(&j.job_id)),
            badge(&job_state(j)),
            html::time(j.submitted_at_ms),
            html::duration(j.elapsed_ms),
            progress(done, total),
            j.stages.len(),
            if j.error.is_some() {
                "error"
            } else {
                "waiting"
            },
            esc(note),
            esc(&super::svg::shorten(note, 80)),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// A job's name as shown: `(unnamed)` for an empty one.
pub fn display_name(name: &str) -> &str {
    if name.is_empty() { "(unnamed)" } else { name }
}

/// Task attempts the coordinator has running on each worker (by worker id).
fn assigned(state: &CoordinatorState) -> HashMap<String, u32> {
    state
        .scheduler()
        .running_per_worker()
        .into_iter()
        .map(|(id, n)| (id.0, n))
        .collect()
}

/// The workers page: every worker the coordinator knows, by address. `assigned` is what the
/// coordinator believes runs on each (the worker's own count comes with its heartbeats, so
/// the two differ for a moment, or for long when a worker stops answering).
pub fn workers_main(workers: &[pb::WorkerStatus], assigned: &HashMap<String, u32>) -> String {
    let mut out = String::from("<h1>Workers</h1>");
    if workers.is_empty() {
        out.push_str("<p class=\"muted\">No worker has registered.</p>");
        return out;
    }
    out.push_str(
        "<table class=\"workers\"><thead><tr><th>address</th><th>worker</th><th>host</th>\
         <th>state</th><th>slots</th><th title=\"as the worker last reported\">running tasks</th>\
         <th title=\"attempts the coordinator has running there\">assigned</th><th>tasks done</th>\
         <th>last heartbeat</th>\
         <th title=\"operator memory its tasks hold, as the worker last reported\">memory reserved</th>\
         <th title=\"map output it served to others, as the worker last reported\">shuffle served</th>\
         <th>functions</th></tr></thead><tbody>",
    );
    for w in workers {
        let _ = write!(
            out,
            "<tr class=\"worker\" data-worker=\"{}\"><td class=\"mono address\">{}</td>\
             <td class=\"mono\" title=\"{}\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{} ago</td>\
             <td class=\"num memory\">{}</td><td class=\"num served\">{}</td>\
             <td>{}</td></tr>",
            esc(&w.worker_id),
            esc(&w.address),
            esc(&w.worker_id),
            esc(w.worker_id.get(..8).unwrap_or(&w.worker_id)),
            esc(&w.hostname),
            badge(&worker_state(w)),
            w.slots,
            w.running_tasks,
            assigned.get(&w.worker_id).copied().unwrap_or(0),
            w.tasks_completed,
            html::duration(w.last_heartbeat_ms_ago),
            reported_bytes(w.memory_reserved_bytes),
            reported_bytes(w.shuffle_bytes_served),
            esc(&w.functions.join(", ")),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// A figure a worker reported, or a dash when it did not say.
fn reported_bytes(n: Option<u64>) -> String {
    n.map_or_else(|| "–".to_string(), html::bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_pages() {
        let id = "3f2b8c1e-5d4a-4e2f-9b7c-0a1d2e3f4a5b";
        assert_eq!(Page::at("/"), Some(Page::Jobs));
        assert_eq!(Page::at("/jobs/"), Some(Page::Jobs));
        assert_eq!(Page::at("/workers"), Some(Page::Workers));
        assert_eq!(
            Page::at(&format!("/jobs/{id}")),
            Some(Page::Job(JobId(id.into())))
        );
        assert_eq!(Page::at("/jobs/../etc"), None);
        assert_eq!(Page::at("/jobs/<x>"), None);
        assert_eq!(Page::at("/other"), None);
    }

    #[test]
    fn job_names_and_errors_are_escaped() {
        let job = pb::JobStatus {
            job_id: "3f2b8c1e-5d4a-4e2f-9b7c-0a1d2e3f4a5b".into(),
            name: "<img src=x onerror=alert(1)>".into(),
            state: pb::JobState::Failed as i32,
            error: Some("bad \"quote\" <b>".into()),
            ..Default::default()
        };
        let html = jobs_main(&[job], &[]);
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(html.contains("state-failed"));
    }
}
