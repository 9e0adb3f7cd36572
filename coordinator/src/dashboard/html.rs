//! The dashboard's HTML vocabulary: escaping, the page shell (header, navigation, the
//! compiled-in stylesheet and script), and how numbers, sizes, times and states are written.
//! Every text that came from a user or a peer goes through [`esc`].

use std::fmt::Write as _;

/// Escapes text for HTML and SVG, in element content and in quoted attributes alike.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The pages, for the navigation bar.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Jobs,
    Workers,
}

/// A whole page: `main` (the part live updates replace) inside the shell. `events` is the
/// path of the page's server-sent events.
pub fn page(title: &str, section: Section, events: &str, main: &str) -> String {
    let nav = |s: Section, href: &str, label: &str| {
        let current = if s == section {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<a href=\"{href}\"{current}>{label}</a>")
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Quiver</title><link rel=\"stylesheet\" href=\"/assets/style.css\">\
         <script src=\"/assets/live.js\" defer></script></head>\
         <body data-events=\"{}\"><header><span class=\"brand\">Quiver</span><nav>{}{}</nav>\
         <span id=\"live-status\" class=\"live\" title=\"live updates\"></span></header>\
         <main id=\"live\">{main}</main></body></html>",
        esc(title),
        esc(events),
        nav(Section::Jobs, "/jobs", "Jobs"),
        nav(Section::Workers, "/workers", "Workers"),
    )
}

/// A duration in milliseconds, in the largest units that keep it short: `850 ms`, `12.4 s`,
/// `3 min 05 s`, `2 h 07 min`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    if ms < 1000 {
        format!("{ms} ms")
    } else if s < 60 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if s < 3600 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    }
}

pub use crate::byte_size::bytes;

/// A count with thin spaces between thousands: `1 234 567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// A wall-clock time (milliseconds since the Unix epoch) in UTC: `2026-11-30 05:01:02 UTC`;
/// `-` for 0 (not known).
pub fn time(unix_ms: u64) -> String {
    if unix_ms == 0 {
        return "-".into();
    }
    let secs = unix_ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let t = secs % 86_400;
    let mut out = String::new();
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        t / 3600,
        (t % 3600) / 60,
        t % 60
    );
    out
}

/// The proleptic Gregorian date of a day number counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The lower-case name of a protocol enum value from its `as_str_name` (e.g.
/// `JOB_STATE_RUNNING` with prefix `JOB_STATE_` is `running`).
pub fn state_name(str_name: &str, prefix: &str) -> String {
    str_name
        .strip_prefix(prefix)
        .unwrap_or(str_name)
        .to_ascii_lowercase()
}

/// A state as a badge: its name, styled by its class (`state-running`, ...).
pub fn badge(state: &str) -> String {
    let state = esc(state);
    format!("<span class=\"badge state-{state}\">{state}</span>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }

    #[test]
    fn writes_dates_in_utc() {
        assert_eq!(time(0), "-");
        assert_eq!(time(1_000), "1970-01-01 00:00:01 UTC");
        // 2000-02-29 12:34:56 UTC, a leap day.
        assert_eq!(time(951_827_696_000), "2000-02-29 12:34:56 UTC");
        assert_eq!(time(1_798_761_599_000), "2026-12-31 23:59:59 UTC");
    }

    #[test]
    fn writes_sizes_counts_and_durations() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
        assert_eq!(count(1_234_567), "1\u{202f}234\u{202f}567");
        assert_eq!(count(999), "999");
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(12_400), "12.4 s");
        assert_eq!(duration(185_000), "3 min 05 s");
        assert_eq!(duration(7_620_000), "2 h 07 min");
    }
}
