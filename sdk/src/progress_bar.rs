//! [`JobHandle::wait_with_progress`]: waiting for a job behind a progress bar of its tasks
//! (feature `progress`, with indicatif). Only drawing lives here; following the job is
//! [`JobHandle::wait`]'s.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::Result;
use crate::job_handle::{JobHandle, JobProgress};

impl JobHandle {
    /// Waits for the job like [`JobHandle::wait`], drawing a bar of its tasks done and its
    /// stages (or why it waits) on stderr meanwhile — only when stderr is a terminal, so logs
    /// and pipes stay clean. The bar is cleared when the job ends.
    ///
    /// ```no_run
    /// # async fn example(client: quiver::Client, words: quiver::Dataset) -> quiver::Result<()> {
    /// let job = client.submit(&words, quiver::Sink::Collect).await?;
    /// let finished = job.wait_with_progress().await?;
    /// println!("{} tasks done", finished.tasks().0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_with_progress(&self) -> Result<JobProgress> {
        let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} tasks  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        let outcome = self
            .wait_observing(|p| {
                let (done, total) = p.tasks();
                bar.set_length(u64::from(total.max(1)));
                bar.set_position(u64::from(done));
                bar.set_message(match &p.waiting_reason {
                    Some(why) => why.clone(),
                    None => p
                        .stages
                        .iter()
                        .map(|s| format!("stage {}: {}/{}", s.id, s.tasks_done, s.tasks_total))
                        .collect::<Vec<_>>()
                        .join("  "),
                });
            })
            .await;
        bar.finish_and_clear();
        outcome
    }
}
