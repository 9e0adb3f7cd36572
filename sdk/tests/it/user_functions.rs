//! User functions: row, batch and flat-map functions on workers that register them; jobs that
//! need a function nobody has; and failing or panicking functions, which fail attempts but
//! never workers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use quiver::prelude::*;
use quiver::{Error, LocalCluster};

use crate::corpus::{lowercase_words, write_corpus};
use crate::wordcount::word_count;

fn registry() -> FunctionRegistry {
    let mut f = FunctionRegistry::new();
    f.register_scalar("char_class", DataType::Utf8, |args| match args {
        [ScalarValue::Utf8(s)] => Ok(ScalarValue::Utf8(
            if s.is_ascii() { "ascii" } else { "unicode" }.to_string(),
        )),
        [ScalarValue::Null] => Ok(ScalarValue::Null),
        other => Err(format!("char_class takes one string, got {other:?}")),
    });
    f.register_scalar("times", DataType::Int64, |args| match args {
        [ScalarValue::Int64(a), ScalarValue::Int64(b)] => Ok(ScalarValue::Int64(a * b)),
        other => Err(format!("times takes two integers, got {other:?}")),
    });
    let with_len = Arc::new(Schema::new(vec![
        Field::new("word", DataType::Utf8, true),
        Field::new("len", DataType::Int64, true),
    ]));
    f.register_batch("add_len", with_len.clone(), |batch| {
        let words = batch.column(0).as_string::<i32>();
        let lens: Int64Array = words.iter().map(|w| w.map(|w| w.len() as i64)).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("word", DataType::Utf8, true),
            Field::new("len", DataType::Int64, true),
        ]));
        RecordBatch::try_new(schema, vec![batch.column(0).clone(), Arc::new(lens)])
            .map_err(|e| e.to_string())
    });
    let chars = Arc::new(Schema::new(vec![Field::new("ch", DataType::Utf8, true)]));
    f.register_flat_map("chars", chars, |row| match row {
        [ScalarValue::Utf8(s), ..] => Ok(s
            .chars()
            .map(|c| vec![ScalarValue::Utf8(c.to_string())])
            .collect()),
        _ => Ok(vec![]),
    });
    f
}

/// A function `flaky` that fails its first call only (a transient error, retried), and the
/// count of its calls.
pub(crate) fn flaky_on_first_call() -> (FunctionRegistry, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut functions = FunctionRegistry::new();
    let seen = calls.clone();
    functions.register_scalar("flaky", DataType::Utf8, move |args| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err("transient trouble (first call only)".into());
        }
        Ok(args[0].clone())
    });
    (functions, calls)
}

/// Word count of `files` with every word passed through `flaky`.
pub(crate) fn flaky_word_count(
    files: &[std::path::PathBuf],
    functions: &FunctionRegistry,
) -> Dataset {
    lowercase_words(files)
        .select([functions
            .call("flaky", vec![col("word")])
            .unwrap()
            .alias("word")])
        .unwrap()
        .group_by(["word"])
        .agg([count().alias("count")])
        .unwrap()
}

pub(crate) async fn cluster_with(functions: FunctionRegistry) -> LocalCluster {
    LocalCluster::builder()
        .workers(2)
        .slots_per_worker(1)
        .functions(functions)
        .start()
        .await
        .unwrap()
}

fn words_of(files: &[std::path::PathBuf]) -> Vec<String> {
    let mut out = vec![];
    for f in files {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            out.extend(
                line.split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .map(str::to_lowercase),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_batch_and_flat_map_functions_match_reference() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 3, 400, 61);
    let words = words_of(&files);
    let functions = registry();
    let cluster = cluster_with(functions.clone()).await;
    let client = cluster.client().await.unwrap();

    // Row functions in select and group_by: words per character class, and length x 3.
    let ds = lowercase_words(&files)
        .with_column(
            "class",
            functions.call("char_class", vec![col("word")]).unwrap(),
        )
        .unwrap()
        .with_column(
            "n",
            functions
                .call("times", vec![length(col("word")), lit(3)])
                .unwrap(),
        )
        .unwrap()
        .group_by(["class"])
        .agg([count().alias("words"), sum(col("n")).alias("n")])
        .unwrap();
    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for w in &words {
        let e = expected
            .entry(if w.is_ascii() { "ascii" } else { "unicode" }.to_string())
            .or_default();
        e.0 += 1;
        e.1 += 3 * w.chars().count() as i64;
    }
    let mut got = BTreeMap::new();
    for b in ds.collect(&client).await.unwrap() {
        let class = b.column(0).as_string::<i32>();
        let n = b.column(1).as_primitive::<Int64Type>();
        let s = b.column(2).as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            got.insert(class.value(r).to_string(), (n.value(r), s.value(r)));
        }
    }
    assert_eq!(got, expected);

    // A batch function: total byte length of all words.
    let ds = lowercase_words(&files)
        .map_batches("add_len", functions.batch_schema("add_len").unwrap())
        .unwrap()
        .group_by(Vec::<String>::new())
        .agg([sum(col("len")).alias("bytes")])
        .unwrap();
    let batches = ds.collect(&client).await.unwrap();
    let bytes = batches[0].column(0).as_primitive::<Int64Type>().value(0);
    assert_eq!(bytes, words.iter().map(|w| w.len() as i64).sum::<i64>());

    // A flat-map function: every character of every word, counted.
    let ds = lowercase_words(&files)
        .flat_map("chars", functions.flat_map_schema("chars").unwrap())
        .unwrap();
    let chars: usize = words.iter().map(|w| w.chars().count()).sum();
    assert_eq!(ds.count(&client).await.unwrap(), chars as u64);
    cluster.shutdown().await;
}

