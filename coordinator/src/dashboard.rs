//! The dashboard: pages of jobs (`/`, `/jobs`), of one job (`/jobs/<id>`: its stage graph,
//! stages and task attempts) and of workers (`/workers`), kept live by server-sent events
//! (`/events/<page>`); and Prometheus metrics (`/metrics`). Served over HTTP (HTTPS with
//! `--tls-cert`) beside the gRPC API. Read-only; it never changes state.
//!
//! Every path needs the client token, as `authorization: Bearer <token>` or as the password
//! of HTTP Basic authentication (a browser asks for it; any user name), unless the cluster has
//! no token; `--metrics-public` opens `/metrics` alone, for scrapers on a trusted network.
//! `/healthz` (for probes) answers `ok` to anyone: it tells nothing else.
//!
//! # Layout
//! - this file — the server, its access check, the routes.
//! - `metrics` — `/metrics`, in the Prometheus text format.
//! - `pages` — which page a path names; the jobs and workers pages.
//! - `job_page` — one job's page: summary, stages, task attempts.
//! - `svg` — the stage graph and the task timeline, drawn as inline SVG.
//! - `html` — escaping, the page shell, how numbers, sizes and times are written.
//! - `events` — the server-sent events that keep a page live.
//! - `assets/` — the stylesheet and the script, compiled in: a page loads nothing from
//!   elsewhere, and its Content-Security-Policy forbids it.

mod events;
mod html;
mod job_page;
mod metrics;
mod pages;
mod svg;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use quiver_net::metrics_text;
use quiver_net::rustls::ServerConfig;
use quiver_net::{GuardedListener, GuardedStream, Role, TlsIncoming, TlsStream};
use tokio::sync::watch;

use self::events::Feeds;
use self::pages::Page;
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
    let feeds = Feeds {
        state,
        shutdown: shutdown.clone(),
    };
    let app = Router::new()
        .route("/", get(page))
        .route("/jobs", get(page))
        .route("/jobs/", get(page))
        .route("/jobs/{id}", get(page))
        .route("/workers", get(page))
        .route("/events/{*page}", get(events::events))
        .route("/assets/style.css", get(style))
        .route("/assets/live.js", get(script))
        .route("/metrics", get(metrics))
        // For probes (e.g. Kubernetes): says only that the coordinator serves; no token.
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(feeds)
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

/// `GET /metrics`: rendered off the async threads (it walks every kept job).
async fn metrics(State(state): State<Arc<CoordinatorState>>) -> Response {
    match tokio::task::spawn_blocking(move || metrics::render(&state)).await {
        Ok(text) => ([(header::CONTENT_TYPE, metrics_text::CONTENT_TYPE)], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rendering the metrics failed: {e}\n"),
        )
            .into_response(),
    }
}

impl FromRef<Feeds> for Arc<CoordinatorState> {
    fn from_ref(feeds: &Feeds) -> Self {
        feeds.state.clone()
    }
}

/// What a page may load: only this server's stylesheet and script, and its own events.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// `GET /`, `/jobs`, `/jobs/<id>`, `/workers`: the page, rendered now (404 for a job the
/// coordinator does not know).
async fn page(State(state): State<Arc<CoordinatorState>>, uri: Uri) -> Response {
    let Some(page) = Page::at(uri.path()) else {
        return not_found("No such page: job ids are UUIDs.");
    };
    // Rendering is CPU work (a job's page lists every attempt): not on a tokio thread.
    match tokio::task::spawn_blocking(move || page.render(&state)).await {
        Ok(Some(html)) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            html,
        )
            .into_response(),
        Ok(None) => not_found(
            "This coordinator does not know that job (or no longer keeps it: see --job-history).",
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rendering the page failed: {e}\n"),
        )
            .into_response(),
    }
}

fn not_found(why: &str) -> Response {
    let main = format!(
        "<h1>Not found</h1><p>{}</p><p><a href=\"/jobs\">All jobs</a></p>",
        html::esc(why)
    );
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        ],
        html::page("Not found", html::Section::Jobs, "", &main),
    )
        .into_response()
}

async fn style() -> impl IntoResponse {
    asset(
        "text/css; charset=utf-8",
        include_str!("dashboard/assets/style.css"),
    )
}

async fn script() -> impl IntoResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("dashboard/assets/live.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
}
