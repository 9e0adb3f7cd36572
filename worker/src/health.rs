//! The worker's optional HTTP endpoint (`--health-bind`): plain HTTP for probes such as
//! Kubernetes' `httpGet` and for Prometheus, apart from the gRPC port (which needs a token and
//! maybe TLS).
//!
//! - `GET /healthz` — 200 while the process serves (liveness).
//! - `GET /readyz` — 200 while the worker is registered with its coordinator and not
//!   draining, 503 otherwise (readiness: a draining worker takes no new tasks).
//! - `GET /metrics` — the worker's metrics (`worker_metrics`), in the Prometheus text format.
//!
//! The probes say nothing beyond `ok` / why not, so they need no token. `/metrics` needs the
//! worker's token (`authorization: Bearer <token>`, or as the password of HTTP Basic) when the
//! worker has one, unless `--metrics-public` — the rule of the coordinator's `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use quiver_net::TokenDigest;
use quiver_net::metrics_text::CONTENT_TYPE;
use quiver_net::server_auth::presented_secret;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::coordinator_link::CoordinatorLink;
use crate::task_executor::TaskExecutor;
use crate::worker_metrics::WorkerGauges;

/// What the endpoint reads.
pub(crate) struct HealthEndpoint {
    pub link: Arc<CoordinatorLink>,
    pub executor: Arc<TaskExecutor>,
    /// The token `/metrics` needs; `None`: open (no token, or `--metrics-public`).
    pub metrics_token: Option<TokenDigest>,
}

/// Serves `/healthz`, `/readyz` and `/metrics` on `listener` until `shutdown` flips to true.
pub(crate) async fn serve(
    listener: TcpListener,
    endpoint: Arc<HealthEndpoint>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(endpoint);
    let stop = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!(error = %e, "health endpoint failed");
    }
}

async fn ready(State(endpoint): State<Arc<HealthEndpoint>>) -> (StatusCode, &'static str) {
    let link = &endpoint.link;
    if link.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else if !link.is_registered() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not registered with the coordinator\n",
        )
    } else {
        (StatusCode::OK, "ok\n")
    }
}

async fn metrics(State(endpoint): State<Arc<HealthEndpoint>>, headers: HeaderMap) -> Response {
    if let Some(token) = &endpoint.metrics_token {
        let admitted = presented_secret(&headers).is_some_and(|s| token.matches(&s));
        if !admitted {
            return (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    "Basic realm=\"quiver-worker\", charset=\"UTF-8\"",
                )],
                "/metrics needs this worker's token (authorization: Bearer <token>), \
                 unless the worker runs with --metrics-public\n",
            )
                .into_response();
        }
    }
    // A few atomic loads and a short page: cheap enough for the async thread.
    let executor = &endpoint.executor;
    let busy = executor.running_count();
    let page = executor.metrics().render(&WorkerGauges {
        slots: executor.slots(),
        busy_slots: busy,
        memory_reserved: executor.memory_reserved(),
        memory_limit: executor.memory_limit(),
        registered: endpoint.link.is_registered(),
        draining: endpoint.link.is_draining(),
    });
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], page).into_response()
}