#[test]
fn calling_an_unregistered_function_names_it_and_the_registered_ones() {
    let err = registry()
        .call("nope", vec![col("x")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'nope'") && err.contains("char_class, chars, times"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_needing_a_function_no_worker_has_is_rejected_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 1, 50, 62);
    let cluster = cluster_with(FunctionRegistry::new()).await; // workers without functions
    let client = cluster.client().await.unwrap();
    let ds = Dataset::read_text(&files)
        .unwrap()
        .filter(
            registry()
                .call("char_class", vec![col("line")])
                .unwrap()
                .eq(lit("ascii")),
        )
        .unwrap();
    let err = ds.count(&client).await.unwrap_err().to_string();
    assert!(
        err.contains("char_class") && err.contains("missing"),
        "{err}"
    );
    // The cluster goes on.
    assert!(
        Dataset::read_text(&files)
            .unwrap()
            .count(&client)
            .await
            .unwrap()
            > 0
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_that_panics_on_one_row_fails_the_job_after_retries_and_workers_stay_up() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 2, 300, 63);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut functions = FunctionRegistry::new();
    let counter = calls.clone();
    functions.register_scalar("picky", DataType::Utf8, move |args| {
        counter.fetch_add(1, Ordering::Relaxed);
        match args {
            [ScalarValue::Utf8(w)] if w == "straße" => panic!("picky cannot stand the word {w}"),
            [v] => Ok(v.clone()),
            _ => Err("picky takes one argument".into()),
        }
    });
    let cluster = cluster_with(functions.clone()).await;
    let client = cluster.client().await.unwrap();
    let ds = lowercase_words(&files)
        .select([functions
            .call("picky", vec![col("word")])
            .unwrap()
            .alias("word")])
        .unwrap();
    let err = ds.count(&client).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::JobFailed { .. }), "{msg}");
    assert!(msg.contains("picky cannot stand the word straße"), "{msg}");
    assert!(msg.contains("attempt 4 of at most 4"), "{msg}");
    assert!(msg.contains("stage 0 partition"), "{msg}");
    // The failing stage says failed; the stages after it never ran: skipped.
    let jobs = client.list_jobs().await.unwrap();
    let failed = jobs
        .iter()
        .find(|j| j.state == quiver::JobState::Failed)
        .expect("the failed job is listed");
    let stages = &failed.stages;
    assert!(stages.len() >= 2, "{stages:?}");
    assert_eq!(stages[0].state, quiver::StageState::Failed, "{stages:?}");
    assert!(
        stages[1..]
            .iter()
            .all(|s| s.state == quiver::StageState::Skipped && s.tasks_done == 0),
        "{stages:?}"
    );
    // Still two healthy workers that run the next job.
    let workers = client.list_workers().await.unwrap();
    assert_eq!(workers.len(), 2);
    let counts = result_counts_of(&word_count(&files).collect(&client).await.unwrap());
    assert_eq!(counts, crate::corpus::reference_counts(&files));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_that_fails_on_its_first_attempt_only_lets_the_job_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(dir.path(), 2, 300, 64);
    let (functions, first_call) = flaky_on_first_call();
    let cluster = cluster_with(functions.clone()).await;
    let client = cluster.client().await.unwrap();
    let ds = flaky_word_count(&files, &functions);
    let counts = result_counts_of(&ds.collect(&client).await.unwrap());
    assert_eq!(counts, crate::corpus::reference_counts(&files));
    assert!(first_call.load(Ordering::SeqCst) > 1);
    cluster.shutdown().await;
}

fn result_counts_of(batches: &[RecordBatch]) -> std::collections::HashMap<String, i64> {
    crate::corpus::result_counts(batches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_attempts_leave_exactly_one_parquet_file_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(&dir.path().join("in"), 4, 300, 65);
    // The first two calls fail: two attempts of the writing stage die mid-write and are
    // retried.
    let calls = Arc::new(AtomicUsize::new(0));
    let mut functions = FunctionRegistry::new();
    let seen = calls.clone();
    functions.register_scalar("fails_twice", DataType::Utf8, move |args| {
        if seen.fetch_add(1, Ordering::SeqCst) < 2 {
            return Err("transient trouble while writing".into());
        }
        Ok(args[0].clone())
    });
    let cluster = cluster_with(functions.clone()).await;
    let client = cluster.client().await.unwrap();
    let ds = word_count(&files)
        .with_column(
            "word",
            functions.call("fails_twice", vec![col("word")]).unwrap(),
        )
        .unwrap();
    let out = dir.path().join("out");
    let options = quiver::JobOptions {
        shuffle_partitions: Some(3),
        batch_size: None,
        broadcast_threshold: None,
    };
    let sink = Sink::WriteParquet {
        directory: out.to_string_lossy().into_owned(),
        mode: quiver::WriteMode::ErrorIfExists,
    };
    client
        .submit_with(&ds, sink, "exactly-once", options)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "_SUCCESS",
            "part-00000.parquet",
            "part-00001.parquet",
            "part-00002.parquet"
        ]
    );
    let back = Dataset::read_parquet(&[&out])
        .unwrap()
        .collect(&client)
        .await
        .unwrap();
    assert_eq!(
        crate::corpus::result_counts(&back),
        crate::corpus::reference_counts(&files)
    );
    assert!(
        calls.load(Ordering::SeqCst) > 2,
        "no attempt failed: the test proved nothing"
    );
    cluster.shutdown().await;
}
