//! Counters of the security layer: what [`super::SecurityService::decrypt`] made of each
//! ProtocolMessage, every refusal under its own reason (listed for `/stats`, see
//! [`crate::stats`]).

use super::service::Received;
use super::SecurityError;
use crate::stats::{list, Counters};

/// Counters (monotonic).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Direct messages decrypted with a Double Ratchet session.
    pub decrypted: u64,
    /// Direct messages decrypted on the DH-only path (no forward secrecy).
    pub decrypted_dh_only: u64,
    /// Messages carrying only bundles (stored).
    pub bundles_only: u64,
    /// `public_message` wrappers handed up unencrypted.
    pub public_messages: u64,
    /// Dropped: direct parts, none for this device (answered with our bundle, rate-limited).
    pub not_for_this_device: u64,
    /// Refused: not a ProtocolMessage protobuf.
    pub rejected_decode: u64,
    /// Refused: a bundle in it failed verification (the whole message is refused).
    pub rejected_bundle: u64,
    /// Refused: a message key used before (replay).
    pub rejected_replay: u64,
    /// Refused: more skipped message keys than `max_skip`.
    pub rejected_too_many_skipped: u64,
    /// Refused: authentication failed (tampered, or a wrong key).
    pub rejected_tampered: u64,
    /// Refused: no session or prekey for its headers.
    pub rejected_session_not_found: u64,
    /// Refused: from our own identity, not addressed to this (unpaired) device.
    pub rejected_not_paired_device: u64,
    /// Refused: a direct message without X3DH, DR or DH header.
    pub rejected_no_key_specified: u64,
    /// Refused: a header key of the wrong length or off the curve.
    pub rejected_invalid_key: u64,
    /// Refused: a ratchet suite we do not offer.
    pub rejected_unsupported_suite: u64,
    /// Refused: a [`super::SecurityConfig`] bound (bundles, installation id length...).
    pub rejected_limit_exceeded: u64,
    /// Refused for another reason (invalid argument, corrupt stored state).
    pub rejected_other: u64,
}

impl Stats {
    /// Counts one outcome of `decrypt`.
    pub(crate) fn record(&mut self, result: &Result<Received, SecurityError>) {
        let counter = match result {
            Ok(Received::Direct(d)) if d.forward_secrecy => &mut self.decrypted,
            Ok(Received::Direct(_)) => &mut self.decrypted_dh_only,
            Ok(Received::BundlesOnly) => &mut self.bundles_only,
            Ok(Received::Public(_)) => &mut self.public_messages,
            Ok(Received::NotForThisDevice { .. }) => &mut self.not_for_this_device,
            Err(e) => match e {
                SecurityError::Decode(_) => &mut self.rejected_decode,
                SecurityError::Bundle(_) => &mut self.rejected_bundle,
                SecurityError::Replay => &mut self.rejected_replay,
                SecurityError::TooManySkipped { .. } => &mut self.rejected_too_many_skipped,
                SecurityError::Tampered => &mut self.rejected_tampered,
                SecurityError::SessionNotFound => &mut self.rejected_session_not_found,
                SecurityError::NotPairedDevice => &mut self.rejected_not_paired_device,
                SecurityError::NoKeySpecified => &mut self.rejected_no_key_specified,
                SecurityError::InvalidKey => &mut self.rejected_invalid_key,
                SecurityError::UnsupportedSuite(_) => &mut self.rejected_unsupported_suite,
                SecurityError::LimitExceeded(_) => &mut self.rejected_limit_exceeded,
                _ => &mut self.rejected_other,
            },
        };
        *counter += 1;
    }

    /// Every counter as `(name, value)`.
    pub fn counters(&self) -> Counters {
        list([
            ("decrypted", self.decrypted),
            ("decrypted_dh_only", self.decrypted_dh_only),
            ("bundles_only", self.bundles_only),
            ("public_messages", self.public_messages),
            ("not_for_this_device", self.not_for_this_device),
            ("rejected_decode", self.rejected_decode),
            ("rejected_bundle", self.rejected_bundle),
            ("rejected_replay", self.rejected_replay),
            ("rejected_too_many_skipped", self.rejected_too_many_skipped),
            ("rejected_tampered", self.rejected_tampered),
            (
                "rejected_session_not_found",
                self.rejected_session_not_found,
            ),
            (
                "rejected_not_paired_device",
                self.rejected_not_paired_device,
            ),
            ("rejected_no_key_specified", self.rejected_no_key_specified),
            ("rejected_invalid_key", self.rejected_invalid_key),
            (
                "rejected_unsupported_suite",
                self.rejected_unsupported_suite,
            ),
            ("rejected_limit_exceeded", self.rejected_limit_exceeded),
            ("rejected_other", self.rejected_other),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::proto::{DirectMessageProtocol, ProtocolMessage};
    use crate::security::{SecurityConfig, SecurityService, NO_INSTALLATION_ID};

    #[test]
    fn counters_list_every_field() {
        let stats = Stats::default();
        crate::stats::assert_lists_every_field(&format!("{stats:?}"), &stats.counters());
    }

    #[test]
    fn refusals_are_counted_by_reason() {
        let key = |b: u8| secp256k1::SecretKey::from_byte_array(&[b; 32]).unwrap();
        let mut s = SecurityService::new(SecurityConfig::default(), key(1), "dev-1").unwrap();
        let sender = crate::ecies::public_key(&key(2));
        let mut rng = crate::rng::rng_from_seed([9; 32]);
        let mut no_header = ProtocolMessage {
            installation_id: "other".into(),
            ..Default::default()
        };
        no_header
            .direct_message
            .insert(NO_INSTALLATION_ID.into(), DirectMessageProtocol::default());
        let (_, r) = s.decrypt(crate::Time(1), &mut rng, &sender, &no_header);
        assert_eq!(r, Err(SecurityError::NoKeySpecified));
        let long_id = ProtocolMessage {
            installation_id: "x".repeat(SecurityConfig::default().max_installation_id_bytes + 1),
            ..Default::default()
        };
        let (_, r) = s.decrypt(crate::Time(1), &mut rng, &sender, &long_id);
        assert!(matches!(r, Err(SecurityError::LimitExceeded(_))));
        let mut for_other = ProtocolMessage::default();
        for_other
            .direct_message
            .insert("dev-2".into(), DirectMessageProtocol::default());
        let (_, r) = s.decrypt(crate::Time(1), &mut rng, &sender, &for_other);
        assert!(matches!(r, Ok(Received::NotForThisDevice { .. })));
        let counted: Vec<(String, u64)> = s
            .stats()
            .counters()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
        assert_eq!(
            counted,
            [
                ("not_for_this_device".to_owned(), 1),
                ("rejected_no_key_specified".to_owned(), 1),
                ("rejected_limit_exceeded".to_owned(), 1),
            ]
        );
    }
}
