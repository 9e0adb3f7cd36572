//! DuckDB as a peer in the suite: a Python virtualenv with the `duckdb` package (created once,
//! then reused), and each workload's equivalent SQL (`duckdb_peer.py`) run on the yardsticks'
//! local files with `threads` set to a cluster's total slots; its result, parsed here, is
//! checked against the yardstick's by the same comparison as every Quiver configuration's.
//!
//! Nothing of DuckDB is built: no C++ and no crate, only `pip install duckdb` when the suite
//! runs, and the suite goes on without the peer when Python, venv or the install fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::workloads::{Output, Q1Row, Workload};

/// The script each run executes (`python -c SCRIPT SPEC`).
const SCRIPT: &str = include_str!("duckdb_peer.py");

/// The package installed into a new virtualenv (1.3 has the `lambda x:` syntax the SQL uses).
const PACKAGE: &str = "duckdb>=1.3";

/// A virtualenv whose Python imports `duckdb`.
#[derive(Clone, Debug)]
pub struct DuckDb {
    python: PathBuf,
    /// `duckdb.__version__`.
    pub version: String,
}

/// One run of a workload on DuckDB.
#[derive(Debug)]
pub struct PeerRun {
    pub output: Output,
    /// Query time, measured inside the Python process.
    pub time: Duration,
    /// The Python process's peak RSS (DuckDB's memory plus the interpreter's).
    pub peak_rss: u64,
}

/// What a run needs to know about the inputs: the local files of the workload, and for grep
/// the word, for the join the orders' files and k.
pub struct PeerInputs<'a> {
    pub files: Vec<PathBuf>,
    pub orders: Vec<PathBuf>,
    pub word: &'a str,
    pub k: usize,
}

impl DuckDb {
    /// The virtualenv at `venv` when its Python imports `duckdb`; else creates it (or adds the
    /// package to it) with `python3 -m venv` and `pip install`. An error says what is missing,
    /// for the suite to print as the reason it skips DuckDB.
    pub fn prepare(venv: &Path) -> anyhow::Result<DuckDb> {
        let python = venv.join("bin").join("python");
        if let Ok(version) = version_of(&python) {
            return Ok(DuckDb { python, version });
        }
        if !python.exists() {
            eprintln!("DuckDB: creating a virtualenv in {} ...", venv.display());
            let status = Command::new("python3")
                .args(["-m", "venv"])
                .arg(venv)
                .status()
                .context("python3 is not available")?;
            if !status.success() {
                bail!(
                    "`python3 -m venv {}` failed ({status}): python3-venv missing?",
                    venv.display()
                );
            }
        }
        eprintln!(
            "DuckDB: pip install '{PACKAGE}' into {} ...",
            venv.display()
        );
        let pip = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--timeout", "20"])
            .args(["--retries", "1", "--disable-pip-version-check", PACKAGE])
            .status()
            .with_context(|| format!("running {}", python.display()))?;
        if !pip.success() {
            bail!("pip install '{PACKAGE}' failed ({pip}): no network or no wheel for this host?");
        }
        let version = version_of(&python)?;
        Ok(DuckDb { python, version })
    }

