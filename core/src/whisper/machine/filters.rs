//! Local filters: what a filter is ([`Filter`], [`FilterKey`]), installing and removing them,
//! and offering a newly pooled envelope to them.
//!
//! Contract: only filters whose topics match are tried; a filter's minimum PoW is checked
//! before decrypting; `p2p` envelopes (direct code 127, or gossip on a light node) reach only
//! `allow_p2p` filters (Go `postEvent(.., isP2P)`). Symmetric filters keep a prepared AES key
//! schedule; password filters derive theirs on the first envelope tried.

use super::*;

/// The key a filter tries (Go filters hold exactly one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterKey {
    /// AES-256-GCM key.
    Symmetric([u8; AES_KEY_LEN]),
    /// AES-256-GCM key `PBKDF2(password)` ([`sym_key_from_password`], whisper-v6.md §8),
    /// derived the first time an envelope on the filter's topics is tried rather than when the
    /// filter is installed: PBKDF2 takes 65,356 HMAC rounds (≈ 7 ms) and many such filters
    /// (a node's own contact-code topic) never see an envelope. Same deliveries as
    /// `Symmetric(sym_key_from_password(password))`.
    SymmetricPassword(Vec<u8>),
    /// Our secp256k1 key for ECIES.
    Asymmetric(SecretKey),
}

/// A local subscription: envelopes on one of `topics` (all topics if empty) with PoW ≥
/// `min_pow` that decrypt with `key` are delivered.
#[derive(Clone, Debug)]
pub struct Filter {
    /// Topics of interest (empty = every topic).
    pub topics: Vec<Topic>,
    /// The key tried.
    pub key: FilterKey,
    /// Minimum PoW of delivered messages (0 = any); checked before decrypting.
    pub min_pow: f64,
    /// Also receive direct P2P (mailserver) envelopes (Go `AllowP2P`).
    pub allow_p2p: bool,
}

impl Filter {
    /// A symmetric filter with no PoW minimum that accepts P2P envelopes (Status's settings).
    pub fn symmetric(topics: Vec<Topic>, key: [u8; AES_KEY_LEN]) -> Filter {
        Filter {
            topics,
            key: FilterKey::Symmetric(key),
            min_pow: 0.0,
            allow_p2p: true,
        }
    }

    /// [`Filter::symmetric`] with the key `PBKDF2(password)`, derived on first use
    /// ([`FilterKey::SymmetricPassword`]).
    pub fn symmetric_password(topics: Vec<Topic>, password: Vec<u8>) -> Filter {
        Filter {
            topics,
            key: FilterKey::SymmetricPassword(password),
            min_pow: 0.0,
            allow_p2p: true,
        }
    }

    /// An asymmetric filter with no PoW minimum that accepts P2P envelopes.
    pub fn asymmetric(topics: Vec<Topic>, key: SecretKey) -> Filter {
        Filter {
            topics,
            key: FilterKey::Asymmetric(key),
            min_pow: 0.0,
            allow_p2p: true,
        }
    }

    fn matches_topic(&self, t: &Topic) -> bool {
        self.topics.is_empty() || self.topics.contains(t)
    }
}

impl Whisper {
    /// Installs a filter. With `topic_bloom`, our bloom grows to cover its topics and the new
    /// bloom is sent to every handshaken peer (code 3).
    pub fn add_filter(&mut self, filter: Filter) -> Result<FilterId, WhisperError> {
        if self.filters.len() >= self.config.max_filters {
            return Err(WhisperError::TooManyFilters {
                max: self.config.max_filters,
            });
        }
        if let Some(current) = self.bloom {
            let mut grown = current;
            if filter.topics.is_empty() {
                grown = Bloom::FULL;
            }
            for t in &filter.topics {
                grown = grown.union(&t.bloom());
            }
            if grown != current {
                self.change_bloom(Some(grown));
            }
        }
        let id = self.next_filter_id;
        self.next_filter_id += 1;
        if let FilterKey::Symmetric(k) = &filter.key {
            self.openers.insert(id, SymmetricOpener::new(k));
        }
        self.filters.insert(id, filter);
        Ok(id)
    }

    /// Installed filters, by id.
    pub fn filters(&self) -> impl Iterator<Item = (&FilterId, &Filter)> {
        self.filters.iter()
    }

    /// Removes a filter; true if it existed. (The bloom is not shrunk, as in Go.)
    pub fn remove_filter(&mut self, id: FilterId) -> bool {
        self.openers.remove(&id);
        self.filters.remove(&id).is_some()
    }

    /// Offers an envelope to local filters (`p2p`: only `allow_p2p` filters). `pow` is its
    /// PoW as validated; `pow_no_allowance` the same without the future allowance (what an
    /// asymmetric filter reports, as [`open_asymmetric`] computes it).
    pub(super) fn deliver(
        &mut self,
        env: EnvelopeFields<'_>,
        hash: [u8; 32],
        pow: f64,
        pow_no_allowance: f64,
        p2p: bool,
    ) {
        for (id, f) in &self.filters {
            if !f.matches_topic(&env.topic) || (p2p && !f.allow_p2p) {
                continue;
            }
            if f.min_pow > 0.0 && pow < f.min_pow {
                continue;
            }
            self.stats.decrypt_attempts += 1;
            let opened = match &f.key {
                FilterKey::Symmetric(k) => match self.openers.get(id) {
                    Some(o) => o.open_fields(env, hash, pow),
                    None => SymmetricOpener::new(k).open_fields(env, hash, pow),
                },
                FilterKey::SymmetricPassword(password) => self
                    .openers
                    .entry(*id)
                    .or_insert_with(|| SymmetricOpener::new(&sym_key_from_password(password)))
                    .open_fields(env, hash, pow),
                FilterKey::Asymmetric(k) => open_asymmetric_fields(env, hash, k, pow_no_allowance),
            };
            if let Ok(message) = opened {
                self.stats.delivered += 1;
                self.actions.push_back(Action::Deliver {
                    filter: *id,
                    message,
                });
            }
        }
    }
}
