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
            ("raw_on_contact_code", self.raw_on_contact_code),
            ("not_for_this_device", self.not_for_this_device),
            ("undecodable", self.undecodable),
            ("undecodable_protobuf", self.undecodable_protobuf),
            ("bad_wrapper_signature", self.bad_wrapper_signature),
            ("duplicates", self.duplicates),
            ("unsafe_clock", self.unsafe_clock),
            ("group_unknown", self.group_unknown),
            ("group_not_member", self.group_not_member),
            ("group_held", self.group_held),
            ("group_released", self.group_released),
            ("group_held_dropped", self.group_held_dropped),
            ("group_wrong_chat", self.group_wrong_chat),
            ("group_no_creator", self.group_no_creator),
            ("group_limit", self.group_limit),
            ("group_bad_signature", self.group_bad_signature),
            ("group_events_rejected", self.group_events_rejected),
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
