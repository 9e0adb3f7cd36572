//! [`block_on`]: runs a storage future to completion from synchronous code.
//!
//! Task code (readers and writers on rayon threads) and the SDK's dataset constructors are
//! synchronous, while `object_store` is async. Storage futures run on a small runtime owned by
//! this module (two threads, started on first use), and the caller waits on a channel. That
//! works from any thread, including one inside another tokio runtime, where a plain
//! `Handle::block_on` would panic.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("quiver-storage")
            .enable_all()
            .build()
            .expect("cannot start the storage runtime (no threads or no timer?)")
    })
}

/// Runs `future` on the storage runtime and waits for its output.
///
/// A panic inside the future is resumed on the caller's thread.
pub fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(future.await);
    });
    match rx.recv() {
        Ok(output) => output,
        // The task dropped its sender without sending: the future panicked.
        Err(_) => panic!("a storage operation panicked"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs_a_future_from_plain_and_async_threads() {
        assert_eq!(super::block_on(async { 2 + 2 }), 4);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let inside = rt.block_on(async { super::block_on(async { "inside" }) });
        assert_eq!(inside, "inside");
    }
}
