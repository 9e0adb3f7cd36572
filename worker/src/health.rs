//! The worker's optional health endpoint (`--health-bind`): plain HTTP for probes such as
//! Kubernetes' `httpGet`, apart from the gRPC port (which needs a token and maybe TLS).
//!
//! - `GET /healthz` — 200 while the process serves (liveness).
//! - `GET /readyz` — 200 while the worker is registered with its coordinator and not
//!   draining, 503 otherwise (readiness: a draining worker takes no new tasks).
//!
//! Neither says anything beyond `ok` / why not, so they need no token.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::coordinator_link::CoordinatorLink;

/// Serves `/healthz` and `/readyz` on `listener` until `shutdown` flips to true.
pub(crate) async fn serve(
    listener: TcpListener,
    link: Arc<CoordinatorLink>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(link);
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

async fn ready(State(link): State<Arc<CoordinatorLink>>) -> (StatusCode, &'static str) {
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
