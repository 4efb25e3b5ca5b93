//! Time as an input.
//!
//! Contract: no code in `hush-core` reads a clock. Every call that needs the time takes a
//! [`Time`]: milliseconds since the Unix epoch. Drivers read the OS clock; the simulator
//! advances a virtual one. Whisper expiry (seconds on the wire), chat timestamps and timers are
//! all derived from it, so two runs fed the same times agree to the millisecond.

use core::fmt;
use core::ops::{Add, Sub};

/// Milliseconds since the Unix epoch (1970-01-01T00:00:00Z).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub u64);

impl Time {
    /// The epoch itself.
    pub const ZERO: Time = Time(0);

    /// Builds a time from milliseconds since the epoch.
    pub const fn from_millis(ms: u64) -> Time {
        Time(ms)
    }

    /// Builds a time from whole seconds since the epoch (saturating).
    pub const fn from_secs(secs: u64) -> Time {
        Time(secs.saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the epoch, rounded down (the unit of Whisper's `Expiry`).
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// `self + ms`, saturating at `u64::MAX`.
    pub const fn plus_millis(self, ms: u64) -> Time {
        Time(self.0.saturating_add(ms))
    }

    /// `self - earlier` in milliseconds, or 0 if `earlier` is later.
    pub const fn millis_since(self, earlier: Time) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(self.0.saturating_add(d.0))
    }
}

impl Sub<Duration> for Time {
    type Output = Time;
    fn sub(self, d: Duration) -> Time {
        Time(self.0.saturating_sub(d.0))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

/// A span of time in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub u64);

impl Duration {
    /// `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Duration {
        Duration(ms)
    }
    /// `secs` seconds (saturating).
    pub const fn from_secs(secs: u64) -> Duration {
        Duration(secs.saturating_mul(1000))
    }
    /// Length in milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }
}

/// Returns the earlier of two optional deadlines (`None` = no deadline).
pub fn earliest(a: Option<Time>, b: Option<Time>) -> Option<Time> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Time(u64::MAX) + Duration(5), Time(u64::MAX));
        assert_eq!(Time(3) - Duration(5), Time(0));
        assert_eq!(Time(5_500).as_secs(), 5);
        assert_eq!(Time(10).millis_since(Time(20)), 0);
        assert_eq!(earliest(Some(Time(4)), Some(Time(2))), Some(Time(2)));
        assert_eq!(earliest(None, Some(Time(2))), Some(Time(2)));
        assert_eq!(earliest(None, None), None);
    }
}
