//! The heartbeat monitor: a timer task that declares workers lost when they have been silent
//! longer than the timeout, and tells the scheduler. Each tick also lets the scheduler make
//! its time-based decisions.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;

use crate::coordinator_state::CoordinatorState;

/// Checks liveness every quarter of `timeout` until `shutdown` flips to true.
pub async fn run(
    state: Arc<CoordinatorState>,
    timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval((timeout / 4).max(Duration::from_millis(50)));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        for worker in state.registry.expire(timeout) {
            warn!(worker = %worker, timeout_s = timeout.as_secs_f64(), "worker missed its heartbeats; declaring it lost");
            state.worker_lost(&worker);
        }
        state.tick();
    }
}
