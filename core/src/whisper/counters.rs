//! The Whisper layer's counter listing for `/stats` ([`crate::stats`]) and the labels of
//! [`PeerFault`]s (kept out of `machine/`, which only counts).

use super::{PeerFault, Stats};
use crate::stats::{list, Counters};

impl Stats {
    /// Every counter as `(name, value)`.
    pub fn counters(&self) -> Counters {
        list([
            ("envelopes_received", self.envelopes_received),
            ("envelopes_pooled", self.envelopes_pooled),
            ("duplicates", self.duplicates),
            ("evicted_in_packet", self.evicted_in_packet),
            ("dropped_expired", self.dropped_expired),
            ("dropped_future", self.dropped_future),
            ("dropped_very_old", self.dropped_very_old),
            ("dropped_low_pow", self.dropped_low_pow),
            ("dropped_too_large", self.dropped_too_large),
            ("dropped_bloom", self.dropped_bloom),
            ("pool_evictions", self.pool_evictions),
            ("expired_from_pool", self.expired_from_pool),
            ("known_evictions", self.known_evictions),
            ("delivered", self.delivered),
            ("decrypt_attempts", self.decrypt_attempts),
            ("envelopes_sent", self.envelopes_sent),
            ("peer_faults", self.peer_faults),
            ("ignored_packets", self.ignored_packets),
            ("rate_limited", self.rate_limited),
            ("p2p_envelopes_received", self.p2p_envelopes_received),
            ("p2p_duplicates", self.p2p_duplicates),
            ("untrusted_ignored", self.untrusted_ignored),
            ("archived", self.archived),
            ("requests_served", self.requests_served),
            ("requests_failed", self.requests_failed),
            ("envelopes_served", self.envelopes_served),
            ("confirmations_sent", self.confirmations_sent),
        ])
    }
}

impl PeerFault {
    /// A snake_case name for counters and logs.
    pub fn label(&self) -> &'static str {
        match self {
            PeerFault::NoStatusFirst { .. } => "no_status_first",
            PeerFault::BadStatus(_) => "bad_status",
            PeerFault::LightClientsRestricted => "light_clients_restricted",
            PeerFault::PacketTooLarge { .. } => "packet_too_large",
            PeerFault::Malformed { .. } => "malformed_packet",
            PeerFault::EnvelopeTooLarge => "envelope_too_large",
            PeerFault::LowPow => "low_pow",
            PeerFault::BloomMismatch => "bloom_mismatch",
            PeerFault::TooManyPeers => "too_many_peers",
            PeerFault::RateLimited { .. } => "rate_limited",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{codes, encode_messages, Config, Envelope, StatusPacket, Topic, Whisper};
    use super::*;
    use crate::Time;

    const NOW: Time = Time(1_600_000_000_000);

    #[test]
    fn duplicate_direct_envelopes_are_counted() {
        let mut w = Whisper::new(Config::default(), [1; 32], NOW);
        w.handle_peer_connected_from(NOW, 1, None);
        let status = StatusPacket {
            version: 6,
            min_pow: 0.0,
            bloom: None,
            light_node: false,
            confirmations_enabled: false,
            rate_limits: None,
        };
        w.handle_peer_message(NOW, 1, codes::STATUS, &status.encode());
        assert!(w.set_trusted(1, true));
        let env = Envelope {
            expiry: 1_600_000_100,
            ttl: 100,
            topic: Topic([1, 2, 3, 4]),
            data: vec![7; 40],
            nonce: 0,
        };
        let packet = encode_messages(std::slice::from_ref(&env));
        w.handle_peer_message(NOW, 1, codes::P2P_MESSAGE, &packet);
        w.handle_peer_message(NOW, 1, codes::P2P_MESSAGE, &packet);
        assert_eq!(w.stats().p2p_envelopes_received, 1);
        assert_eq!(w.stats().p2p_duplicates, 1);
        assert!(w
            .stats()
            .counters()
            .contains(&("p2p_duplicates".to_owned(), 1)));
    }

    #[test]
    fn counters_list_every_field() {
        let stats = Stats::default();
        crate::stats::assert_lists_every_field(&format!("{stats:?}"), &stats.counters());
    }
}
