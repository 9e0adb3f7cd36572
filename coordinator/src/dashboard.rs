//! The dashboard: an HTML page of workers and jobs (`/`) and Prometheus metrics
//! (`/metrics`), served over HTTP (HTTPS with `--tls-cert`) beside the gRPC API. Read-only; it
//! never changes state.
//!
//! Both pages need the client token, as `authorization: Bearer <token>` or as the password of
//! HTTP Basic authentication (a browser asks for it; any user name), unless the cluster has no
//! token; `--metrics-public` opens `/metrics` alone, for scrapers on a trusted network.
//! `/healthz` (for probes) answers `ok` to anyone: it tells nothing else.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use quiver_net::rustls::ServerConfig;
use quiver_net::{GuardedListener, GuardedStream, Role, TlsIncoming, TlsStream};
use tokio::sync::watch;

use crate::access::CoordinatorAccess;
use crate::coordinator_state::CoordinatorState;
use crate::job::JobState;
use crate::worker_registry::Liveness;

/// Who may see the dashboard.
pub struct DashboardAccess {
    pub policy: Arc<CoordinatorAccess>,
    /// `/metrics` without a token.
    pub metrics_public: bool,
}

struct PlainListener(GuardedListener);

impl axum::serve::Listener for PlainListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        self.0.accept().await
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

struct TlsListener(TlsIncoming);

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<GuardedStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        self.0.accept().await
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.0.local_addr())
    }
}

/// Serves the dashboard on `listener` (with TLS when `tls` is given) until `shutdown` flips
/// to true.
pub async fn serve(
    listener: GuardedListener,
    tls: Option<Arc<ServerConfig>>,
    state: Arc<CoordinatorState>,
    access: DashboardAccess,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        // For probes (e.g. Kubernetes): says only that the coordinator serves; no token.
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(access),
            require_client,
        ));
    let stop = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    let served = match tls {
        None => {
            axum::serve(PlainListener(listener), app)
                .with_graceful_shutdown(stop)
                .await
        }
        Some(config) => match TlsIncoming::new(listener, config) {
            Ok(incoming) => {
                axum::serve(TlsListener(incoming), app)
                    .with_graceful_shutdown(stop)
                    .await
            }
            Err(e) => Err(e),
        },
    };
    if let Err(e) = served {
        tracing::error!(error = %e, "dashboard server failed");
    }
}

/// Lets a request through only with the client token (or to `/healthz`, or a public
/// `/metrics`).
async fn require_client(
    State(access): State<Arc<DashboardAccess>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let open = path == "/healthz" || (access.metrics_public && path == "/metrics");
    if open {
        return next.run(request).await;
    }
    match access.policy.check_role(Role::Client, request.headers()) {
        Ok(_) => next.run(request).await,
        Err(status) if status.code() == tonic::Code::PermissionDenied => {
            (StatusCode::FORBIDDEN, status.message().to_string()).into_response()
        }
        Err(status) => (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"quiver\", charset=\"UTF-8\"",
            )],
            format!(
                "{}\nIn a browser: any user name, the token as password.\n",
                status.message()
            ),
        )
            .into_response(),
    }
}

fn state_name(s: JobState) -> &'static str {
    match s {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

fn liveness(l: Liveness, draining: bool) -> &'static str {
    match (l, draining) {
        (Liveness::Lost, _) => "lost",
        (Liveness::Left, _) => "left",
        (Liveness::Alive, true) => "draining",
        (Liveness::Alive, false) => "alive",
    }
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

async fn metrics(State(state): State<Arc<CoordinatorState>>) -> impl IntoResponse {
    let mut out = String::new();
    let workers = state.scheduler().workers().snapshot();
    let _ = writeln!(
        out,
        "# HELP quiver_workers Registered workers by state.\n# TYPE quiver_workers gauge"
    );
    for s in ["alive", "draining", "lost"] {
        let n = workers
            .iter()
            .filter(|(_, w)| liveness(w.liveness, w.draining) == s)
            .count();
        let _ = writeln!(out, "quiver_workers{{state=\"{s}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP quiver_worker_slots Task slots of each worker.\n# TYPE quiver_worker_slots gauge"
    );
    for (id, w) in &workers {
        let _ = writeln!(out, "quiver_worker_slots{{worker=\"{id}\"}} {}", w.slots);
    }
    let _ = writeln!(
        out,
        "# HELP quiver_worker_running_tasks Tasks running on each worker, as it reported.\n# TYPE quiver_worker_running_tasks gauge"
    );
    for (id, w) in &workers {
        let _ = writeln!(
            out,
            "quiver_worker_running_tasks{{worker=\"{id}\"}} {}",
            w.running_tasks
        );
    }
    let _ = writeln!(
        out,
        "# HELP quiver_worker_tasks_completed_total Task attempts each worker finished successfully.\n# TYPE quiver_worker_tasks_completed_total counter"
    );
    for (id, w) in &workers {
        let _ = writeln!(
            out,
            "quiver_worker_tasks_completed_total{{worker=\"{id}\"}} {}",
            w.tasks_completed
        );
    }
    let _ = writeln!(
        out,
        "# HELP quiver_jobs Jobs by state.\n# TYPE quiver_jobs gauge"
    );
    {
        let scheduler = state.scheduler();
        for s in [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Cancelled,
        ] {
            let n = scheduler.jobs().filter(|j| j.state == s).count();
            let _ = writeln!(out, "quiver_jobs{{state=\"{}\"}} {n}", state_name(s));
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

async fn page(State(state): State<Arc<CoordinatorState>>) -> Html<String> {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\
         <title>Quiver</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#eee}</style></head><body>\
         <h1>Quiver coordinator</h1><h2>Workers</h2><table><tr><th>worker</th><th>address</th><th>state</th>\
         <th>slots</th><th>running</th><th>completed</th><th>last heartbeat</th><th>functions</th></tr>",
    );
    let now = state.now();
    let workers = state.scheduler().workers().snapshot();
    for (id, w) in workers {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ms ago</td><td>{}</td></tr>",
            esc(id.short()),
            esc(&w.address),
            liveness(w.liveness, w.draining),
            w.slots,
            w.running_tasks,
            w.tasks_completed,
            now.since(w.last_heartbeat).as_millis(),
            esc(&w.functions.join(", "))
        );
    }
    html.push_str("</table><h2>Jobs</h2><table><tr><th>job</th><th>name</th><th>state</th><th>tasks</th><th>stages</th><th>error</th></tr>");
    {
        let scheduler = state.scheduler();
        let jobs: Vec<_> = scheduler.jobs().collect();
        for job in jobs.iter().rev().take(100) {
            let total: usize = job.stages.iter().map(|s| s.tasks.len()).sum();
            let done: usize = job
                .stages
                .iter()
                .map(|s| s.tasks.iter().filter(|t| t.is_done()).count())
                .sum();
            let stages: Vec<String> = job
                .stages
                .iter()
                .map(|s| format!("{}: {}", s.id, esc(&s.plan.label())))
                .collect();
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{done}/{total}</td><td>{}</td><td>{}</td></tr>",
                esc(&job.id.0),
                esc(&job.name),
                state_name(job.state),
                stages.join("<br>"),
                esc(job
                    .error
                    .as_deref()
                    .or(job.waiting_reason.as_deref())
                    .unwrap_or(""))
            );
        }
    }
    html.push_str("</table></body></html>");
    Html(html)
}
