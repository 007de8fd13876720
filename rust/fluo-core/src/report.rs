//! Progress and result output shared by the commands. Progress goes to stderr (one line per
//! event, with the elapsed time since the command started); results go to stdout as a text
//! table or JSON. Quiet mode prints no progress; JSON mode prints progress as JSON lines.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Where progress goes and how it looks.
pub struct Reporter {
    format: Format,
    quiet: bool,
    color: bool,
    started: Instant,
}

impl Reporter {
    /// Colour only on a terminal and when NO_COLOR is unset (https://no-color.org).
    pub fn new(format: Format, quiet: bool) -> Reporter {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Reporter {
            format,
            quiet,
            color,
            started: Instant::now(),
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn elapsed_secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// A progress event about `component` (or the command as a whole with "").
    pub fn progress(&self, component: &str, level: Level, message: &str) {
        if self.quiet && level != Level::Error {
            return;
        }
        let elapsed = self.elapsed_secs();
        let mut err = std::io::stderr().lock();
        match self.format {
            Format::Json => {
                let line = serde_json::json!({
                    "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
                    "component": component,
                    "level": level,
                    "message": message,
                });
                let _ = writeln!(err, "{line}");
            }
            Format::Text => {
                let (start, end) = match (self.color, level) {
                    (true, Level::Ok) => ("\x1b[32m", "\x1b[0m"),
                    (true, Level::Warn) => ("\x1b[33m", "\x1b[0m"),
                    (true, Level::Error) => ("\x1b[31m", "\x1b[0m"),
                    _ => ("", ""),
                };
                let who = if component.is_empty() {
                    String::new()
                } else {
                    format!("{component}: ")
                };
                let _ = writeln!(err, "[{elapsed:6.1}s] {start}{who}{message}{end}");
            }
        }
    }

    /// The command's result on stdout: `json` in JSON mode, else `text`.
    pub fn result<T: Serialize>(&self, json: &T, text: &str) {
        let mut out = std::io::stdout().lock();
        match self.format {
            Format::Json => {
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(json)
                        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
                );
            }
            Format::Text => {
                let _ = write!(out, "{text}");
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Ok,
    Warn,
    Error,
}

/// Renders rows as a left-aligned table with a header (kubectl style: two spaces between).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["COMPONENT", "REV"],
            &[
                vec!["nats".into(), "12".into()],
                vec!["prometheus".into(), "1".into()],
            ],
        );
        assert_eq!(t, "COMPONENT   REV\nnats        12\nprometheus  1\n");
    }
}
