//! Joins of every type, shuffled and broadcast, on randomized data with NULL keys, a key
//! holding half of the left rows, mixed key types and empty sides, checked against a
//! nested-loop reference. One test runs across real worker processes.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, BinaryArray, Int32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use arrow::util::display::array_value_to_string;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use quiver::JobOptions;
use quiver::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cluster;

/// Writes `batch` as Parquet with row groups of `group_rows` rows (one task each).
pub fn write_parquet(path: &Path, batch: &RecordBatch, group_rows: usize) {
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group_rows))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// Every row of `batches` as a string, cells joined by `|`, NULL as `∅`; sorted.
pub fn rows_of(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .map(|c| {
                    if c.is_null(r) {
                        "∅".to_string()
                    } else {
                        array_value_to_string(c, r).unwrap()
                    }
                })
                .collect();
            out.push(cells.join("|"));
        }
    }
    out.sort();
    out
}

fn cell<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or("∅".to_string(), |v| v.to_string())
}

struct Sides {
    /// (id Int64, name Utf8)
    left: Vec<(Option<i64>, String)>,
    /// (id Int32, score Int64)
    right: Vec<(Option<i32>, i64)>,
}

/// Left: half of the rows have id 7 (skew), some NULL. Right: ids of a smaller range, a few
/// of them 7, some NULL, some with no left partner.
fn sides(seed: u64, left_rows: usize, right_rows: usize) -> Sides {
    let mut rng = StdRng::seed_from_u64(seed);
    let left = (0..left_rows)
        .map(|i| {
            let id = match rng.random_range(0..20) {
                0 => None,
                1..=10 => Some(7),
                _ => Some(rng.random_range(0..60)),
            };
            (id, format!("n{i}"))
        })
        .collect();
    let right = (0..right_rows)
        .map(|_| {
            let id = match rng.random_range(0..25) {
                0 => None,
                1 => Some(7),
                _ => Some(rng.random_range(20..90)),
            };
            (id, rng.random_range(-1000..1000))
        })
        .collect();
    Sides { left, right }
}

fn write_sides(dir: &Path, s: &Sides) {
    let left = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(Int64Array::from(
                s.left.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                s.left.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    let right = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("score", DataType::Int64, false),
        ])),
        vec![
            Arc::new(Int32Array::from(
                s.right.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                s.right.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("left")).unwrap();
    std::fs::create_dir_all(dir.join("right")).unwrap();
    write_parquet(&dir.join("left/l.parquet"), &left, 300);
    write_parquet(&dir.join("right/r.parquet"), &right, 100);
}

/// The nested-loop reference of `join_type`, in the column layout of `quiver_plan::join`.
fn reference(s: &Sides, join_type: JoinType) -> Vec<String> {
    let matches = |l: &(Option<i64>, String), r: &(Option<i32>, i64)| matches!((l.0, r.0), (Some(a), Some(b)) if a == i64::from(b));
    let merged = matches!(join_type, JoinType::Inner | JoinType::Left);
    let pair = |l: &(Option<i64>, String), r: &(Option<i32>, i64)| {
        if merged {
            format!("{}|{}|{}", cell(&l.0), l.1, r.1)
        } else {
            format!("{}|{}|{}|{}", cell(&l.0), l.1, cell(&r.0), r.1)
        }
    };
    let mut out = Vec::new();
    for l in &s.left {
        let partners: Vec<_> = s.right.iter().filter(|r| matches(l, r)).collect();
        match join_type {
            JoinType::LeftSemi if !partners.is_empty() => {
                out.push(format!("{}|{}", cell(&l.0), l.1))
            }
            JoinType::LeftAnti if partners.is_empty() => {
                out.push(format!("{}|{}", cell(&l.0), l.1))
            }
            JoinType::LeftSemi | JoinType::LeftAnti => {}
            _ => {
                out.extend(partners.iter().map(|r| pair(l, r)));
                if partners.is_empty() && matches!(join_type, JoinType::Left | JoinType::Full) {
                    out.push(if merged {
                        format!("{}|{}|∅", cell(&l.0), l.1)
                    } else {
                        format!("{}|{}|∅|∅", cell(&l.0), l.1)
                    });
                }
            }
        }
    }
    if matches!(join_type, JoinType::Right | JoinType::Full) {
        for r in &s.right {
            if !s.left.iter().any(|l| matches(l, r)) {
                out.push(format!("∅|∅|{}|{}", cell(&r.0), r.1));
            }
        }
    }
    out.sort();
    out
}

const ALL_TYPES: [JoinType; 6] = [
    JoinType::Inner,
    JoinType::Left,
    JoinType::Right,
    JoinType::Full,
    JoinType::LeftSemi,
    JoinType::LeftAnti,
];

fn options() -> JobOptions {
    JobOptions {
        shuffle_partitions: Some(5),
        batch_size: Some(97),
        broadcast_threshold: None,
    }
}

async fn run_join(
    client: &Client,
    dir: &Path,
    join_type: JoinType,
    strategy: JoinStrategy,
) -> Vec<String> {
    let left = Dataset::read_parquet(&[dir.join("left")]).unwrap();
    let right = Dataset::read_parquet(&[dir.join("right")]).unwrap();
    let joined = left
        .join_with(
            right,
            JoinOn::columns(["id"]).how(join_type).strategy(strategy),
        )
        .unwrap();
    let job = client
        .submit_with(&joined, Sink::Collect, "join", options())
        .await
        .unwrap();
    rows_of(&job.collect().await.unwrap())
}

/// With the shuffle partitions left to the coordinator, adaptive execution coalesces the
/// join stage's small partitions (both sides' buckets read by the same task); the rows are
/// still the nested loop's, for a join that keeps unmatched rows of both sides too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_whose_partitions_were_coalesced_matches_a_nested_loop() {
    let dir = tempfile::tempdir().unwrap();
    let s = sides(11, 900, 300);
    write_sides(dir.path(), &s);
    let cluster = cluster::local(2).await;
    let client = cluster.client().await.unwrap();
    for join_type in [JoinType::Inner, JoinType::Full] {
        let left = Dataset::read_parquet(&[dir.path().join("left")]).unwrap();
        let right = Dataset::read_parquet(&[dir.path().join("right")]).unwrap();
        let on = JoinOn::columns(["id"])
            .how(join_type)
            .strategy(JoinStrategy::Shuffle);
        let job = client
            .submit(&left.join_with(right, on).unwrap(), Sink::Collect)
            .await
            .unwrap();
        let got = rows_of(&job.collect().await.unwrap());
        assert_eq!(got, reference(&s, join_type), "{join_type} join, coalesced");
        let status = job.status().await.unwrap();
        let joined = status.stages.last().unwrap();
        assert_eq!(joined.inputs.len(), 2, "{status:?}");
        assert_eq!(
            joined.tasks_total, 1,
            "4 tiny partitions, 1 task: {status:?}"
        );
        let said = joined.adaptive.as_deref().unwrap_or_default();
        assert!(
            said.contains("coalesced 4 shuffle partitions into 1 task"),
            "{said}"
        );
    }
}

