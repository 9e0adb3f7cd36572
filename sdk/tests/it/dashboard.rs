//! The coordinator's dashboard in a real browser: headless Chromium loads its pages from a
//! coordinator and worker processes with one job finished and one in progress, and the DOM
//! it dumps (after the pages' scripts ran) must show what the SDK's `list_jobs`,
//! `list_workers` and job status report. Screenshots are kept under `target/`.
//!
//! Chromium comes from Debian's `chromium` package (`.ci/run` installs it). Without it the
//! test says so and passes, unless `QUIVER_REQUIRE_CHROMIUM=1` (set by `.ci/run` once it is
//! installed) makes that a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use quiver::prelude::*;
use quiver::{JobOptions, JobProgress};

use crate::cluster::ProcessCluster;
use crate::corpus::{reference_counts, result_counts, write_corpus};
use crate::wordcount::word_count;

/// The browser to drive: `QUIVER_CHROMIUM`, else `chromium` (Debian) or `chromium-browser`
/// on the `PATH`.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("QUIVER_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
        .find(|p| p.is_file())
}

/// `target/`, where the screenshots go: above the test executable's `debug/deps/`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// Loads `url` in headless Chromium, saves a screenshot as `shot`, and returns the DOM once
/// the page loaded (its deferred script has run; the content is served complete, so the dump
/// does not depend on when live updates arrive). No `--virtual-time-budget`: the page's open
/// event stream would hold virtual time back until Chromium gives up.
fn browse(chromium: &Path, profile: &Path, url: &str, shot: &Path) -> String {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut dom = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut dom).unwrap();
        dom
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish loading {url} within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let dom = reader.join().unwrap();
    assert!(status.success(), "chromium on {url}: {status}");
    assert!(dom.contains("</html>"), "no DOM from {url}: {dom}");
    dom
}

/// The part of `dom` from the element carrying `marker` to the end of its table row.
fn row<'a>(dom: &'a str, marker: &str) -> &'a str {
    let start = dom
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in {dom}"));
    let end = dom[start..].find("</tr>").map_or(dom.len(), |e| start + e);
    &dom[start..end]
}

