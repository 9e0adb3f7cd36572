//! The heartbeat monitor: a timer task that sends the scheduler an [`Event::Tick`] a few
//! times per heartbeat timeout. The scheduler decides on each tick which workers were silent
//! too long (and are lost), and makes its other time-based decisions.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::coordinator_state::CoordinatorState;
use crate::event::Event;

/// Ticks every quarter of `timeout` until `shutdown` flips to true.
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
        state.handle(Event::Tick);
    }
}
