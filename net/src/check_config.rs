//! [`ConfigReport`]: what `--check-config` prints — a process's effective settings (secrets
//! named by where they come from, never shown) and the ports it would listen on — so a
//! deployment can be checked without starting anything.
//!
//! The output is meant for people and for scripts: one `name: value` line per setting, then
//! one `listen <what> <ADDR:PORT>` line per port, then `configuration OK`.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The effective configuration of one process.
#[derive(Debug, Default)]
pub struct ConfigReport {
    process: String,
    settings: Vec<(String, String)>,
    listens: Vec<(String, SocketAddr)>,
}

impl ConfigReport {
    /// A report for `process` (e.g. `quiver-worker`).
    pub fn new(process: &str) -> Self {
        ConfigReport {
            process: process.to_string(),
            ..Default::default()
        }
    }

    /// One setting.
    pub fn set(&mut self, name: &str, value: impl Display) -> &mut Self {
        self.settings.push((name.to_string(), value.to_string()));
        self
    }

    /// A port the process would listen on, and what it serves there.
    pub fn listen(&mut self, what: &str, at: SocketAddr) -> &mut Self {
        self.listens.push((what.to_string(), at));
        self
    }

    /// The report as text.
    pub fn render(&self) -> String {
        let mut out = format!("{} configuration (--check-config)\n", self.process);
        let width = self
            .settings
            .iter()
            .map(|(n, _)| n.len())
            .max()
            .unwrap_or(0);
        for (name, value) in &self.settings {
            out.push_str(&format!("  {name:width$}  {value}\n"));
        }
        for (what, at) in &self.listens {
            out.push_str(&format!("listen {what} {at}\n"));
        }
        out.push_str("configuration OK\n");
        out
    }
}

/// Where a token comes from, without the token: `file <path>`, `QUIVER_TOKEN`, or `none`.
pub fn token_source(file: Option<&PathBuf>, token_loaded: bool) -> String {
    match (file, token_loaded) {
        (Some(path), _) => format!("from file {}", path.display()),
        (None, true) => "from QUIVER_TOKEN".into(),
        (None, false) => "none (open cluster)".into(),
    }
}

/// An optional path, or `-`.
pub fn path_or_dash(path: Option<&PathBuf>) -> String {
    path.map_or_else(|| "-".into(), |p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_settings_then_ports() {
        let mut r = ConfigReport::new("quiver-worker");
        r.set("slots", 4)
            .listen("grpc", "0.0.0.0:7070".parse().unwrap());
        let text = r.render();
        assert!(text.contains("  slots  4\n"), "{text}");
        assert!(text.contains("listen grpc 0.0.0.0:7070\n"), "{text}");
        assert!(text.ends_with("configuration OK\n"));
    }
}
