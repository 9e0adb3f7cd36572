//! The text reader gives every line exactly once, whatever byte offsets the splits are cut at.

use std::io::Write;

use arrow::array::AsArray;
use quiver_plan::{FileSplit, ScanNode};
use quiver_worker::WorkerError;
use quiver_worker::io::text_reader::TextSplitReader;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn read_split(path: &str, start: u64, end: u64, batch_size: usize) -> Vec<String> {
    let split = FileSplit {
        path: path.into(),
        start,
        end,
        row_groups: vec![],
    };
    let reader = TextSplitReader::open(&split, ScanNode::text_schema(), batch_size).unwrap();
    let mut lines = vec![];
    for b in reader {
        let b = b.unwrap();
        let col = b.column(0).as_string::<i32>();
        lines.extend(col.iter().map(|s| s.unwrap().to_string()));
    }
    lines
}

#[test]
fn random_splits_give_every_line_once() {
    let seed = 7;
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.txt");
    let mut text = String::new();
    for i in 0..2000 {
        match rng.random_range(0..10) {
            0 => {}
            1 => text.push_str(&"x".repeat(rng.random_range(1000..5000))),
            2 => text.push_str("ünïcödé 東京\r"),
            _ => text.push_str(&format!("line {i} {}", rng.random::<u32>())),
        }
        text.push('\n');
    }
    text.push_str("last line without newline");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    // Reference: str::lines, which also strips "\r\n".
    let expected: Vec<String> = text.lines().map(str::to_string).collect();
    let size = text.len() as u64;
    let p = path.to_str().unwrap();
    for round in 0..20 {
        let mut cuts: Vec<u64> = (0..rng.random_range(1..12))
            .map(|_| rng.random_range(0..size))
            .collect();
        cuts.push(0);
        cuts.push(size);
        cuts.sort();
        cuts.dedup();
        let mut got = vec![];
        for w in cuts.windows(2) {
            got.extend(read_split(p, w[0], w[1], 1 + round * 37));
        }
        assert_eq!(got.len(), expected.len(), "round {round} cuts {cuts:?}");
        assert_eq!(got, expected, "round {round} cuts {cuts:?}");
    }
}

#[test]
fn invalid_utf8_names_the_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.txt");
    let mut bytes = b"good line\nsecond\n".to_vec();
    let offset = bytes.len() + 3;
    bytes.extend_from_slice(b"abc\xff\xfe tail\n");
    std::fs::write(&path, &bytes).unwrap();
    let split = FileSplit {
        path: path.to_str().unwrap().into(),
        start: 0,
        end: bytes.len() as u64,
        row_groups: vec![],
    };
    let err = TextSplitReader::open(&split, ScanNode::text_schema(), 100)
        .unwrap()
        .find_map(Result::err)
        .expect("an error");
    match &err {
        WorkerError::InvalidUtf8 { path: p, offset: o } => {
            assert_eq!(p, &path);
            assert_eq!(*o, offset as u64);
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(!err.retryable());
    assert!(err.to_string().contains("bad.txt"));
}
