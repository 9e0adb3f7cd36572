//! What each attempt of a task did, for people: when and where it ran, how it ended, what it
//! wrote and read. Job status with attempts, the dashboard's task table and timeline, and the
//! benchmark suite's per-worker figures read it.
//!
//! It is a record, not a decision: the scheduler decides from `TaskState` alone and only
//! writes here. Nothing here is logged (a resumed job starts a fresh history) and each task
//! keeps a bounded number of records.

use quiver_plan::WorkerId;

use crate::event::Timestamp;

/// Records each task keeps; beyond this the oldest finished attempt is forgotten (a task
/// retried that often has its failure in its last records).
pub const MAX_ATTEMPT_RECORDS: usize = 16;

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Running,
    Succeeded,
    /// It failed, with the worker's message.
    Failed(String),
    /// Its job ended, or another attempt of the task won.
    Cancelled,
    /// Its worker was lost while it ran.
    Lost,
}

/// What one attempt wrote and read, as its worker reported it (and, for shuffle input, as the
/// coordinator knows the map outputs it read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttemptFigures {
    pub rows_out: u64,
    pub bytes_out: u64,
    pub spilled_bytes: u64,
    /// Map output bytes the attempt read, from any worker.
    pub shuffle_bytes_read: u64,
    /// The part of those held by another worker (fetched over the network).
    pub shuffle_bytes_fetched: u64,
}

/// One attempt of a task.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub worker: WorkerId,
    /// A speculative copy of a slow attempt.
    pub speculative: bool,
    pub started: Timestamp,
    pub finished: Option<Timestamp>,
    pub outcome: AttemptOutcome,
    /// Zero unless it succeeded.
    pub figures: AttemptFigures,
}

/// A task's attempts, oldest first.
#[derive(Clone, Debug, Default)]
pub struct AttemptHistory {
    records: Vec<AttemptRecord>,
}

impl AttemptHistory {
    /// The records, oldest first.
    pub fn records(&self) -> &[AttemptRecord] {
        &self.records
    }

    /// Attempt `attempt` started on `worker` at `now`.
    pub fn started(&mut self, attempt: u32, worker: &WorkerId, speculative: bool, now: Timestamp) {
        if self.records.len() >= MAX_ATTEMPT_RECORDS
            && let Some(oldest) = self.records.iter().position(|r| r.finished.is_some())
        {
            self.records.remove(oldest);
        }
        self.records.push(AttemptRecord {
            attempt,
            worker: worker.clone(),
            speculative,
            started: now,
            finished: None,
            outcome: AttemptOutcome::Running,
            figures: AttemptFigures::default(),
        });
    }

    /// Attempt `attempt` ended at `now` with `outcome` (ignored if it is not running: an
    /// attempt ends once); its record, if it was running.
    pub fn ended(
        &mut self,
        attempt: u32,
        outcome: AttemptOutcome,
        now: Timestamp,
    ) -> Option<&mut AttemptRecord> {
        let r = self
            .records
            .iter_mut()
            .rev()
            .find(|r| r.attempt == attempt && r.finished.is_none())?;
        r.finished = Some(now);
        r.outcome = outcome;
        Some(r)
    }

    /// Attempt `attempt` succeeded at `now`, having done `figures`.
    pub fn succeeded(&mut self, attempt: u32, figures: AttemptFigures, now: Timestamp) {
        if let Some(r) = self.ended(attempt, AttemptOutcome::Succeeded, now) {
            r.figures = figures;
        }
    }

    /// How long attempt `attempt` ran, once it ended.
    pub fn duration(&self, attempt: u32) -> Option<std::time::Duration> {
        let r = self.records.iter().rev().find(|r| r.attempt == attempt)?;
        Some(r.finished?.since(r.started))
    }

    /// Every attempt still running ends at `now` with `outcome` (its job ended).
    pub fn end_all_running(&mut self, outcome: AttemptOutcome, now: Timestamp) {
        for r in self.records.iter_mut().filter(|r| r.finished.is_none()) {
            r.finished = Some(now);
            r.outcome = outcome.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn an_attempt_ends_once_and_keeps_its_figures() {
        let w = WorkerId("w".into());
        let mut h = AttemptHistory::default();
        h.started(0, &w, false, at(0));
        h.started(1, &w, true, at(5));
        h.ended(0, AttemptOutcome::Failed("boom".into()), at(10));
        h.ended(0, AttemptOutcome::Cancelled, at(20));
        let figures = AttemptFigures {
            rows_out: 3,
            ..Default::default()
        };
        h.succeeded(1, figures, at(30));
        let r = h.records();
        assert_eq!(r[0].outcome, AttemptOutcome::Failed("boom".into()));
        assert_eq!(
            r[0].finished.unwrap().since(r[0].started),
            Duration::from_millis(10)
        );
        assert_eq!(
            (r[1].outcome.clone(), r[1].figures),
            (AttemptOutcome::Succeeded, figures)
        );
        assert!(r[1].speculative);
    }

    #[test]
    fn the_history_is_bounded_and_keeps_running_attempts() {
        let w = WorkerId("w".into());
        let mut h = AttemptHistory::default();
        h.started(0, &w, false, at(0));
        for a in 1..40 {
            h.started(a, &w, false, at(a as u64));
            h.ended(a, AttemptOutcome::Lost, at(a as u64));
        }
        assert_eq!(h.records().len(), MAX_ATTEMPT_RECORDS);
        assert_eq!(h.records()[0].attempt, 0, "the running attempt stays");
        assert_eq!(h.records().last().unwrap().attempt, 39);
        h.end_all_running(AttemptOutcome::Cancelled, at(50));
        assert!(h.records().iter().all(|r| r.finished.is_some()));
    }
}
