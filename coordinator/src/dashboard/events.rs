//! Live updates: a page's server-sent events (`/events/<page path>`). Each event named `main`
//! carries the page's `<main>` rendered afresh, sent when it differs from the last one sent —
//! after a change to any job (at most every [`THROTTLE`]) or every [`TICK`] (durations and
//! heartbeat ages move on their own). A job the coordinator forgot gets one `gone` event.
//! Each stream ends when the coordinator shuts down, so that the server can stop.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use tokio::sync::watch;

use super::pages::Page;
use crate::coordinator_state::CoordinatorState;

/// The shortest time between two updates of one page.
pub const THROTTLE: Duration = Duration::from_millis(500);
/// The longest time between two renderings of one page.
pub const TICK: Duration = Duration::from_secs(1);

/// What a stream of events needs: the state, and the coordinator's shutdown signal.
#[derive(Clone)]
pub struct Feeds {
    pub state: Arc<CoordinatorState>,
    pub shutdown: watch::Receiver<bool>,
}

/// `GET /events/<page>`: the page's live updates; 404 for a path that names no page.
pub async fn events(State(feeds): State<Feeds>, Path(page): Path<String>) -> Response {
    match Page::at(&format!("/{page}")) {
        Some(page) => Sse::new(feed(feeds, page))
            .keep_alive(KeepAlive::default())
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such page\n").into_response(),
    }
}

struct Feed {
    feeds: Feeds,
    changes: watch::Receiver<u64>,
    page: Page,
    last: Option<String>,
    first: bool,
    done: bool,
}

fn feed(feeds: Feeds, page: Page) -> impl Stream<Item = Result<Event, Infallible>> {
    let feed = Feed {
        changes: feeds.state.subscribe(),
        feeds,
        page,
        last: None,
        first: true,
        done: false,
    };
    futures::stream::unfold(feed, |mut f| async move {
        if f.done {
            return None;
        }
        loop {
            if !f.first && !f.wait().await {
                return None;
            }
            f.first = false;
            let (state, page) = (f.feeds.state.clone(), f.page.clone());
            // Rendering is CPU work (a job's page lists every attempt): not on a tokio thread.
            let rendered = tokio::task::spawn_blocking(move || page.render_main(&state))
                .await
                .ok()?;
            match rendered {
                None => {
                    f.done = true;
                    return Some((Ok(Event::default().event("gone").data("gone")), f));
                }
                Some((_, main)) if f.last.as_ref() != Some(&main) => {
                    let event = Event::default().event("main").data(&main);
                    f.last = Some(main);
                    return Some((Ok(event), f));
                }
                Some(_) => {}
            }
        }
    })
}

impl Feed {
    /// Waits for a change or a tick, then for the throttle; false once the coordinator shuts
    /// down.
    async fn wait(&mut self) -> bool {
        let mut shutdown = self.feeds.shutdown.clone();
        tokio::select! {
            changed = self.changes.changed() => {
                if changed.is_err() {
                    return false;
                }
            }
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.wait_for(|stop| *stop) => return false,
        }
        tokio::select! {
            _ = tokio::time::sleep(THROTTLE) => true,
            _ = shutdown.wait_for(|stop| *stop) => false,
        }
    }
}
