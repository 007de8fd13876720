//! Container logs of the process runtime: each run's stdout/stderr lines, stored as
//! `<RFC3339 time> <stream> <text>`, rendered for pods/log (timestamps, tailLines, limitBytes,
//! sinceTime/sinceSeconds).

use chrono::{DateTime, Utc};

/// How to render a log.
#[derive(Debug, Clone, Default)]
pub struct Render {
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    pub limit_bytes: Option<usize>,
    pub since: Option<DateTime<Utc>>,
}

/// One stored line: (time, text).
fn parse(line: &str) -> Option<(&str, &str)> {
    let (stamp, rest) = line.split_once(' ')?;
    let (_stream, text) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((stamp, text))
}

/// Renders stored lines (the whole file's text) for the client.
pub fn render(stored: &str, r: &Render) -> String {
    let mut lines: Vec<(&str, &str)> = stored
        .lines()
        .filter_map(parse)
        .filter(|(stamp, _)| {
            r.since.is_none_or(|since| {
                DateTime::parse_from_rfc3339(stamp).is_ok_and(|t| t.with_timezone(&Utc) >= since)
            })
        })
        .collect();
    if let Some(n) = r.tail_lines {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let mut out = String::new();
    for (stamp, text) in lines {
        if r.timestamps {
            out.push_str(stamp);
            out.push(' ');
        }
        out.push_str(text);
        out.push('\n');
    }
    if let Some(limit) = r.limit_bytes
        && out.len() > limit
    {
        let mut cut = limit;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORED: &str = "2026-01-01T00:00:00.000000001Z stdout first\n\
        2026-01-01T00:00:01.000000000Z stderr second line\n\
        2026-01-01T00:00:02.000000000Z stdout third\n";

    #[test]
    fn rendering_honours_the_options() {
        assert_eq!(
            render(STORED, &Render::default()),
            "first\nsecond line\nthird\n"
        );
        let tail = Render {
            tail_lines: Some(1),
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            render(STORED, &tail),
            "2026-01-01T00:00:02.000000000Z third\n"
        );
        let since = Render {
            since: Some("2026-01-01T00:00:01Z".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(render(STORED, &since), "second line\nthird\n");
        let limit = Render {
            limit_bytes: Some(8),
            ..Default::default()
        };
        assert_eq!(render(STORED, &limit), "first\nse");
    }
}
