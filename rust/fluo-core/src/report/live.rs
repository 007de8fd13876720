//! The live view of a long command on a terminal (kapp/werf style): one line per component with
//! its state, its latest step and the time since it started, updated in place. Lines of the
//! command itself, warnings and errors are printed above the rows and stay. Only used when
//! stderr is a terminal; CI, pipes and `-o json` get the plain line log.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anstyle::{AnsiColor, Style};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Level;

/// How often the elapsed times are redrawn between events.
const TICK: Duration = Duration::from_millis(250);
/// Width of the component column.
const NAME_WIDTH: usize = 12;

/// What a component is doing, as its row shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running,
    Warning,
    Done,
    Failed,
}

impl State {
    /// The state an event of `level` leaves a component in.
    pub fn after(level: Level) -> State {
        match level {
            Level::Info => State::Running,
            Level::Warn => State::Warning,
            Level::Ok => State::Done,
            Level::Error => State::Failed,
        }
    }

    fn label(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Warning => "warning",
            State::Done => "done",
            State::Failed => "failed",
        }
    }

    fn style(self) -> Style {
        match self {
            State::Running => AnsiColor::Cyan.on_default(),
            State::Warning => AnsiColor::Yellow.on_default(),
            State::Done => AnsiColor::Green.on_default(),
            State::Failed => AnsiColor::Red.on_default().bold(),
        }
    }

    /// Done and failed rows stop their clock (until a new event, e.g. a rollback, restarts it).
    fn settled(self) -> bool {
        matches!(self, State::Done | State::Failed)
    }
}

/// One row: `nats          running  applied Deployment/nats               3.2s`.
pub fn row(component: &str, state: State, step: &str, elapsed: Duration, color: bool) -> String {
    let label = format!("{:<8}", state.label());
    let label = if color {
        let style = state.style();
        format!("{style}{label}{style:#}")
    } else {
        label
    };
    format!(
        "{component:<NAME_WIDTH$} {label} {step}  {:.1}s",
        elapsed.as_secs_f64()
    )
}

struct Row {
    bar: ProgressBar,
    state: State,
    step: String,
    started: Instant,
    /// When the row settled (done/failed): its clock stops there.
    settled_at: Option<Instant>,
}

impl Row {
    fn draw(&self, color: bool) {
        let end = self.settled_at.unwrap_or_else(Instant::now);
        let elapsed = end.duration_since(self.started);
        let name = self.bar.prefix();
        self.bar
            .set_message(row(&name, self.state, &self.step, elapsed, color));
    }
}

/// The rows, and a ticker thread that redraws their clocks until [`Live::finish`].
pub struct Live {
    multi: MultiProgress,
    rows: Arc<Mutex<BTreeMap<String, Row>>>,
    stop: Arc<AtomicBool>,
    color: bool,
}

impl Live {
    /// Draws on stderr; starts the ticker.
    pub fn start() -> Live {
        let color =
            anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never;
        let live = Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            rows: Arc::new(Mutex::new(BTreeMap::new())),
            stop: Arc::new(AtomicBool::new(false)),
            color,
        };
        let (rows, stop) = (Arc::clone(&live.rows), Arc::clone(&live.stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                for row in rows.lock().expect("live rows").values() {
                    if row.settled_at.is_none() {
                        row.draw(color);
                    }
                }
            }
        });
        live
    }

    /// A component's event: its row (added on its first event) shows the new state and step.
    pub fn update(&self, component: &str, level: Level, step: &str) {
        let mut rows = self.rows.lock().expect("live rows");
        let row = rows.entry(component.to_string()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(ProgressStyle::with_template("{msg}").expect("a valid template"));
            bar.set_prefix(component.to_string());
            Row {
                bar,
                state: State::Running,
                step: String::new(),
                started: Instant::now(),
                settled_at: None,
            }
        });
        let state = State::after(level);
        if row.settled_at.is_some() && !state.settled() {
            // Work resumed (e.g. an automatic rollback): the clock goes on from the start.
            row.settled_at = None;
        }
        if state.settled() && row.settled_at.is_none() {
            row.settled_at = Some(Instant::now());
        }
        row.state = state;
        row.step = one_line(step);
        row.draw(self.color);
    }

    /// A line above the rows that stays.
    pub fn println(&self, line: &str) {
        let line = if self.color {
            line.to_string()
        } else {
            anstream::adapter::strip_str(line).to_string()
        };
        let _ = self.multi.println(line);
    }

    /// Stops the clocks and leaves every row as last drawn.
    pub fn finish(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for row in self.rows.lock().expect("live rows").values() {
            row.draw(self.color);
            row.bar.finish();
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The first line of a step (a row is one line).
fn one_line(step: &str) -> String {
    step.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_shows_component_state_step_and_elapsed() {
        assert_eq!(
            row(
                "nats",
                State::Running,
                "applied Deployment/nats",
                Duration::from_millis(3240),
                false
            ),
            "nats         running  applied Deployment/nats  3.2s"
        );
        let coloured = row("bff", State::Failed, "x", Duration::ZERO, true);
        assert!(coloured.contains("\x1b["), "{coloured:?}");
        assert_eq!(
            anstream::adapter::strip_str(&coloured).to_string(),
            "bff          failed   x  0.0s"
        );
    }

    #[test]
    fn levels_map_to_states_and_only_done_or_failed_stop_the_clock() {
        assert_eq!(State::after(Level::Info), State::Running);
        assert_eq!(State::after(Level::Warn), State::Warning);
        assert_eq!(State::after(Level::Ok), State::Done);
        assert_eq!(State::after(Level::Error), State::Failed);
        assert!(State::Done.settled() && State::Failed.settled());
        assert!(!State::Running.settled() && !State::Warning.settled());
    }

    #[test]
    fn a_live_view_off_a_terminal_records_rows_without_drawing() {
        // Under the test harness stderr is not a terminal: indicatif draws nothing, the rows
        // still follow the events.
        let live = Live::start();
        live.update("nats", Level::Info, "applied Deployment/nats\nsecond line");
        live.update("nats", Level::Ok, "revision 1 ready");
        live.update("bff", Level::Error, "rollout failed");
        {
            let rows = live.rows.lock().unwrap();
            assert_eq!(rows["nats"].state, State::Done);
            assert_eq!(rows["nats"].step, "revision 1 ready");
            assert!(rows["nats"].settled_at.is_some());
            assert_eq!(rows["bff"].state, State::Failed);
        }
        live.update("nats", Level::Info, "rolling back");
        assert!(live.rows.lock().unwrap()["nats"].settled_at.is_none());
        live.finish();
        assert!(live.stop.load(Ordering::Relaxed));
    }
}