/// Polls the job's status until `done` holds.
async fn wait_for(client: &Client, id: &str, done: impl Fn(&JobProgress) -> bool) -> JobProgress {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = client.job(id).status().await.unwrap();
        if done(&p) {
            return p;
        }
        assert!(Instant::now() < deadline, "job {id} never got there: {p:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn state_word(s: quiver::JobState) -> String {
    format!("{s:?}").to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_pages_in_a_browser_match_what_the_sdk_reports() {
    let Some(chromium) = chromium() else {
        assert!(
            std::env::var("QUIVER_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "QUIVER_REQUIRE_CHROMIUM=1 but no chromium was found"
        );
        eprintln!(
            "skipping the dashboard browser test: no chromium on PATH (apt-get install chromium, or set QUIVER_CHROMIUM)"
        );
        return;
    };
    // Stopped workers stay alive in the coordinator's eyes for the whole test; no backup
    // attempts of slow tasks (on a loaded machine), so each task has one attempt.
    let cluster = ProcessCluster::start_with(
        2,
        &["--heartbeat-timeout", "120s", "--speculation", "false"],
        &[],
    )
    .await;
    let client = cluster.client().await;
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 3, 400, 7);
    let options = || JobOptions {
        shuffle_partitions: Some(3),
        ..JobOptions::default()
    };

    // One job finished; its name needs escaping.
    let finished_name = "wordcount <finished> & \"done\"";
    let finished = client
        .submit_with(&word_count(&files), Sink::Collect, finished_name, options())
        .await
        .unwrap();
    finished.wait().await.unwrap();

    // One in progress: its workers are stopped, so its first tasks stay running.
    cluster.signal_worker(0, "STOP");
    cluster.signal_worker(1, "STOP");
    let running = client
        .submit_with(
            &word_count(&files),
            Sink::Collect,
            "wordcount-running",
            options(),
        )
        .await
        .unwrap();
    wait_for(&client, running.id(), |p| {
        p.stages.iter().map(|s| s.tasks_running).sum::<u32>() == 2
    })
    .await;

    let profile = tempfile::tempdir().unwrap();
    let shots = target_dir();
    let pages = [
        ("jobs", "/jobs".to_string()),
        ("finished-job", format!("/jobs/{}", finished.id())),
        ("running-job", format!("/jobs/{}", running.id())),
        ("workers", "/workers".to_string()),
    ];
    // The four loads in parallel, each in its own profile.
    let doms: Vec<String> = std::thread::scope(|s| {
        let loads: Vec<_> = pages
            .iter()
            .map(|(name, path)| {
                let url = format!("{}{path}", cluster.dashboard);
                let profile = profile.path().join(name);
                let shot = shots.join(format!("dashboard-{name}.png"));
                let chromium = &chromium;
                s.spawn(move || browse(chromium, &profile, &url, &shot))
            })
            .collect();
        loads.into_iter().map(|l| l.join().unwrap()).collect()
    });
    let [jobs_page, finished_page, running_page, workers_page] = &doms[..] else {
        unreachable!()
    };

    // What the SDK says, through gRPC: an independent path to the same state.
    let jobs = client.list_jobs().await.unwrap();
    let workers = client.list_workers().await.unwrap();
    assert_eq!(jobs.len(), 2);
    for job in &jobs {
        let r = row(jobs_page, &format!("data-job=\"{}\"", job.job_id));
        assert!(r.contains(&format!("href=\"/jobs/{}\"", job.job_id)), "{r}");
        assert!(
            r.contains(&format!("state-{}", state_word(job.state))),
            "{r}"
        );
        let (done, total) = job.tasks();
        assert!(r.contains(&format!("{done}/{total}")), "{r}");
    }
    // The name is shown as text, never as markup.
    assert!(jobs_page.contains("wordcount &lt;finished&gt; &amp; \"done\""));
    assert!(!jobs_page.contains("<finished>") && !finished_page.contains("<finished>"));
    assert!(jobs_page.contains("wordcount-running"));

    let address_of = |id: &str| {
        workers
            .iter()
            .find(|w| w.worker_id == id)
            .map(|w| w.address.clone())
            .unwrap_or_else(|| panic!("no worker {id}"))
    };
    for (page, id) in [(finished_page, finished.id()), (running_page, running.id())] {
        let status = client.job(id).details().await.unwrap();
        assert!(
            page.contains(&format!("class=\"mono job-id\">{id}<")),
            "{page}"
        );
        assert!(
            row(page, "class=\"job-state\"")
                .contains(&format!("state-{}", state_word(status.state))),
            "{page}"
        );
        // The stage graph: a box per stage, an arrow per shuffle.
        assert!(page.contains("<svg class=\"stage-graph\""));
        assert_eq!(
            page.matches("<g class=\"stage state-").count(),
            status.stages.len(),
            "{page}"
        );
        let edges: usize = status.stages.iter().map(|s| s.inputs.len()).sum();
        assert_eq!(page.matches("<path class=\"edge\"").count(), edges);
        for stage in &status.stages {
            let r = row(page, &format!("id=\"stage-{}\"", stage.id));
            let state = format!("{:?}", stage.state).to_lowercase();
            assert!(r.contains(&format!("state-{state}")), "{r}");
            assert!(
                r.contains(&format!("{}/{}", stage.tasks_done, stage.tasks_total)),
                "{r}"
            );
        }
        // The task table: a row per attempt, on the worker it ran on, in its state.
        let attempts: usize = status.stages.iter().map(|s| s.attempts.len()).sum();
        assert_eq!(
            page.matches("<tr class=\"task\"").count(),
            attempts,
            "{page}"
        );
        assert!(attempts > 0);
        for stage in &status.stages {
            for a in &stage.attempts {
                let r = row(
                    page,
                    &format!(
                        "data-stage=\"{}\" data-partition=\"{}\" data-attempt=\"{}\"",
                        stage.id, a.partition, a.attempt
                    ),
                );
                assert!(r.contains(&address_of(&a.worker_id)), "{r}");
                let state = format!("{:?}", a.state).to_lowercase();
                assert!(r.contains(&format!("state-{state}")), "{r}");
            }
        }
        // The timeline: a bar per attempt.
        assert_eq!(page.matches("<rect class=\"bar ").count(), attempts);
    }
    let finished_attempts: usize = client
        .job(finished.id())
        .details()
        .await
        .unwrap()
        .stages
        .iter()
        .map(|s| s.tasks_total as usize)
        .sum();
    assert_eq!(
        finished_page.matches("<tr class=\"task\"").count(),
        finished_attempts,
        "one attempt per task of the finished job"
    );
    assert_eq!(jobs[0].state, quiver::JobState::Succeeded);
    assert_eq!(jobs[1].state, quiver::JobState::Running);

    assert_eq!(workers.len(), 2);
    for w in &workers {
        let r = row(workers_page, &format!("data-worker=\"{}\"", w.worker_id));
        assert!(r.contains(&format!(">{}<", w.address)), "{r}");
        assert!(r.contains("state-alive"), "{r}");
        // Memory and shuffle bytes served, as the worker's heartbeats said (a dash before
        // its first heartbeat); the workers are stopped, so these do not change meanwhile.
        for (class, value) in [
            ("memory", w.memory_reserved_bytes),
            ("served", w.shuffle_bytes_served),
        ] {
            let dash = format!("class=\"num {class}\">–<");
            assert!(r.contains(&format!("class=\"num {class}\">")), "{r}");
            assert_eq!(r.contains(&dash), value.is_none(), "{class}: {r}");
        }
    }
    // The script ran (it is served by the coordinator and allowed by the page's policy).
    for dom in &doms {
        let status = row(dom, "id=\"live-status\"");
        assert!(
            status.contains("class=\"live off\"") || status.contains("class=\"live on\""),
            "{status}"
        );
    }
    for (name, _) in &pages {
        assert!(shots.join(format!("dashboard-{name}.png")).is_file());
    }

    // Live updates: the running job's page, as its event stream sends it, follows the job
    // to its end once the workers go on; the job finishes with the right counts.
    let mut events = EventStream::open(
        &cluster.dashboard,
        &format!("/events/jobs/{}", running.id()),
    );
    let first = events.next_main();
    assert!(first.contains("state-running"), "{first}");
    let follow = std::thread::spawn(move || {
        loop {
            let main = events.next_main();
            if row(&main, "class=\"job-state\"").contains("state-succeeded") {
                return main;
            }
        }
    });
    cluster.signal_worker(0, "CONT");
    cluster.signal_worker(1, "CONT");
    let got = result_counts(&running.collect().await.unwrap());
    assert_eq!(got, reference_counts(&files));
    let last = follow.join().unwrap();
    let done = client.job(running.id()).details().await.unwrap();
    let attempts: usize = done.stages.iter().map(|s| s.attempts.len()).sum();
    assert_eq!(last.matches("<tr class=\"task\"").count(), attempts);
}

/// A page's server-sent events, read over a plain HTTP/1.0 connection (no chunked encoding to
/// undo).
struct EventStream {
    lines: std::io::Lines<std::io::BufReader<std::net::TcpStream>>,
}

impl EventStream {
    fn open(base: &str, path: &str) -> Self {
        use std::io::{BufRead, Write};
        let host = base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        // Within a deadline: a stream that stops sending fails the test, not hangs it.
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
        let mut lines = std::io::BufReader::new(stream).lines();
        let status = lines.next().unwrap().unwrap();
        assert!(status.contains(" 200 "), "{status}");
        for line in lines.by_ref() {
            if line.unwrap().is_empty() {
                break;
            }
        }
        EventStream { lines }
    }

    /// The data of the next `main` event (a page's new `<main>`).
    fn next_main(&mut self) -> String {
        let (mut name, mut data) = (String::new(), Vec::new());
        loop {
            let line = self
                .lines
                .next()
                .expect("the event stream ended")
                .expect("an event within 30 s");
            if let Some(n) = line.strip_prefix("event:") {
                name = n.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push(d.strip_prefix(' ').unwrap_or(d).to_string());
            } else if line.is_empty() {
                if name == "main" {
                    return data.join("\n");
                }
                (name, data) = (String::new(), Vec::new());
            }
        }
    }
}
