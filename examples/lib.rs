//! Shared pieces of the examples: the deterministic text corpus generator and the word count
//! job itself, so that tests run exactly what `examples/wordcount.rs` runs.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use quiver::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The word count dataset: words (maximal runs of Unicode alphanumerics, lowercased) of every
/// line of `inputs`, with their number of occurrences, in columns `word` and `count`.
pub fn word_count(inputs: &[PathBuf]) -> quiver::Result<Dataset> {
    Dataset::read_text(inputs)?
        .select([words(col("line")).alias("word")])?
        .explode("word")?
        .select([lower(col("word")).alias("word")])?
        .group_by(["word"])
        .agg([count().alias("count")])
}

const SYLLABLES: &[&str] = &[
    "ka", "to", "ri", "su", "me", "na", "lo", "pe", "vi", "da", "ze", "mu", "sho", "qua", "ter",
    "bel", "gor", "fin", "ux", "yo",
];

/// A vocabulary of `n` distinct made-up words, a few of them capitalised or non-ASCII.
fn vocabulary(n: usize, rng: &mut StdRng) -> Vec<String> {
    let mut words = Vec::with_capacity(n);
    let mut seen = std::collections::HashSet::new();
    while words.len() < n {
        let len = rng.random_range(1..=4);
        let mut w: String = (0..len)
            .map(|_| SYLLABLES[rng.random_range(0..SYLLABLES.len())])
            .collect();
        match rng.random_range(0..20) {
            0 => w.push('é'),
            1 => w = w.to_uppercase(),
            2 => w.insert_str(0, "Ünï"),
            3 => w.push_str("42"),
            _ => {}
        }
        if seen.insert(w.to_lowercase()) {
            words.push(w);
        }
    }
    words
}

/// Writes about `bytes` bytes of text into `files` files under `dir` (deterministic for a
/// `seed`): Zipf-like word frequencies, punctuation, empty lines and, when `long_line` is set,
/// one line of several hundred kilobytes. Returns the file paths.
pub fn generate_corpus(
    dir: &Path,
    bytes: u64,
    files: usize,
    seed: u64,
    long_line: bool,
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let vocab = vocabulary(20_000, &mut rng);
    // Zipf-like: rank r is drawn with probability ~ 1/r via inverse transform on a log scale.
    let pick = |rng: &mut StdRng| -> usize {
        let u: f64 = rng.random();
        ((vocab.len() as f64).powf(u) as usize)
            .saturating_sub(1)
            .min(vocab.len() - 1)
    };
    let separators = [
        " ", " ", " ", ", ", ". ", "; ", " - ", "! ", "? ", " (", ") ", "\t", "'",
    ];
    let per_file = bytes / files.max(1) as u64;
    let mut paths = Vec::new();
    for f in 0..files.max(1) {
        let path = dir.join(format!("part-{f:03}.txt"));
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        let mut written = 0u64;
        let mut line = String::with_capacity(256);
        while written < per_file {
            line.clear();
            match rng.random_range(0..50) {
                0 => {} // an empty line
                1 if long_line && f == 0 && written > per_file / 2 => {
                    for _ in 0..60_000 {
                        line.push_str(&vocab[pick(&mut rng)]);
                        line.push(' ');
                    }
                }
                _ => {
                    for _ in 0..rng.random_range(1..16) {
                        line.push_str(&vocab[pick(&mut rng)]);
                        line.push_str(separators[rng.random_range(0..separators.len())]);
                    }
                }
            }
            line.push('\n');
            out.write_all(line.as_bytes())?;
            written += line.len() as u64;
        }
        out.flush()?;
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use quiver::arrow::array::{AsArray, Int64Array};

    use super::*;

    /// The example's job on the generated corpus gives the counts of a plain reference.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn word_count_example_matches_reference() {
        let dir = std::env::temp_dir().join(format!("quiver-example-test-{}", std::process::id()));
        let files = generate_corpus(&dir, 2 << 20, 3, 99, true).unwrap();
        let mut expected: HashMap<String, i64> = HashMap::new();
        for f in &files {
            for line in std::fs::read_to_string(f).unwrap().lines() {
                for w in line
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                {
                    *expected.entry(w.to_lowercase()).or_default() += 1;
                }
            }
        }
        let cluster = LocalCluster::start(2).await.unwrap();
        let client = cluster.client().await.unwrap();
        let batches = word_count(&files).unwrap().collect(&client).await.unwrap();
        let mut got = HashMap::new();
        for b in &batches {
            let w = b.column(0).as_string::<i32>();
            let n = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..b.num_rows() {
                got.insert(w.value(i).to_string(), n.value(i));
            }
        }
        assert_eq!(got, expected);
        cluster.shutdown().await;
        std::fs::remove_dir_all(dir).unwrap();
    }
}
