//! The 1:1/group layer's counter listing for `/stats` ([`crate::stats`]).

use super::Stats;
use crate::stats::{list, Counters};

impl Stats {
    /// Every counter as `(name, value)`. A field added to [`Stats`] must be added here too
    /// (`counters_list_every_field` fails otherwise).
    pub fn counters(&self) -> Counters {
        list([
            ("oversized", self.oversized),
            ("security_rejected", self.security_rejected),
            ("undecodable", self.undecodable),
            ("duplicates", self.duplicates),
            ("unsafe_clock", self.unsafe_clock),
            ("group_rejected", self.group_rejected),
            ("ignored", self.ignored),
            ("send_failed", self.send_failed),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_list_every_field() {
        let stats = Stats::default();
        crate::stats::assert_lists_every_field(&format!("{stats:?}"), &stats.counters());
    }
}
