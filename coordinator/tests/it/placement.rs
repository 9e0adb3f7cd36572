//! Placement: choosing a worker's free slot for a task.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use quiver_coordinator::event::{Event, Timestamp};
use quiver_coordinator::placement::{Constraints, FreeSlot, FreeSlots, Placement};
use quiver_coordinator::scheduler::{Scheduler, SchedulerConfig};
use quiver_plan::WorkerId;

fn w(name: &str) -> WorkerId {
    WorkerId(name.into())
}

fn slots(free: &[(&str, u32)]) -> FreeSlots {
    FreeSlots::from_slots(
        free.iter()
            .map(|(name, n)| FreeSlot {
                worker: w(name),
                address: format!("http://{name}"),
                free: *n,
            })
            .collect(),
    )
}

fn all(names: &[&str]) -> HashSet<WorkerId> {
    names.iter().map(|n| w(n)).collect()
}

fn anywhere(eligible: &HashSet<WorkerId>) -> Constraints<'_> {
    Constraints {
        eligible,
        avoid: &[],
        not_on: None,
    }
}

#[test]
fn the_worker_with_the_most_free_slots_gets_the_task_and_the_slot_is_used() {
    let mut free = slots(&[("a", 1), ("b", 3), ("c", 2)]);
    let eligible = all(&["a", "b", "c"]);
    assert_eq!(
        free.take(anywhere(&eligible)),
        Some(Placement {
            worker: w("b"),
            address: "http://b".into()
        })
    );
    let left: Vec<u32> = free.slots().iter().map(|s| s.free).collect();
    assert_eq!(left, vec![1, 2, 2]);
    let mut taken = vec![];
    while let Some(p) = free.take(anywhere(&eligible)) {
        taken.push(p.worker);
    }
    assert_eq!(taken.len(), 5, "every free slot, then none");
}

#[test]
fn only_eligible_workers_and_never_the_excluded_one() {
    let mut free = slots(&[("a", 5), ("b", 1)]);
    let only_b = all(&["b"]);
    assert_eq!(free.take(anywhere(&only_b)).unwrap().worker, w("b"));
    assert_eq!(free.take(anywhere(&only_b)), None);
    let both = all(&["a", "b"]);
    let a = w("a");
    let not_a = Constraints {
        eligible: &both,
        avoid: &[],
        not_on: Some(&a),
    };
    assert_eq!(free.take(not_a), None, "b is full and a is ruled out");
}

#[test]
fn a_worker_to_avoid_is_a_last_resort() {
    let mut free = slots(&[("a", 4), ("b", 1)]);
    let eligible = all(&["a", "b"]);
    let avoid = [w("a")];
    let constraints = Constraints {
        eligible: &eligible,
        avoid: &avoid,
        not_on: None,
    };
    assert_eq!(free.take(constraints).unwrap().worker, w("b"));
    assert_eq!(free.take(constraints).unwrap().worker, w("a"));
}

#[test]
fn draining_workers_have_no_free_slots_and_lost_ones_none_at_all() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let now = Timestamp::from_millis(10);
    for (name, slots) in [("a", 2), ("b", 3)] {
        s.handle(
            Event::WorkerRegistered {
                held_outputs: vec![],
                running_attempts: vec![],
                worker: w(name),
                address: format!("http://{name}"),
                slots,
                hostname: "h".into(),
                functions: vec![],
            },
            now,
        );
    }
    let running = HashMap::from([(w("b"), 1)]);
    let free = |s: &Scheduler, at: Timestamp| -> Vec<(WorkerId, u32)> {
        FreeSlots::of(s.workers(), &running, at)
            .slots()
            .iter()
            .map(|f| (f.worker.clone(), f.free))
            .collect()
    };
    assert_eq!(free(&s, now), vec![(w("a"), 2), (w("b"), 2)]);
    s.handle(
        Event::Heartbeat {
            worker: w("a"),
            running_tasks: 0,
            load: Default::default(),
            draining: true,
        },
        now,
    );
    // Nothing needs `a`: it is released at once and leaves, its slots with it.
    assert_eq!(free(&s, now), vec![(w("b"), 2)]);
    // A worker lost is not there at all.
    s.handle(Event::Tick, now + Duration::from_secs(6));
    assert!(free(&s, now + Duration::from_secs(6)).is_empty());
}
