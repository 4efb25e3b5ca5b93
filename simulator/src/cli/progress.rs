//! Progress of a run on stderr: a bar on a terminal, a line every few seconds otherwise (a
//! piped or logged run shows it is alive), both with events/s and simulated time, and an ETA
//! only once a rate has been measured.
//!
//! Contract: [`ProgressReport::update`] takes the run's [`Progress`] and the wall time since
//! the run started (the caller reads the clock, so tests give any time) and returns the text
//! to show, if it is time to show something.

use crate::run::Progress;
use std::time::Duration;

/// A non-terminal gets a line at most this often.
pub const PROGRESS_LINE_INTERVAL: Duration = Duration::from_secs(5);

/// Before this much wall time and simulated progress, no rate (and so no ETA) is given: the
/// first instants are node creation and handshakes, far slower per simulated ms than the
/// rest, and an ETA from them is wrong by minutes.
pub const MIN_RATE_WALL: Duration = Duration::from_secs(2);

/// What has been shown so far.
#[derive(Clone, Debug, Default)]
pub struct ProgressReport {
    /// When the last line was shown (wall time since the start).
    last_line: Option<Duration>,
    /// The progress and wall time the rate is measured from (the first report after
    /// [`MIN_RATE_WALL`] / 2, so that set-up does not count).
    base: Option<(Duration, Progress)>,
}

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// `95 s`, `3 min 05 s`, `1 h 02 min`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    }
}

impl ProgressReport {
    /// The status text for `p` at wall time `wall` since the start: simulated time,
    /// events, events/s and, once measured, the ETA.
    pub fn status(&mut self, p: Progress, wall: Duration) -> String {
        if self.base.is_none() && wall >= MIN_RATE_WALL / 2 {
            self.base = Some((wall, p));
        }
        let pct = if p.end_ms == 0 {
            100.0
        } else {
            p.simulated_ms as f64 * 100.0 / p.end_ms as f64
        };
        let mut text = format!(
            "{} / {} simulated ({pct:.0} %), {} events",
            secs(p.simulated_ms),
            secs(p.end_ms),
            p.events
        );
        let wall_s = wall.as_secs_f64();
        if wall_s > 0.0 {
            text.push_str(&format!(", {:.0} events/s", p.events as f64 / wall_s));
        }
        match self.rate(p, wall) {
            Some(sim_ms_per_s) => {
                let left_ms = p.end_ms.saturating_sub(p.simulated_ms) as f64;
                let eta = Duration::from_secs_f64(left_ms / sim_ms_per_s);
                text.push_str(&format!(", eta {}", human_duration(eta)));
            }
            None => text.push_str(", eta n/a (measuring the rate)"),
        }
        text
    }

    /// Simulated ms per wall second since the base, once enough of both has passed.
    fn rate(&self, p: Progress, wall: Duration) -> Option<f64> {
        let (w0, p0) = self.base?;
        let dw = wall.checked_sub(w0)?;
        let dsim = p.simulated_ms.checked_sub(p0.simulated_ms)?;
        (dw >= MIN_RATE_WALL && dsim > 0).then(|| dsim as f64 / dw.as_secs_f64())
    }

    /// For a non-terminal: a whole line when [`PROGRESS_LINE_INTERVAL`] has passed since the
    /// last one (or at the end of the run), else `None`.
    pub fn line(&mut self, p: Progress, wall: Duration) -> Option<String> {
        let text = self.status(p, wall);
        let done = p.simulated_ms >= p.end_ms;
        let due = match self.last_line {
            None => wall >= PROGRESS_LINE_INTERVAL,
            Some(t) => wall.saturating_sub(t) >= PROGRESS_LINE_INTERVAL,
        };
        if !(due || (done && self.last_line.is_some())) {
            return None;
        }
        self.last_line = Some(wall);
        Some(format!("hush sim: {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(simulated_ms: u64, events: u64) -> Progress {
        Progress {
            simulated_ms,
            end_ms: 60_000,
            events,
        }
    }

    #[test]
    fn lines_come_every_few_seconds_with_rate_and_simulated_time() {
        let mut r = ProgressReport::default();
        let s = Duration::from_secs;
        assert_eq!(r.line(at(100, 1_000), s(1)), None);
        let first = r.line(at(6_000, 60_000), s(5)).expect("a line after 5 s");
        assert!(first.contains("6.0 s / 60.0 s simulated"), "{first}");
        assert!(first.contains("12000 events/s"), "{first}");
        assert_eq!(r.line(at(7_000, 70_000), s(7)), None, "not again so soon");
        let second = r.line(at(12_000, 120_000), s(10)).expect("5 s later");
        assert!(second.contains("events/s"), "{second}");
    }

    #[test]
    fn no_eta_until_a_rate_is_measured() {
        let mut r = ProgressReport::default();
        let ms = Duration::from_millis;
        // Set-up: 1 simulated ms in the first second (node creation). No ETA from that.
        let early = r.status(at(1, 10), ms(1_000));
        assert!(early.contains("eta n/a"), "{early}");
        // Then 1 simulated second per wall second: 59 s left → about a minute, not hours.
        let later = r.status(at(4_001, 40_000), ms(5_000));
        assert!(later.contains("eta 55 s"), "{later}");
        assert!(!later.contains("NaN") && !later.contains("inf"), "{later}");
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(human_duration(Duration::from_secs(95)), "1 min 35 s");
        assert_eq!(human_duration(Duration::from_secs(3_720)), "1 h 02 min");
    }
}