    /// Runs workload `w` with `threads` threads; `output` is an empty directory for
    /// terasort's file and `temp` DuckDB's spill directory.
    pub fn run(
        &self,
        w: Workload,
        inputs: &PeerInputs,
        threads: usize,
        output: &Path,
        temp: &Path,
    ) -> anyhow::Result<PeerRun> {
        let spec = json!({
            "workload": w.name(),
            "threads": threads,
            "files": inputs.files,
            "orders": inputs.orders,
            "word": inputs.word,
            "k": inputs.k,
            "output": output,
            "temp": temp,
        });
        let out = Command::new(&self.python)
            .args(["-c", SCRIPT, &spec.to_string()])
            .output()
            .with_context(|| format!("running {}", self.python.display()))?;
        if !out.status.success() {
            bail!(
                "DuckDB's {} failed ({}): {}",
                w.name(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        // The reply is the last line (anything DuckDB prints itself comes before it).
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.trim_end().lines().last().unwrap_or_default();
        let reply: Value = serde_json::from_str(last).with_context(|| {
            let start: String = last.chars().take(200).collect();
            format!("DuckDB's {} printed no JSON reply: {start:?}", w.name())
        })?;
        let seconds = reply["seconds"]
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .context("DuckDB's reply has no query time")?;
        let output = match w {
            Workload::Terasort => crate::workloads::sorted_file_summary(
                &crate::yardsticks::files_under(output, Some("parquet"))?,
            )?,
            _ => parse_result(w, &reply["result"])
                .with_context(|| format!("DuckDB's {} result", w.name()))?,
        };
        Ok(PeerRun {
            output,
            time: Duration::from_secs_f64(seconds),
            peak_rss: reply["peak_rss_kib"].as_u64().unwrap_or(0) * 1024,
        })
    }
}

/// `duckdb.__version__` as `python` imports it.
fn version_of(python: &Path) -> anyhow::Result<String> {
    let out = Command::new(python)
        .args(["-c", "import duckdb; print(duckdb.__version__)"])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!("{} cannot import duckdb", python.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A workload's result as the script prints it (rows as JSON arrays), as an [`Output`].
pub fn parse_result(w: Workload, result: &Value) -> anyhow::Result<Output> {
    let rows = result
        .as_array()
        .context("the result is not a list of rows")?;
    let row = |i: usize, len: usize| -> anyhow::Result<&Vec<Value>> {
        rows[i]
            .as_array()
            .filter(|r| r.len() == len)
            .with_context(|| format!("row {i} is not a list of {len} values: {}", rows[i]))
    };
    let text = |v: &Value, i: usize| -> anyhow::Result<String> {
        v.as_str()
            .map(str::to_string)
            .with_context(|| format!("row {i}: {v} is not a string"))
    };
    let int = |v: &Value, i: usize| -> anyhow::Result<i64> {
        v.as_i64()
            .with_context(|| format!("row {i}: {v} is not an integer"))
    };
    let float = |v: &Value, i: usize| -> anyhow::Result<f64> {
        v.as_f64()
            .with_context(|| format!("row {i}: {v} is not a number"))
    };
    Ok(match w {
        Workload::Wordcount | Workload::Grep => {
            let mut pairs = Vec::with_capacity(rows.len());
            for i in 0..rows.len() {
                let r = row(i, 2)?;
                pairs.push((text(&r[0], i)?, int(&r[1], i)?));
            }
            if w == Workload::Grep {
                pairs.sort();
                Output::Matches(pairs)
            } else {
                Output::Counts(pairs)
            }
        }
        Workload::TpchQ1 => {
            let mut q1 = Vec::with_capacity(rows.len());
            for i in 0..rows.len() {
                let r = row(i, 10)?;
                let mut values = [0.0; 7];
                for (v, x) in values.iter_mut().zip(&r[2..9]) {
                    *v = float(x, i)?;
                }
                q1.push(Q1Row {
                    flag: text(&r[0], i)?,
                    status: text(&r[1], i)?,
                    values,
                    count: int(&r[9], i)?,
                });
            }
            Output::Q1(q1)
        }
        Workload::Join => {
            let mut top = Vec::with_capacity(rows.len());
            for i in 0..rows.len() {
                let r = row(i, 2)?;
                top.push((int(&r[0], i)?, float(&r[1], i)?));
            }
            Output::TopCustomers(top)
        }
        Workload::Terasort => bail!("terasort's result is its output file, not rows"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Rows as the script prints them become the outputs the yardsticks give, and the same
    /// comparison accepts equal results and names a difference.
    #[test]
    fn results_parse_into_the_yardsticks_outputs() {
        let counts = parse_result(Workload::Wordcount, &json!([["kato", 3], ["ünïme", 1]]));
        let want = Output::Counts(vec![("ünïme".into(), 1), ("kato".into(), 3)]);
        counts.unwrap().check(&want).unwrap();
        let other = parse_result(Workload::Wordcount, &json!([["kato", 2], ["ünïme", 1]]));
        let e = other.unwrap().check(&want).unwrap_err().to_string();
        assert!(e.contains("kato"), "{e}");

        let grep = parse_result(Workload::Grep, &json!([["b.txt", 7], ["a.txt", 40]])).unwrap();
        grep.check(&Output::Matches(vec![
            ("a.txt".into(), 40),
            ("b.txt".into(), 7),
        ]))
        .unwrap();

        let q1 = json!([["A", "F", 1.0, 2.0, 3.0, 4.0, 0.5, 1.0, 0.25, 2]]);
        let row = Q1Row {
            flag: "A".into(),
            status: "F".into(),
            values: [1.0, 2.0, 3.0, 4.0, 0.5, 1.0, 0.25],
            count: 2,
        };
        parse_result(Workload::TpchQ1, &q1)
            .unwrap()
            .check(&Output::Q1(vec![row]))
            .unwrap();

        let top = parse_result(Workload::Join, &json!([[7, 10.5], [3, 2.0]])).unwrap();
        top.check(&Output::TopCustomers(vec![(7, 10.5), (3, 2.0)]))
            .unwrap();
        let e = top
            .check(&Output::TopCustomers(vec![(3, 2.0), (7, 10.5)]))
            .unwrap_err();
        assert!(e.to_string().contains("top customers"), "{e}");
    }

    #[test]
    fn malformed_results_name_the_row() {
        let e = parse_result(Workload::Wordcount, &json!([["a", 1], ["b"]])).unwrap_err();
        assert!(e.to_string().contains("row 1"), "{e}");
        let e = parse_result(Workload::Join, &json!([[1, "x"]])).unwrap_err();
        assert!(
            e.to_string().contains("row 0: \"x\" is not a number"),
            "{e}"
        );
        let e = parse_result(Workload::TpchQ1, &json!({"rows": 1})).unwrap_err();
        assert!(e.to_string().contains("not a list"), "{e}");
    }

    /// Where a DuckDB virtualenv exists (`target/duckdb-venv`, made by a suite run; never in
    /// CI), DuckDB's word count and grep of a small corpus with capitalised and non-ASCII
    /// words equal the yardsticks' exactly; elsewhere it skips.
    #[test]
    fn duckdb_counts_and_greps_like_the_yardsticks() {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/duckdb-venv");
        let Ok(version) = version_of(&venv.join("bin/python")) else {
            eprintln!("no DuckDB in {}: skipped", venv.display());
            return;
        };
        let duckdb = DuckDb {
            python: venv.join("bin/python"),
            version,
        };
        let dir = tempfile::tempdir().unwrap();
        let files = quiver_examples::generate_corpus(dir.path(), 1 << 20, 2, 42, true).unwrap();
        let (out, temp) = (dir.path().join("out"), dir.path().join("temp"));
        for d in [&out, &temp] {
            std::fs::create_dir_all(d).unwrap();
        }
        // A word that also occurs inside longer words ("Ünï" + word, word + "é", ...).
        let word = "ka";
        let inputs = PeerInputs {
            files: files.clone(),
            orders: vec![],
            word,
            k: 10,
        };
        let counts = duckdb
            .run(Workload::Wordcount, &inputs, 2, &out, &temp)
            .unwrap();
        let want = crate::yardsticks::wordcount(&files).unwrap();
        counts.output.check(&want).unwrap();
        let matches = duckdb.run(Workload::Grep, &inputs, 2, &out, &temp).unwrap();
        let want = crate::yardsticks::grep(&files, &format!(r"\b{word}\b")).unwrap();
        let Output::Matches(found) = &want else {
            panic!("grep gives matches")
        };
        assert!(!found.is_empty());
        matches.output.check(&want).unwrap();
    }
}
