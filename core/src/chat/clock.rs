//! The chat Lamport clock (status-chat.md §6.2), status-react's rule (the dominant 2019
//! sender, [SR-clock] since 2019-02-20):
//!
//! - send: `clock = max(local, now_ms × 100) + 1` (two "post-id" digits after the ms);
//! - receive: `local = min(max(msg, local), (now_ms + 31 days) × 100)`;
//! - incoming clocks above `(now_ms + 31 days) × 100` are unsafe and dropped by receivers
//!   ([`LamportClock::is_safe`]).
//!
//! status-go v0.36 uses `now_ms + 60000` instead (not scaled); mixed senders order
//! inconsistently, an open question of the notes.

use crate::time::Time;

/// Clock values are `unix_ms × CLOCK_SCALE + k`.
pub const CLOCK_SCALE: u64 = 100;
/// Largest tolerated lead of a clock over `now` (status-react `one-month-in-ms`: 31 days).
pub const MAX_CLOCK_LEAD_MS: u64 = 31 * 24 * 3600 * 1000;

/// A per-chat Lamport clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LamportClock {
    /// The last clock value sent or observed.
    pub value: u64,
}

impl LamportClock {
    /// A clock starting at `value`.
    pub fn new(value: u64) -> Self {
        LamportClock { value }
    }

    /// The clock for a message sent at `now`; advances the local clock to it.
    pub fn tick(&mut self, now: Time) -> u64 {
        let floor = now.as_millis().saturating_mul(CLOCK_SCALE);
        self.value = self.value.max(floor).saturating_add(1);
        self.value
    }

    /// Merges a received message's clock, capped at 31 days ahead of `now` (unlike the
    /// literal status-react rule, the local clock never moves backwards).
    pub fn observe(&mut self, remote: u64, now: Time) {
        self.value = self.value.max(remote).min(Self::cap(now).max(self.value));
    }

    /// True if `clock` is at most 31 days ahead of `now` (status-react `safe-timestamp?`).
    pub fn is_safe(clock: u64, now: Time) -> bool {
        clock <= Self::cap(now)
    }

    fn cap(now: Time) -> u64 {
        now.as_millis()
            .saturating_add(MAX_CLOCK_LEAD_MS)
            .saturating_mul(CLOCK_SCALE)
    }
}
