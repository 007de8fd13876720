//! Progress and result output shared by the commands. Progress goes to stderr (one line per
//! event, with the elapsed time since the command started); results go to stdout as a text
//! table or JSON. Quiet mode prints no progress; JSON mode prints progress as JSON lines. On a
//! terminal, text progress is a live view instead (one line per component, updated in place;
//! see [`live`]). Colour follows the terminal, NO_COLOR and CLICOLOR(_FORCE) through anstream.

pub mod live;
pub mod output;

use std::io::{IsTerminal, Write};
use std::time::Instant;

use anstyle::{AnsiColor, Style};
use serde::Serialize;

pub use output::Output;

/// Where progress goes and how it looks.
pub struct Reporter {
    output: Output,
    quiet: bool,
    started: Instant,
    /// The live view, when progress is text on a terminal.
    live: Option<live::Live>,
}

impl Reporter {
    /// A live view only for text progress on a terminal (TERM other than `dumb`); the line log
    /// everywhere else (CI, pipes, files, `-o json`).
    pub fn new(output: Output, quiet: bool) -> Reporter {
        let terminal =
            std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
        let live = (output == Output::Text && !quiet && terminal).then(live::Live::start);
        Reporter {
            output,
            quiet,
            started: Instant::now(),
            live,
        }
    }

    pub fn output(&self) -> Output {
        self.output
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
        if self.output == Output::Json {
            let line = serde_json::json!({
                "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
                "component": component,
                "level": level,
                "message": message,
            });
            let _ = writeln!(std::io::stderr().lock(), "{line}");
            return;
        }
        let line = text_line(elapsed, component, level, message);
        match &self.live {
            // Component events update their row; warnings, errors and the command's own
            // events also stay above the rows.
            Some(live) => {
                if !component.is_empty() {
                    live.update(component, level, message);
                }
                if component.is_empty() || matches!(level, Level::Warn | Level::Error) {
                    live.println(&line);
                }
            }
            None => {
                let _ = writeln!(anstream::stderr().lock(), "{line}");
            }
        }
    }

    /// The command's result on stdout: `json` in JSON mode, else `text`. Ends the live view
    /// first (its rows stay as they were last drawn).
    pub fn result<T: Serialize>(&self, json: &T, text: &str) {
        if let Some(live) = &self.live {
            live.finish();
        }
        let mut out = anstream::stdout().lock();
        match self.output {
            Output::Json => {
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(json)
                        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
                );
            }
            Output::Text => {
                let _ = write!(out, "{text}");
            }
        }
    }
}

/// One progress line of the line log: `[  12.3s] component: message`, styled by level (the
/// styles are stripped by anstream where colour is off).
pub fn text_line(elapsed_secs: f64, component: &str, level: Level, message: &str) -> String {
    let style = level.style();
    let who = if component.is_empty() {
        String::new()
    } else {
        format!("{component}: ")
    };
    format!("[{elapsed_secs:6.1}s] {style}{who}{message}{style:#}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Ok,
    Warn,
    Error,
}

impl Level {
    /// Green ok, yellow warn, red error, plain info.
    pub fn style(self) -> Style {
        match self {
            Level::Info => Style::new(),
            Level::Ok => AnsiColor::Green.on_default(),
            Level::Warn => AnsiColor::Yellow.on_default(),
            Level::Error => AnsiColor::Red.on_default().bold(),
        }
    }
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
    fn a_text_line_has_the_elapsed_time_and_plain_text_once_styles_are_stripped() {
        let line = text_line(12.34, "nats", Level::Error, "rollout failed");
        assert!(line.contains('\x1b'), "styled before anstream: {line:?}");
        assert_eq!(
            anstream::adapter::strip_str(&line).to_string(),
            "[  12.3s] nats: rollout failed"
        );
        assert_eq!(
            text_line(0.0, "", Level::Info, "started"),
            "[   0.0s] started"
        );
    }

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
