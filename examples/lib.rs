//! Shared pieces of the examples: the deterministic text corpus generator and the word count
//! job itself, so that tests run exactly what `examples/wordcount.rs` runs; and in [`jobs`],
//! the other workloads (terasort, TPC-H-like queries, grep, PageRank) with their data
//! generators, which the benchmark suite runs too.

pub mod jobs;

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

/// The user functions of `examples/custom_udf.rs`: a row function that scores a word, a batch
/// function that adds each word's length, and a flat-map function that yields a word's
/// letter bigrams.
pub fn custom_functions() -> FunctionRegistry {
    use quiver::arrow::array::{AsArray, Int64Array};
    use quiver::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    let mut f = FunctionRegistry::new();
    f.register_scalar("vowel_share", DataType::Float64, |args| match args {
        [ScalarValue::Utf8(w)] => {
            let chars = w.chars().count().max(1) as f64;
            let vowels = w.chars().filter(|c| "aeiouäöüé".contains(*c)).count() as f64;
            Ok(ScalarValue::Float64(vowels / chars))
        }
        [ScalarValue::Null] => Ok(ScalarValue::Null),
        other => Err(format!("vowel_share takes one string, got {other:?}")),
    });
    // Two functions for failure drills, used by the chaos tests with worker processes of the
    // `custom_udf` binary: one panics on one specific value; one fails the first time it is
    // ever called (across processes: it leaves a marker file), then works.
    f.register_scalar("panic_on", DataType::Utf8, |args| match args {
        [ScalarValue::Utf8(w), ScalarValue::Utf8(bad)] if w == bad => {
            panic!("panic_on: refusing the value {w:?}")
        }
        [v, _] => Ok(v.clone()),
        other => Err(format!("panic_on takes two arguments, got {other:?}")),
    });
    // Ends its worker process on one specific value, as a crash would: a poison task.
    f.register_scalar("exit_on", DataType::Utf8, |args| match args {
        [ScalarValue::Utf8(w), ScalarValue::Utf8(bad)] if w == bad => std::process::exit(86),
        [v, _] => Ok(v.clone()),
        other => Err(format!("exit_on takes two arguments, got {other:?}")),
    });
    f.register_scalar("fail_first", DataType::Utf8, |args| match args {
        [v, ScalarValue::Utf8(marker)] => {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(marker)
            {
                Ok(_) => Err(format!(
                    "fail_first: first call ever (marker {marker} created)"
                )),
                Err(_) => Ok(v.clone()),
            }
        }
        other => Err(format!("fail_first takes two arguments, got {other:?}")),
    });
    let with_len = Arc::new(Schema::new(vec![
        Field::new("word", DataType::Utf8, true),
        Field::new("len", DataType::Int64, true),
    ]));
    let schema = with_len.clone();
    f.register_batch("with_len", with_len, move |batch| {
        let words = batch.column(0).as_string::<i32>();
        let lens: Int64Array = words
            .iter()
            .map(|w| w.map(|w| w.chars().count() as i64))
            .collect();
        RecordBatch::try_new(
            schema.clone(),
            vec![batch.column(0).clone(), Arc::new(lens)],
        )
        .map_err(|e| e.to_string())
    });
    let bigrams = Arc::new(Schema::new(vec![Field::new(
        "bigram",
        DataType::Utf8,
        true,
    )]));
    f.register_flat_map("bigrams", bigrams, |row| match row {
        [ScalarValue::Utf8(w), ..] => {
            let chars: Vec<char> = w.chars().collect();
            Ok(chars
                .windows(2)
                .map(|p| vec![ScalarValue::Utf8(p.iter().collect())])
                .collect())
        }
        _ => Ok(vec![]),
    });
    f
}

