//! A text corpus with the awkward cases in it, and an independent word count reference.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use arrow::array::{AsArray, Int64Array};
use arrow::record_batch::RecordBatch;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const WORDS: &[&str] = &[
    "the",
    "The",
    "THE",
    "quiver",
    "Arrow",
    "shuffle",
    "naïve",
    "Ünïcode",
    "東京",
    "straße",
    "İstanbul",
    "x86",
    "42",
    "a",
    "b",
    "über",
    "café",
    "Ωmega",
    "日本語テキスト",
    "z",
];
const SEPARATORS: &[&str] = &[
    " ", ", ", ". ", "! ", "?", " -- ", "'", "\"", "\t", "(", ")", "_", "…", " ; ",
];

/// Writes `files` files of about `lines` lines each; file 0 also holds a line of ~1 MB,
/// empty lines and CRLF line ends appear throughout.
pub fn write_corpus(dir: &Path, files: usize, lines: usize, seed: u64) -> Vec<PathBuf> {
    println!("corpus seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    std::fs::create_dir_all(dir).unwrap();
    (0..files)
        .map(|f| {
            let mut text = String::new();
            for l in 0..lines {
                if f == 0 && l == lines / 2 {
                    for i in 0..150_000 {
                        text.push_str(WORDS[i % WORDS.len()]);
                        text.push(' ');
                    }
                }
                match rng.random_range(0..12) {
                    0 => {}
                    1 => text.push_str("   ...  !!"),
                    _ => {
                        for _ in 0..rng.random_range(1..14) {
                            text.push_str(WORDS[rng.random_range(0..WORDS.len())]);
                            text.push_str(SEPARATORS[rng.random_range(0..SEPARATORS.len())]);
                        }
                    }
                }
                text.push_str(if rng.random_range(0..5) == 0 {
                    "\r\n"
                } else {
                    "\n"
                });
            }
            let path = dir.join(format!("part-{f:02}.txt"));
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

/// Word counts computed the plain way: split each line on non-alphanumeric characters,
/// lowercase each piece.
pub fn reference_counts(files: &[PathBuf]) -> HashMap<String, i64> {
    let mut counts = HashMap::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        for line in text.lines() {
            for w in line
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                *counts.entry(w.to_lowercase()).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// (word, count) pairs of a word count result.
pub fn result_counts(batches: &[RecordBatch]) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    for b in batches {
        let words = b.column(0).as_string::<i32>();
        let counts = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        for i in 0..b.num_rows() {
            let previous = out.insert(words.value(i).to_string(), counts.value(i));
            assert!(
                previous.is_none(),
                "word {:?} appears twice",
                words.value(i)
            );
        }
    }
    out
}

/// Every word of `files` (lowercased), one row each, in a column `word`: the first half of the
/// word count job.
pub fn lowercase_words(files: &[PathBuf]) -> quiver::Dataset {
    lowercase_words_of(quiver::Dataset::read_text(files).unwrap())
}

/// [`lowercase_words`] of a dataset of lines (a column `line`).
pub fn lowercase_words_of(lines: quiver::Dataset) -> quiver::Dataset {
    use quiver::prelude::*;
    lines
        .select([words(col("line")).alias("word")])
        .unwrap()
        .explode("word")
        .unwrap()
        .select([lower(col("word")).alias("word")])
        .unwrap()
}

/// Word counts decoded from the Parquet objects among `objects` (name, bytes), as
/// `S3TestServer::objects` lists them.
pub fn counts_in_parquet_objects(objects: &[(String, bytes::Bytes)]) -> HashMap<String, i64> {
    let mut batches: Vec<RecordBatch> = Vec::new();
    for (name, body) in objects.iter().filter(|(n, _)| n.ends_with(".parquet")) {
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(body.clone())
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .build()
                .unwrap();
        batches.extend(reader.map(Result::unwrap));
    }
    result_counts(&batches)
}

/// The objects of a finished write under `url` on `s3`: exactly `_SUCCESS` and one
/// `part-NNNNN.parquet` per partition directly under it, nothing temporary. Returns them.
pub fn assert_committed(
    s3: &quiver_storage::S3TestServer,
    url: &str,
    partitions: usize,
) -> Vec<(String, bytes::Bytes)> {
    let objects = s3.objects(url);
    let prefix = format!(
        "{}/",
        quiver_storage::Location::parse(url).unwrap().object_path()
    );
    let names: Vec<&str> = objects
        .iter()
        .map(|(n, _)| n.strip_prefix(&prefix).unwrap_or(n))
        .collect();
    let mut expected = vec!["_SUCCESS".to_string()];
    expected.extend((0..partitions).map(|p| format!("part-{p:05}.parquet")));
    assert_eq!(
        names, expected,
        "{url}: one object per partition, no temporaries"
    );
    objects
}