/// A right side whose files look too large to broadcast, filtered down to a few rows: the
/// planner shuffles both sides, but once the right side measures below the threshold,
/// adaptive execution broadcasts it and the left side's rows are never shuffled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_right_side_filtered_small_is_broadcast_once_measured() {
    let dir = tempfile::tempdir().unwrap();
    let s = sides(13, 1500, 20_000);
    write_sides(dir.path(), &s);
    let file = std::fs::metadata(dir.path().join("right/r.parquet"))
        .unwrap()
        .len();
    let cluster = cluster::local(2).await;
    let client = cluster.client().await.unwrap();
    // The right side's file is twice the threshold; the rows kept are a small fraction of it.
    let options = JobOptions {
        broadcast_threshold: Some(file / 2),
        ..Default::default()
    };
    let left = Dataset::read_parquet(&[dir.path().join("left")]).unwrap();
    let right = Dataset::read_parquet(&[dir.path().join("right")])
        .unwrap()
        .filter(col("score").lt(lit(-990i64)))
        .unwrap();
    let joined = left.join_with(right, JoinOn::columns(["id"])).unwrap();
    let job = client
        .submit_with(&joined, Sink::Collect, "adaptive join", options)
        .await
        .unwrap();
    let got = rows_of(&job.collect().await.unwrap());
    let kept = Sides {
        left: s.left.clone(),
        right: s.right.iter().filter(|r| r.1 < -990).cloned().collect(),
    };
    assert!(!kept.right.is_empty() && kept.right.len() < s.right.len() / 50);
    let want = reference(&kept, JoinType::Inner);
    assert!(!want.is_empty());
    assert_eq!(got, want);
    let status = job.status().await.unwrap();
    assert_eq!(status.stages.len(), 3, "{status:?}");
    let (left_stage, join_stage) = (&status.stages[0], &status.stages[2]);
    assert_eq!(left_stage.state, quiver::StageState::Skipped, "{status:?}");
    assert_eq!(left_stage.tasks_total, 0);
    let said = join_stage.adaptive.as_deref().unwrap_or_default();
    assert!(said.contains("broadcast the join's right side"), "{said}");
    assert_eq!(join_stage.inputs, vec![1], "reads the right side only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_join_type_shuffled_and_broadcast_matches_a_nested_loop() {
    let dir = tempfile::tempdir().unwrap();
    let s = sides(5, 1500, 400);
    write_sides(dir.path(), &s);
    let cluster = cluster::local(2).await;
    let client = cluster.client().await.unwrap();
    for join_type in ALL_TYPES {
        let want = reference(&s, join_type);
        assert!(!want.is_empty());
        let got = run_join(&client, dir.path(), join_type, JoinStrategy::Shuffle).await;
        assert_eq!(got, want, "{join_type} join, shuffled");
        if !join_type.keeps_unmatched_right() {
            let got = run_join(&client, dir.path(), join_type, JoinStrategy::Broadcast).await;
            assert_eq!(got, want, "{join_type} join, broadcast");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_with_an_empty_side_keep_what_they_must() {
    let dir = tempfile::tempdir().unwrap();
    let s = sides(6, 200, 50);
    write_sides(dir.path(), &s);
    let cluster = cluster::local(2).await;
    let client = cluster.client().await.unwrap();
    let left = || Dataset::read_parquet(&[dir.path().join("left")]).unwrap();
    let no_right = || {
        Dataset::read_parquet(&[dir.path().join("right")])
            .unwrap()
            .filter(col("score").gt(lit(5000)))
            .unwrap()
    };
    let empty = Sides {
        left: s.left.clone(),
        right: vec![],
    };
    for join_type in ALL_TYPES {
        let joined = left().join(no_right(), ["id"], join_type).unwrap();
        let got = rows_of(&joined.collect(&client).await.unwrap());
        assert_eq!(
            got,
            reference(&empty, join_type),
            "{join_type} join, empty right"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_and_binary_keys_on_two_columns_join_like_the_reference() {
    let mut rng = StdRng::seed_from_u64(9);
    let make =
        |rng: &mut StdRng, n: usize, tag: &str| -> (RecordBatch, Vec<(String, Vec<u8>, String)>) {
            let rows: Vec<(String, Vec<u8>, String)> = (0..n)
                .map(|i| {
                    let s = format!("k{}", rng.random_range(0..15));
                    let b = vec![rng.random_range(0..3u8), 0xff];
                    (s, b, format!("{tag}{i}"))
                })
                .collect();
            let batch = RecordBatch::try_new(
                Arc::new(Schema::new(vec![
                    Field::new("s", DataType::Utf8, false),
                    Field::new("b", DataType::Binary, false),
                    Field::new(format!("{tag}_payload"), DataType::Utf8, false),
                ])),
                vec![
                    Arc::new(StringArray::from(
                        rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
                    )),
                    Arc::new(BinaryArray::from(
                        rows.iter().map(|r| r.1.as_slice()).collect::<Vec<_>>(),
                    )),
                    Arc::new(StringArray::from(
                        rows.iter().map(|r| r.2.clone()).collect::<Vec<_>>(),
                    )),
                ],
            )
            .unwrap();
            (batch, rows)
        };
    let dir = tempfile::tempdir().unwrap();
    let (lb, left) = make(&mut rng, 700, "l");
    let (rb, right) = make(&mut rng, 300, "r");
    write_parquet(&dir.path().join("l.parquet"), &lb, 200);
    write_parquet(&dir.path().join("r.parquet"), &rb, 100);

    let cluster = cluster::local(2).await;
    let client = cluster.client().await.unwrap();
    let joined = Dataset::read_parquet(&[dir.path().join("l.parquet")])
        .unwrap()
        .join_with(
            Dataset::read_parquet(&[dir.path().join("r.parquet")]).unwrap(),
            JoinOn::columns(["s", "b"]).strategy(JoinStrategy::Shuffle),
        )
        .unwrap()
        .select([col("l_payload"), col("r_payload")])
        .unwrap();
    let got = rows_of(&joined.collect(&client).await.unwrap());
    let mut want: Vec<String> = left
        .iter()
        .flat_map(|l| {
            right
                .iter()
                .filter(move |r| r.0 == l.0 && r.1 == l.1)
                .map(move |r| format!("{}|{}", l.2, r.2))
        })
        .collect();
    want.sort();
    assert!(!want.is_empty());
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shuffled_join_across_worker_processes_matches_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let s = sides(11, 2000, 500);
    write_sides(dir.path(), &s);
    let cluster = cluster::ProcessCluster::start(2).await;
    let client = cluster.client().await;
    for join_type in [JoinType::Full, JoinType::LeftAnti] {
        let got = run_join(&client, dir.path(), join_type, JoinStrategy::Shuffle).await;
        assert_eq!(got, reference(&s, join_type), "{join_type} join");
    }
    let got = run_join(
        &client,
        dir.path(),
        JoinType::Inner,
        JoinStrategy::Broadcast,
    )
    .await;
    assert_eq!(got, reference(&s, JoinType::Inner), "broadcast inner join");
}