/// The custom function job: per word length, how many words and their mean vowel share;
/// and, separately, the most common letter bigrams.
pub fn custom_function_jobs(
    inputs: &[PathBuf],
    functions: &FunctionRegistry,
) -> quiver::Result<(Dataset, Dataset)> {
    let words = Dataset::read_text(inputs)?
        .select([words(col("line")).alias("word")])?
        .explode("word")?
        .select([lower(col("word")).alias("word")])?;
    let by_length = words
        .clone()
        .map_batches("with_len", functions.batch_schema("with_len")?)?
        .with_column("vowels", functions.call("vowel_share", vec![col("word")])?)?
        .group_by(["len"])
        .agg([
            count().alias("words"),
            mean(col("vowels")).alias("vowel_share"),
        ])?;
    let bigrams = words
        .flat_map("bigrams", functions.flat_map_schema("bigrams")?)?
        .group_by(["bigram"])
        .agg([count().alias("count")])?;
    Ok((by_length, bigrams))
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

/// A word the corpus of `seed` uses rarely (the 15,000th most frequent: about once in
/// 150,000 words), for grep.
pub fn rare_word(seed: u64) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    vocabulary(VOCABULARY_SIZE, &mut rng).swap_remove(15_000)
}

/// Distinct words of a generated corpus.
pub const VOCABULARY_SIZE: usize = 100_000;

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
    let vocab = vocabulary(VOCABULARY_SIZE, &mut rng);
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

    /// The README's table of examples names exactly each example's own flags: those its
    /// `--help` lists beyond the ones every example shares ([`jobs::ClusterArgs`]).
    #[test]
    fn readme_lists_each_examples_own_flags() {
        use clap::Args as _;
        let long_flags = |text: &str| -> std::collections::BTreeSet<String> {
            text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .filter(|w| w.starts_with("--") && w.len() > 2)
                .map(str::to_string)
                .collect()
        };
        let shared = jobs::ClusterArgs::augment_args(clap::Command::new("shared"))
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .chain(["--help".to_string()])
            .collect::<std::collections::BTreeSet<_>>();
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
                .unwrap();
        let section = &readme[readme.find("## Examples").unwrap()..];
        let section = &section[..section[3..].find("\n## ").unwrap()];
        let exe = std::env::current_exe().unwrap();
        let examples = exe.parent().unwrap().parent().unwrap().join("examples");
        let mut rows = 0;
        for row in section.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = row.split(" | ").collect();
            let name = cells[0].trim_start_matches("| ").trim_matches('`');
            let listed = long_flags(cells[2]);
            let binary = examples.join(name);
            assert!(
                binary.exists(),
                "{} is missing: run `cargo test --workspace`",
                binary.display()
            );
            let help = std::process::Command::new(&binary)
                .arg("--help")
                .output()
                .unwrap();
            assert!(help.status.success(), "{name} --help failed");
            let own: std::collections::BTreeSet<String> =
                long_flags(&String::from_utf8_lossy(&help.stdout))
                    .difference(&shared)
                    .cloned()
                    .collect();
            assert_eq!(own, listed, "the README's flags of {name}");
            rows += 1;
        }
        assert_eq!(rows, 7, "a row per example");
    }

    /// The custom function jobs give what plain Rust computes from the same words.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn custom_function_example_matches_reference() {
        use quiver::arrow::array::AsArray;
        use quiver::arrow::datatypes::{Float64Type, Int64Type};

        let dir = std::env::temp_dir().join(format!("quiver-udf-test-{}", std::process::id()));
        let files = generate_corpus(&dir, 256 << 10, 2, 7, false).unwrap();
        let mut words = vec![];
        for f in &files {
            for line in std::fs::read_to_string(f).unwrap().lines() {
                words.extend(
                    line.split(|c: char| !c.is_alphanumeric())
                        .filter(|w| !w.is_empty())
                        .map(str::to_lowercase),
                );
            }
        }
        let mut by_len: HashMap<i64, (i64, f64)> = HashMap::new();
        let mut bigrams: HashMap<String, i64> = HashMap::new();
        for w in &words {
            let chars: Vec<char> = w.chars().collect();
            let vowels = chars.iter().filter(|c| "aeiouäöüé".contains(**c)).count() as f64;
            let e = by_len.entry(chars.len() as i64).or_default();
            e.0 += 1;
            e.1 += vowels / chars.len().max(1) as f64;
            for p in chars.windows(2) {
                *bigrams.entry(p.iter().collect()).or_default() += 1;
            }
        }
        let functions = custom_functions();
        let cluster = LocalCluster::builder()
            .workers(2)
            .functions(functions.clone())
            .start()
            .await
            .unwrap();
        let client = cluster.client().await.unwrap();
        let (by_length, bigram_counts) = custom_function_jobs(&files, &functions).unwrap();
        let mut got = 0;
        for b in by_length.collect(&client).await.unwrap() {
            let len = b.column(0).as_primitive::<Int64Type>();
            let n = b.column(1).as_primitive::<Int64Type>();
            let share = b.column(2).as_primitive::<Float64Type>();
            for r in 0..b.num_rows() {
                let (count, sum) = by_len[&len.value(r)];
                assert_eq!(n.value(r), count);
                assert!((share.value(r) - sum / count as f64).abs() < 1e-9);
                got += 1;
            }
        }
        assert_eq!(got, by_len.len());
        let mut got_bigrams = HashMap::new();
        for b in bigram_counts.collect(&client).await.unwrap() {
            let g = b.column(0).as_string::<i32>();
            let n = b.column(1).as_primitive::<Int64Type>();
            for r in 0..b.num_rows() {
                got_bigrams.insert(g.value(r).to_string(), n.value(r));
            }
        }
        assert_eq!(got_bigrams, bigrams);
        cluster.shutdown().await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Starts `n` worker processes of the `custom_udf` example binary (built by `cargo test`
    /// next to this test's executable) against `url`.
    fn custom_udf_workers(cluster: &LocalCluster, n: usize) -> Vec<std::process::Child> {
        let exe = std::env::current_exe().unwrap();
        let examples = exe.parent().unwrap().parent().unwrap().join("examples");
        let binary = examples.join("custom_udf");
        assert!(
            binary.exists(),
            "{} is missing: run `cargo test --workspace`",
            binary.display()
        );
        (0..n)
            .map(|i| {
                // Each worker its own work directory (a worker locks it).
                static STARTED: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(0);
                let nth = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let work_dir = std::env::temp_dir()
                    .join(format!("quiver-udf-test-{}-{nth}-{i}", std::process::id()));
                std::process::Command::new(&binary)
                    .args(["worker", "--coordinator", cluster.url(), "--slots", "1"])
                    .arg("--work-dir")
                    .arg(&work_dir)
                    .args(["--heartbeat-interval", "0.2"])
                    .env("QUIVER_TOKEN", cluster.token())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect()
    }

    async fn wait_for_function_workers(client: &Client, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while client
            .list_workers()
            .await
            .unwrap()
            .iter()
            .filter(|w| !w.functions.is_empty())
            .count()
            < n
        {
            assert!(
                std::time::Instant::now() < deadline,
                "workers did not register"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Kills the worker processes, stops the cluster and removes the test's data.
    async fn stop(workers: Vec<std::process::Child>, cluster: LocalCluster, dir: &Path) {
        for mut w in workers {
            let _ = w.kill();
            let _ = w.wait();
        }
        cluster.shutdown().await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A `(word, count)` result as a map.
    fn counts_of(batches: &[RecordBatch]) -> HashMap<String, i64> {
        let mut got = HashMap::new();
        for b in batches {
            let w = b.column(0).as_string::<i32>();
            let n = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..b.num_rows() {
                got.insert(w.value(i).to_string(), n.value(i));
            }
        }
        got
    }

    fn word_counts(files: &[PathBuf]) -> HashMap<String, i64> {
        let mut expected: HashMap<String, i64> = HashMap::new();
        for f in files {
            for line in std::fs::read_to_string(f).unwrap().lines() {
                for w in line
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                {
                    *expected.entry(w.to_lowercase()).or_default() += 1;
                }
            }
        }
        expected
    }

    /// Chaos drills with real worker processes (the `custom_udf` binary): a function that
    /// panics on one row fails the job after its retries with the panic's message, the workers
    /// stay up, and the next job — with a function that fails only the first time — succeeds
    /// with the exact word counts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn panicking_and_flaky_functions_on_worker_processes() {
        let dir = std::env::temp_dir().join(format!("quiver-chaos-udf-{}", std::process::id()));
        let files = generate_corpus(&dir, 512 << 10, 3, 11, false).unwrap();
        let cluster = LocalCluster::builder().workers(0).start().await.unwrap();
        let mut workers = custom_udf_workers(&cluster, 2);
        let client = cluster.client().await.unwrap();
        wait_for_function_workers(&client, 2).await;
        let functions = custom_functions();
        let words = Dataset::read_text(&files)
            .unwrap()
            .select([words(col("line")).alias("word")])
            .unwrap()
            .explode("word")
            .unwrap()
            .select([lower(col("word")).alias("word")])
            .unwrap();
        // The most common word of the corpus: every map task meets it.
        let expected = word_counts(&files);
        let (victim, _) = expected.iter().max_by_key(|(_, n)| **n).unwrap();
        let panicking = words
            .clone()
            .select([functions
                .call("panic_on", vec![col("word"), lit(victim.as_str())])
                .unwrap()
                .alias("word")])
            .unwrap();
        let err = panicking.count(&client).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!("panic_on: refusing the value {victim:?}")),
            "{err}"
        );
        assert!(
            err.contains("attempt 4 of at most 4") && err.contains("stage 0"),
            "{err}"
        );
        for w in &mut workers {
            assert!(w.try_wait().unwrap().is_none(), "a worker process died");
        }

        let marker = dir.join("fail_first.marker");
        let flaky = words
            .select([functions
                .call(
                    "fail_first",
                    vec![col("word"), lit(marker.to_string_lossy().as_ref())],
                )
                .unwrap()
                .alias("word")])
            .unwrap()
            .group_by(["word"])
            .agg([count().alias("count")])
            .unwrap();
        let got = counts_of(&flaky.collect(&client).await.unwrap());
        assert!(marker.exists(), "the first call did not fail");
        assert_eq!(got, expected);
        stop(workers, cluster, &dir).await;
    }

    /// A task that kills every worker it runs on (a poison task) fails its job after its second
    /// worker dies, naming it, instead of taking down the whole cluster; the survivors then
    /// run the next job to exact results.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_poison_task_fails_its_job_instead_of_killing_every_worker() {
        let dir = std::env::temp_dir().join(format!("quiver-poison-{}", std::process::id()));
        let mut files = generate_corpus(&dir, 256 << 10, 2, 13, false).unwrap();
        let poison = dir.join("poison.txt");
        std::fs::write(&poison, "some words and one zzpoisonzz here\n").unwrap();
        let cluster = LocalCluster::builder()
            .workers(0)
            .heartbeat_timeout(std::time::Duration::from_secs(1))
            .start()
            .await
            .unwrap();
        let mut workers = custom_udf_workers(&cluster, 4);
        let client = cluster.client().await.unwrap();
        wait_for_function_workers(&client, 4).await;
        let functions = custom_functions();
        let job = |inputs: &[PathBuf]| {
            Dataset::read_text(inputs)
                .unwrap()
                .select([words(col("line")).alias("word")])
                .unwrap()
                .explode("word")
                .unwrap()
                .select([functions
                    .call("exit_on", vec![col("word"), lit("zzpoisonzz")])
                    .unwrap()
                    .alias("word")])
                .unwrap()
                .select([lower(col("word")).alias("word")])
                .unwrap()
                .group_by(["word"])
                .agg([count().alias("count")])
                .unwrap()
        };
        let mut with_poison = files.clone();
        with_poison.push(poison.clone());
        let err = job(&with_poison)
            .count(&client)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("worker lost while running it 2 times"),
            "{err}"
        );
        let exits: Vec<_> = workers
            .iter_mut()
            .filter_map(|w| w.try_wait().unwrap())
            .collect();
        assert_eq!(
            exits.len(),
            2,
            "exactly the two workers that ran the poison task died: {exits:?}"
        );

        // The survivors run a clean job exactly.
        files.sort();
        let expected = word_counts(&files);
        let got = counts_of(&job(&files).collect(&client).await.unwrap());
        assert_eq!(got, expected);
        stop(workers, cluster, &dir).await;
    }

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
        let got = counts_of(&batches);
        assert_eq!(got, expected);
        cluster.shutdown().await;
        std::fs::remove_dir_all(dir).unwrap();
    }
}
