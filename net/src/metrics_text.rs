//! The Prometheus text exposition format (version 0.0.4), as both daemons write their
//! `/metrics`: [`MetricsText`] writes families and samples with label values escaped, and
//! [`Histogram`] keeps the buckets of one histogram series.
//!
//! Written by hand rather than through a metrics crate: the two daemons need a dozen families
//! whose values they mostly compute when scraped, and the format is a few lines of text; a
//! registry with its own locks and derive macros would cost build time and buy nothing here.

use std::fmt::Write as _;

/// What a metric family is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl MetricKind {
    fn name(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// The content type of the text this module writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A `/metrics` page being written: each family's `# HELP` and `# TYPE` lines, then its
/// samples.
#[derive(Default)]
pub struct MetricsText {
    out: String,
}

impl MetricsText {
    /// An empty page.
    pub fn new() -> Self {
        MetricsText::default()
    }

    /// Starts the family `name` (its samples follow).
    pub fn family(&mut self, name: &str, kind: MetricKind, help: &str) -> &mut Self {
        let _ = writeln!(
            self.out,
            "# HELP {name} {}\n# TYPE {name} {}",
            escape_help(help),
            kind.name()
        );
        self
    }

    /// One sample of `name` with `labels` (names are the caller's constants; values are
    /// escaped).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        write_labels(&mut self.out, labels);
        let _ = writeln!(self.out, " {}", format_value(value));
        self
    }

    /// A family with one sample without labels.
    pub fn single(&mut self, name: &str, kind: MetricKind, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }

    /// The samples of one series of histogram `name` (whose family was started): cumulative
    /// `_bucket`s, `_sum` and `_count`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) -> &mut Self {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        for (bound, count) in h.bounds.iter().zip(&h.counts) {
            cumulative += count;
            let le = format_value(*bound);
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative as f64);
        }
        let mut with_le = labels.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&bucket, &with_le, h.count as f64);
        self.sample(&format!("{name}_sum"), labels, h.sum);
        self.sample(&format!("{name}_count"), labels, h.count as f64)
    }

    /// The page.
    pub fn finish(self) -> String {
        self.out
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)]) {
    if labels.is_empty() {
        return;
    }
    out.push('{');
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        out.push_str(&escape_label_value(value));
        out.push('"');
    }
    out.push('}');
}

/// A label value as the format wants it: `\`, `"` and newlines escaped.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Help text: `\` and newlines escaped (quotes are allowed there).
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Whole numbers print without a fraction (counters of bytes stay exact to 2^53).
        format!("{v}")
    }
}

/// Bucket bounds (seconds) for durations from tens of milliseconds to hours.
pub const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// One histogram series: how many observations fell at or under each bound, their sum and
/// count. Plain numbers: its owner serialises updates (the coordinator keeps its histograms
/// under the scheduler's lock).
#[derive(Clone, Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations in each bucket alone (not cumulative), one per bound.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    /// Counts `value` (values above every bound count in `+Inf` only).
    pub fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut m = MetricsText::new();
        m.family("x_total", MetricKind::Counter, "a \\ b\nc")
            .sample("x_total", &[("name", "say \"hi\"\\\nbye"), ("k", "v")], 3.0);
        assert_eq!(
            m.finish(),
            "# HELP x_total a \\\\ b\\nc\n# TYPE x_total counter\n\
             x_total{name=\"say \\\"hi\\\"\\\\\\nbye\",k=\"v\"} 3\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        static BOUNDS: &[f64] = &[1.0, 5.0];
        let mut h = Histogram::new(BOUNDS);
        for v in [0.5, 1.0, 3.0, 7.0] {
            h.observe(v);
        }
        let mut m = MetricsText::new();
        m.family("d_seconds", MetricKind::Histogram, "d").histogram(
            "d_seconds",
            &[("state", "ok")],
            &h,
        );
        let text = m.finish();
        let expected = "d_seconds_bucket{state=\"ok\",le=\"1\"} 2\n\
                        d_seconds_bucket{state=\"ok\",le=\"5\"} 3\n\
                        d_seconds_bucket{state=\"ok\",le=\"+Inf\"} 4\n\
                        d_seconds_sum{state=\"ok\"} 11.5\n\
                        d_seconds_count{state=\"ok\"} 4\n";
        assert!(text.ends_with(expected), "{text}");
        assert_eq!(h.count(), 4);
    }
}
