//! [`SecurityService`]: bundles, installations and sessions of one device, building and reading
//! 1:1 [`ProtocolMessage`]s (security.md §1, §5, §6; status-go v0.38 `encryptor.go`,
//! `protocol.go`, `multidevice`, `publisher`).
//!
//! Contract:
//! - A service with explicit inputs and outputs (like `chat::service::PublicChats`): every call
//!   that changes durable state returns the [`Persist`] records of that change **first** in its
//!   result tuple, before the ciphertext/plaintext that depends on it. The caller commits them
//!   (in order; each is an upsert or a delete) before sending or acting. [`SecurityService::
//!   decrypt`] returns `(Vec<Persist>, Result<..>)` so that state accepted before a failure
//!   (e.g. a valid bundle in a message whose payload does not decrypt) is never lost.
//! - Sending to identity B: up to `max_active_installations` enabled, non-stale installations
//!   of B by last activity, plus our own other devices (our device counts towards the cap);
//!   existing session → Double Ratchet (X3DH header repeated until the peer answers); else
//!   X3DH with B's bundle; no installation known → DH-only under `"none"` (no forward
//!   secrecy, flagged as such to the receiver).
//! - Suites: [`Suite::Modern`] is used for a new session only when we offer it
//!   (`SecurityConfig::offer_modern_suite`) and the peer's verified bundle offers it.
//! - Session rules (2019 spec): re-keying on a higher bundle version expires sessions bound to
//!   the old prekey; a new X3DH session from a peer on our current prekey supersedes sessions
//!   bound to our expired prekeys; among remaining concurrent sessions with one installation
//!   the one whose `tie_break = keccak256(SK)` sorts first is kept (the spec sorts the
//!   symmetric key itself; hashing it first gives the same agreement without storing SK);
//!   expired sessions still decrypt for `expired_retention` (14 days), then are deleted;
//!   installations not listed in a bundle for `stale_installation_after` (7 days) are not sent
//!   to; a message with no part for us is answered with a rate-limited bundle advertisement.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand_core::{CryptoRng, RngCore};
use secp256k1::{PublicKey, SecretKey};

use super::bundle::{self, VerifiedBundle};
use super::proto::{
    Bundle, DhHeader, DirectMessageProtocol, DrHeader, HushPreKey, ProtocolMessage, SignedPreKey,
    X3dhHeader,
};
use super::ratchet::{Header, RatchetState, Suite};
use super::x3dh;
use super::{SecurityConfig, SecurityError, NO_INSTALLATION_ID, PROTOCOL_VERSION};
use crate::ecies::{ecdh_x, public_key, random_secret_key};
use crate::keccak::keccak256;
use crate::Time;

/// One of our own signed prekeys (this device), by version.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct OwnPreKeyRecord {
    /// Bundle version (1, 2, ...).
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// secp256k1 signed prekey secret, 32 raw bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub secret: Vec<u8>,
    /// X25519 prekey secret of the modern suite, 32 bytes.
    #[prost(bytes = "vec", tag = "3")]
    pub x25519_secret: Vec<u8>,
    /// Creation time, ms.
    #[prost(uint64, tag = "4")]
    pub created_at_ms: u64,
    /// Expiry time, ms; 0 = current.
    #[prost(uint64, tag = "5")]
    pub expired_at_ms: u64,
}

/// A known installation of some identity (peers' and our own other devices).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct InstallationRecord {
    /// 33-byte compressed identity key.
    #[prost(bytes = "vec", tag = "1")]
    pub identity: Vec<u8>,
    /// Installation id.
    #[prost(string, tag = "2")]
    pub installation_id: String,
    /// Current signed prekey (33 B) = bundle id.
    #[prost(bytes = "vec", tag = "3")]
    pub signed_pre_key: Vec<u8>,
    /// Its version.
    #[prost(uint32, tag = "4")]
    pub version: u32,
    /// Advertised protocol version.
    #[prost(uint32, tag = "5")]
    pub protocol_version: u32,
    /// Modern-suite X25519 prekey (32 B) or empty.
    #[prost(bytes = "vec", tag = "6")]
    pub modern_pre_key: Vec<u8>,
    /// Last activity (message received from it, or its first bundle), ms.
    #[prost(uint64, tag = "7")]
    pub last_activity_ms: u64,
    /// Latest bundle timestamp listing it (clamped to receipt time), ms.
    #[prost(uint64, tag = "8")]
    pub last_in_bundle_ms: u64,
    /// Whether we send to it (own devices need pairing).
    #[prost(bool, tag = "9")]
    pub enabled: bool,
}

/// Identifies a session: peer identity, peer installation, bundle id (the X3DH responder's
/// signed prekey) and the X3DH initiator's ephemeral key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionKey {
    /// Peer identity, 33 B.
    pub identity: Vec<u8>,
    /// Peer installation id.
    pub installation_id: String,
    /// Bundle id, 33 B.
    pub bundle_id: Vec<u8>,
    /// X3DH ephemeral (secp256k1, 33 B) of the initiator.
    pub ephemeral: Vec<u8>,
}

/// A Double Ratchet session with one peer installation.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct SessionRecord {
    /// Peer identity, 33 B.
    #[prost(bytes = "vec", tag = "1")]
    pub identity: Vec<u8>,
    /// Peer installation id.
    #[prost(string, tag = "2")]
    pub installation_id: String,
    /// Bundle id.
    #[prost(bytes = "vec", tag = "3")]
    pub bundle_id: Vec<u8>,
    /// X3DH initiator ephemeral.
    #[prost(bytes = "vec", tag = "4")]
    pub ephemeral: Vec<u8>,
    /// The ratchet.
    #[prost(message, optional, tag = "5")]
    pub ratchet: Option<RatchetState>,
    /// We initiated the X3DH.
    #[prost(bool, tag = "6")]
    pub initiator: bool,
    /// Initiator only: the X3DH header is still sent (no reply received yet).
    #[prost(bool, tag = "7")]
    pub unconfirmed: bool,
    /// Modern suite: the X25519 X3DH ephemeral public key (sent while unconfirmed).
    #[prost(bytes = "vec", tag = "8")]
    pub x25519_ephemeral: Vec<u8>,
    /// keccak256(SK): the concurrent-session tie-break.
    #[prost(bytes = "vec", tag = "9")]
    pub tie_break: Vec<u8>,
    /// Creation, ms.
    #[prost(uint64, tag = "10")]
    pub created_at_ms: u64,
    /// Last encrypt/decrypt, ms.
    #[prost(uint64, tag = "11")]
    pub last_used_ms: u64,
    /// Expiry, ms; 0 = active.
    #[prost(uint64, tag = "12")]
    pub expired_at_ms: u64,
}

impl SessionRecord {
    /// Its key.
    pub fn key(&self) -> SessionKey {
        SessionKey {
            identity: self.identity.clone(),
            installation_id: self.installation_id.clone(),
            bundle_id: self.bundle_id.clone(),
            ephemeral: self.ephemeral.clone(),
        }
    }

    /// Not expired.
    pub fn is_active(&self) -> bool {
        self.expired_at_ms == 0
    }
}

/// A durable state change. Apply in order: records are upserts keyed as documented, the
/// `*Deleted` variants delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Persist {
    /// Upsert our prekey, keyed by `version`.
    OwnPreKey(OwnPreKeyRecord),
    /// Delete our prekey `version`.
    OwnPreKeyDeleted {
        /// Version.
        version: u32,
    },
    /// Upsert an installation, keyed by (identity, installation id).
    Installation(InstallationRecord),
    /// Delete an installation.
    InstallationDeleted {
        /// Identity, 33 B.
        identity: Vec<u8>,
        /// Installation id.
        installation_id: String,
    },
    /// Upsert a session, keyed by [`SessionRecord::key`].
    Session(Box<SessionRecord>),
    /// Delete a session.
    SessionDeleted(SessionKey),
}

/// A decrypted direct message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decrypted {
    /// The payload.
    pub plaintext: Vec<u8>,
    /// Sender's installation id.
    pub installation_id: String,
    /// `false` for the DH-only path (no forward secrecy).
    pub forward_secrecy: bool,
    /// Ratchet suite, `None` for DH-only.
    pub suite: Option<Suite>,
    /// `ECDH(IK_self, IK_sender)` when the sender installation advertises protocol version
    /// ≥ 1 (status-chat.md §2 negotiated topic); the caller stores it.
    pub negotiated_secret: Option<[u8; 32]>,
}

/// What an incoming ProtocolMessage turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// A direct message for this device.
    Direct(Decrypted),
    /// `public_message` (not encrypted at this layer).
    Public(Vec<u8>),
    /// Only bundles (contact-code message); they were stored.
    BundlesOnly,
    /// Direct messages, none for this device: the sender does not know it. `reply` is a
    /// bundle advertisement to send back to the sender (rate-limited per identity).
    NotForThisDevice {
        /// Advertisement to send, if not rate-limited.
        reply: Option<ProtocolMessage>,
    },
}

type InstallationKey = (Vec<u8>, String);

/// Bundles, installations and Double Ratchet sessions of one device.
#[derive(Debug)]
pub struct SecurityService {
    config: SecurityConfig,
    identity: SecretKey,
    identity_public: PublicKey,
    identity_bytes: Vec<u8>,
    installation_id: String,
    own_prekeys: BTreeMap<u32, OwnPreKeyRecord>,
    installations: BTreeMap<InstallationKey, InstallationRecord>,
    sessions: BTreeMap<SessionKey, SessionRecord>,
    advertised: BTreeMap<Vec<u8>, Time>,
    /// Our last signed bundle and when it was signed ([`OWN_BUNDLE_REUSE_MS`]).
    signed_bundle: Option<(Time, Bundle)>,
    /// The last bundles whose signatures checked out, most recent last
    /// ([`VERIFIED_BUNDLES_REMEMBERED`]).
    verified_bundles: VecDeque<(Bundle, VerifiedBundle)>,
    stats: super::Stats,
}

/// How long our signed bundle is reused while its content (prekeys, installations) stays the
/// same, ms. Every direct message carries the bundle and its signatures cover the timestamp,
/// so a fresh one costs one or two ECDSA signatures per message (13 % of a `/dm` sender's CPU);
/// a timestamp up to a second old tells a receiver nothing less.
pub const OWN_BUNDLE_REUSE_MS: u64 = 1_000;

/// Bundles remembered as verified, byte-identical copies of which are not verified again:
/// every direct message carries its sender's bundle, the same one for a while
/// ([`OWN_BUNDLE_REUSE_MS`] on a hush sender), and each check is one or two signature
/// recoveries.
pub const VERIFIED_BUNDLES_REMEMBERED: usize = 16;

fn ns_to_ms(ns: i64) -> u64 {
    u64::try_from(ns).unwrap_or(0) / 1_000_000
}

fn secret32(bytes: &[u8]) -> Result<SecretKey, SecurityError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| SecurityError::CorruptState("prekey secret length"))?;
    SecretKey::from_byte_array(&arr).map_err(|_| SecurityError::CorruptState("prekey secret"))
}

impl SecurityService {
    /// A fresh service for `installation_id` of `identity`.
    pub fn new(
        config: SecurityConfig,
        identity: SecretKey,
        installation_id: &str,
    ) -> Result<Self, SecurityError> {
        if installation_id.is_empty() || installation_id == NO_INSTALLATION_ID {
            return Err(SecurityError::InvalidArgument(
                "installation id must be non-empty and not \"none\"",
            ));
        }
        if installation_id.len() > config.max_installation_id_bytes {
            return Err(SecurityError::InvalidArgument("installation id too long"));
        }
        let identity_public = public_key(&identity);
        Ok(SecurityService {
            config,
            identity,
            identity_public,
            identity_bytes: identity_public.serialize().to_vec(),
            installation_id: installation_id.to_owned(),
            own_prekeys: BTreeMap::new(),
            installations: BTreeMap::new(),
            sessions: BTreeMap::new(),
            advertised: BTreeMap::new(),
            signed_bundle: None,
            verified_bundles: VecDeque::new(),
            stats: super::Stats::default(),
        })
    }

    /// Rebuilds a service from persisted records, applied in order.
    pub fn restore(
        config: SecurityConfig,
        identity: SecretKey,
        installation_id: &str,
        records: impl IntoIterator<Item = Persist>,
    ) -> Result<Self, SecurityError> {
        let mut s = Self::new(config, identity, installation_id)?;
        for record in records {
            s.apply(record)?;
        }
        Ok(s)
    }

    fn apply(&mut self, record: Persist) -> Result<(), SecurityError> {
        match record {
            Persist::OwnPreKey(r) => {
                secret32(&r.secret)?;
                self.own_prekeys.insert(r.version, r);
            }
            Persist::OwnPreKeyDeleted { version } => {
                self.own_prekeys.remove(&version);
            }
            Persist::Installation(r) => {
                self.installations
                    .insert((r.identity.clone(), r.installation_id.clone()), r);
            }
            Persist::InstallationDeleted {
                identity,
                installation_id,
            } => {
                self.installations.remove(&(identity, installation_id));
            }
            Persist::Session(r) => {
                let ratchet = r
                    .ratchet
                    .as_ref()
                    .ok_or(SecurityError::CorruptState("session without ratchet"))?;
                ratchet
                    .suite()
                    .map_err(|_| SecurityError::CorruptState("session suite"))?;
                self.sessions.insert(r.key(), *r);
            }
            Persist::SessionDeleted(k) => {
                self.sessions.remove(&k);
            }
        }
        Ok(())
    }

    /// Our identity public key.
    pub fn identity_public(&self) -> PublicKey {
        self.identity_public
    }

    /// Our installation id.
    pub fn installation_id(&self) -> &str {
        &self.installation_id
    }

    /// The configuration.
    pub fn config(&self) -> &SecurityConfig {
        &self.config
    }

    /// All sessions (inspection, tests, debugging).
    pub fn sessions(&self) -> impl Iterator<Item = &SessionRecord> {
        self.sessions.values()
    }

    /// Our prekeys by version.
    pub fn own_prekeys(&self) -> impl Iterator<Item = &OwnPreKeyRecord> {
        self.own_prekeys.values()
    }

    /// A known installation.
    pub fn installation(
        &self,
        identity: &PublicKey,
        installation_id: &str,
    ) -> Option<&InstallationRecord> {
        self.installations
            .get(&(identity.serialize().to_vec(), installation_id.to_owned()))
    }

    /// Every known installation of `identity` (enabled or not, stale or not), by id.
    pub fn installations_of<'a>(
        &'a self,
        identity: &PublicKey,
    ) -> impl Iterator<Item = &'a InstallationRecord> + 'a {
        let id = identity.serialize().to_vec();
        self.installations
            .range((id.clone(), String::new())..)
            .take_while(move |((i, _), _)| *i == id)
            .map(|(_, r)| r)
    }

    /// Enables or disables sending to an installation (pairing of own devices).
    pub fn set_installation_enabled(
        &mut self,
        identity: &PublicKey,
        installation_id: &str,
        enabled: bool,
    ) -> Result<Vec<Persist>, SecurityError> {
        let key = (identity.serialize().to_vec(), installation_id.to_owned());
        let rec = self
            .installations
            .get_mut(&key)
            .ok_or(SecurityError::InvalidArgument("unknown installation"))?;
        rec.enabled = enabled;
        Ok(vec![Persist::Installation(rec.clone())])
    }

    fn is_stale(&self, now: Time, rec: &InstallationRecord) -> bool {
        now.millis_since(Time(rec.last_in_bundle_ms)) > self.config.stale_installation_after.0
    }

    /// The installations of `identity` we send to: enabled, not stale, newest activity first,
    /// at most `max_active_installations` (for our own identity our device takes one slot and
    /// is not listed).
    pub fn active_installations(&self, now: Time, identity: &PublicKey) -> Vec<InstallationRecord> {
        let id = identity.serialize().to_vec();
        let own = id == self.identity_bytes;
        let mut list: Vec<&InstallationRecord> = self
            .installations
            .range((id.clone(), String::new())..)
            .take_while(|((i, _), _)| *i == id)
            .map(|(_, r)| r)
            .filter(|r| r.enabled && !self.is_stale(now, r))
            .filter(|r| !(own && r.installation_id == self.installation_id))
            .collect();
        list.sort_by(|a, b| {
            b.last_activity_ms
                .cmp(&a.last_activity_ms)
                .then_with(|| a.installation_id.cmp(&b.installation_id))
        });
        let cap = if own {
            self.config.max_active_installations.saturating_sub(1)
        } else {
            self.config.max_active_installations
        };
        list.into_iter().take(cap).cloned().collect()
    }

    fn current_prekey(&self) -> Option<&OwnPreKeyRecord> {
        self.own_prekeys
            .values()
            .rev()
            .find(|r| r.expired_at_ms == 0)
    }

    /// Generates a new signed prekey if there is none or the current one is older than
    /// `bundle_refresh_interval` (the older ones are marked expired).
    fn rotate_if_needed(
        &mut self,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Vec<Persist> {
        let fresh = self.current_prekey().is_some_and(|r| {
            now.millis_since(Time(r.created_at_ms)) < self.config.bundle_refresh_interval.0
        });
        if fresh {
            return Vec::new();
        }
        let mut out = Vec::new();
        for r in self.own_prekeys.values_mut() {
            if r.expired_at_ms == 0 {
                r.expired_at_ms = now.0.max(1);
                out.push(Persist::OwnPreKey(r.clone()));
            }
        }
        let version = self
            .own_prekeys
            .keys()
            .next_back()
            .map_or(1, |v| v.saturating_add(1));
        let secret = random_secret_key(rng);
        let (x_secret, _) = Suite::Modern.generate_dh(rng);
        let rec = OwnPreKeyRecord {
            version,
            secret: secret.secret_bytes().to_vec(),
            x25519_secret: x_secret.to_vec(),
            created_at_ms: now.0,
            expired_at_ms: 0,
        };
        self.own_prekeys.insert(version, rec.clone());
        out.push(Persist::OwnPreKey(rec));
        out
    }

    /// Our bundle, signed with timestamp `now` (rotating the prekey when due): this device
    /// plus our other active own installations. The same signed bundle is returned again for
    /// [`OWN_BUNDLE_REUSE_MS`] while its content does not change.
    pub fn own_bundle(
        &mut self,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(Vec<Persist>, Bundle), SecurityError> {
        let persist = self.rotate_if_needed(now, rng);
        let current = self
            .current_prekey()
            .ok_or(SecurityError::CorruptState("no current prekey"))?
            .clone();
        let spk = secret32(&current.secret)?;
        let mut b = Bundle {
            timestamp: i64::try_from(now.0.saturating_mul(1_000_000)).unwrap_or(i64::MAX),
            ..Default::default()
        };
        b.signed_pre_keys.insert(
            self.installation_id.clone(),
            SignedPreKey {
                signed_pre_key: public_key(&spk).serialize().to_vec(),
                version: current.version,
                protocol_version: PROTOCOL_VERSION,
            },
        );
        if self.config.offer_modern_suite {
            if let Ok(x) = <[u8; 32]>::try_from(current.x25519_secret.as_slice()) {
                b.hush_pre_keys.insert(
                    self.installation_id.clone(),
                    HushPreKey {
                        x25519_pre_key: Suite::Modern.public_of(&x)?,
                        suites: bundle::SUITE_BIT_MODERN_V1,
                    },
                );
            }
        }
        for other in self.active_installations(now, &self.identity_public) {
            b.signed_pre_keys.insert(
                other.installation_id.clone(),
                SignedPreKey {
                    signed_pre_key: other.signed_pre_key.clone(),
                    version: other.version,
                    protocol_version: other.protocol_version,
                },
            );
            if self.config.offer_modern_suite && !other.modern_pre_key.is_empty() {
                b.hush_pre_keys.insert(
                    other.installation_id.clone(),
                    HushPreKey {
                        x25519_pre_key: other.modern_pre_key.clone(),
                        suites: bundle::SUITE_BIT_MODERN_V1,
                    },
                );
            }
        }
        if let Some((signed_at, cached)) = &self.signed_bundle {
            let same_content = cached.signed_pre_keys == b.signed_pre_keys
                && cached.hush_pre_keys == b.hush_pre_keys;
            if same_content && now.0.saturating_sub(signed_at.0) < OWN_BUNDLE_REUSE_MS {
                return Ok((persist, cached.clone()));
            }
        }
        bundle::sign_bundle(&mut b, &self.identity);
        self.signed_bundle = Some((now, b.clone()));
        Ok((persist, b))
    }

    /// A contact-code message: `ProtocolMessage{installation_id, bundles = [own bundle]}`.
    pub fn contact_code_message(
        &mut self,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(Vec<Persist>, ProtocolMessage), SecurityError> {
        let (persist, b) = self.own_bundle(now, rng)?;
        Ok((
            persist,
            ProtocolMessage {
                installation_id: self.installation_id.clone(),
                bundles: vec![b],
                ..Default::default()
            },
        ))
    }

    /// [`bundle::verify_bundle`], remembering the last few bundles that passed.
    fn verify_bundle(&mut self, b: &Bundle) -> Result<VerifiedBundle, SecurityError> {
        if let Some((_, v)) = self
            .verified_bundles
            .iter()
            .rev()
            .find(|(seen, _)| seen == b)
        {
            return Ok(v.clone());
        }
        let v = bundle::verify_bundle(b, self.config.max_prekeys_per_bundle)?;
        if self.verified_bundles.len() >= VERIFIED_BUNDLES_REMEMBERED {
            self.verified_bundles.pop_front();
        }
        self.verified_bundles.push_back((b.clone(), v.clone()));
        Ok(v)
    }

    /// Verifies and stores a bundle (from a message or a contact code).
    pub fn handle_bundle(&mut self, now: Time, b: &Bundle) -> Result<Vec<Persist>, SecurityError> {
        let verified = self.verify_bundle(b)?;
        self.check_installation_ids(&verified)?;
        Ok(self.store_bundle(now, &verified))
    }

    fn check_installation_ids(&self, v: &VerifiedBundle) -> Result<(), SecurityError> {
        if v.installations
            .keys()
            .any(|id| id.len() > self.config.max_installation_id_bytes || id == NO_INSTALLATION_ID)
        {
            return Err(SecurityError::LimitExceeded("installation id in bundle"));
        }
        Ok(())
    }

    fn store_bundle(&mut self, now: Time, v: &VerifiedBundle) -> Vec<Persist> {
        let identity = v.identity.serialize().to_vec();
        let own = identity == self.identity_bytes;
        let seen_ms = ns_to_ms(v.timestamp_ns).min(now.0);
        let mut out = Vec::new();
        for (inst, pk) in &v.installations {
            if own && *inst == self.installation_id {
                continue;
            }
            let key = (identity.clone(), inst.clone());
            let modern = pk.modern_pre_key.map(|k| k.to_vec()).unwrap_or_default();
            match self.installations.get(&key).cloned() {
                None => {
                    let rec = InstallationRecord {
                        identity: identity.clone(),
                        installation_id: inst.clone(),
                        signed_pre_key: pk.bundle_id.to_vec(),
                        version: pk.version,
                        protocol_version: pk.protocol_version,
                        modern_pre_key: modern,
                        last_activity_ms: seen_ms,
                        last_in_bundle_ms: seen_ms,
                        enabled: !own || self.config.auto_enable_own_installations,
                    };
                    self.installations.insert(key, rec.clone());
                    out.push(Persist::Installation(rec));
                }
                Some(mut rec) => {
                    let changed_key = rec.signed_pre_key != pk.bundle_id;
                    if pk.version > rec.version {
                        // Re-keying: sessions we opened to the old prekey are expired; the
                        // next send runs X3DH with the new one.
                        let old = rec.signed_pre_key.clone();
                        out.extend(self.expire_sessions(now, |s| {
                            s.identity == identity
                                && s.installation_id == *inst
                                && s.initiator
                                && s.bundle_id == old
                        }));
                        rec.signed_pre_key = pk.bundle_id.to_vec();
                        rec.version = pk.version;
                        rec.protocol_version = pk.protocol_version;
                        rec.modern_pre_key = modern;
                    } else if pk.version == rec.version && !changed_key {
                        rec.protocol_version = pk.protocol_version;
                        rec.modern_pre_key = modern;
                    }
                    // Lower version, or same version with another key: keep what we have,
                    // but the installation is still listed by its identity.
                    rec.last_in_bundle_ms = rec.last_in_bundle_ms.max(seen_ms);
                    if self.installations.get(&key) != Some(&rec) {
                        self.installations.insert(key, rec.clone());
                        out.push(Persist::Installation(rec));
                    }
                }
            }
        }
        out.extend(self.enforce_installation_caps(&identity));
        out
    }

    fn enforce_installation_caps(&mut self, identity: &[u8]) -> Vec<Persist> {
        let mut out = Vec::new();
        let mut mine: Vec<(u64, String)> = self
            .installations
            .values()
            .filter(|r| r.identity == identity)
            .map(|r| (r.last_activity_ms, r.installation_id.clone()))
            .collect();
        if mine.len() > self.config.max_installations_per_identity {
            mine.sort();
            let excess = mine.len() - self.config.max_installations_per_identity;
            for (_, inst) in mine.into_iter().take(excess) {
                out.extend(self.forget_installation(identity, &inst));
            }
        }
        let mut identities: BTreeMap<&[u8], u64> = BTreeMap::new();
        for r in self.installations.values() {
            if r.identity != self.identity_bytes {
                let e = identities.entry(r.identity.as_slice()).or_default();
                *e = (*e).max(r.last_activity_ms);
            }
        }
        if identities.len() > self.config.max_identities {
            let mut by_age: Vec<(u64, Vec<u8>)> = identities
                .into_iter()
                .map(|(i, t)| (t, i.to_vec()))
                .collect();
            by_age.sort();
            let excess = by_age.len() - self.config.max_identities;
            for (_, id) in by_age.into_iter().take(excess) {
                let insts: Vec<String> = self
                    .installations
                    .keys()
                    .filter(|(i, _)| *i == id)
                    .map(|(_, n)| n.clone())
                    .collect();
                for inst in insts {
                    out.extend(self.forget_installation(&id, &inst));
                }
            }
        }
        out
    }

    fn forget_installation(&mut self, identity: &[u8], inst: &str) -> Vec<Persist> {
        let mut out = Vec::new();
        self.installations
            .remove(&(identity.to_vec(), inst.to_owned()));
        out.push(Persist::InstallationDeleted {
            identity: identity.to_vec(),
            installation_id: inst.to_owned(),
        });
        let doomed: Vec<SessionKey> = self
            .sessions
            .keys()
            .filter(|k| k.identity == identity && k.installation_id == inst)
            .cloned()
            .collect();
        for k in doomed {
            self.sessions.remove(&k);
            out.push(Persist::SessionDeleted(k));
        }
        out
    }

    fn expire_sessions(
        &mut self,
        now: Time,
        pred: impl Fn(&SessionRecord) -> bool,
    ) -> Vec<Persist> {
        let mut out = Vec::new();
        for s in self.sessions.values_mut() {
            if s.is_active() && pred(s) {
                s.expired_at_ms = now.0.max(1);
                out.push(Persist::Session(Box::new(s.clone())));
            }
        }
        out
    }

    /// After a session for (identity, installation) was created: supersede sessions bound to
    /// our expired prekeys (peer re-keyed to our new bundle), then keep only the active session
    /// with the smallest tie-break (concurrent sessions).
    fn resolve_sessions(
        &mut self,
        now: Time,
        new: &SessionKey,
        new_on_current_prekey: bool,
    ) -> Vec<Persist> {
        let mut out = Vec::new();
        let same = |s: &SessionRecord| {
            s.identity == new.identity && s.installation_id == new.installation_id
        };
        if new_on_current_prekey {
            let expired_own: BTreeSet<Vec<u8>> = self
                .own_prekeys
                .values()
                .filter(|r| r.expired_at_ms != 0)
                .filter_map(|r| secret32(&r.secret).ok())
                .map(|k| public_key(&k).serialize().to_vec())
                .collect();
            out.extend(self.expire_sessions(now, |s| {
                same(s) && !s.initiator && expired_own.contains(&s.bundle_id)
            }));
        }
        let winner = self
            .sessions
            .values()
            .filter(|s| s.is_active() && same(s))
            .min_by(|a, b| a.tie_break.cmp(&b.tie_break))
            .map(SessionRecord::key);
        if let Some(w) = winner {
            out.extend(self.expire_sessions(now, |s| same(s) && s.key() != w));
        }
        // Bound the sessions kept for this installation.
        let mut all: Vec<(bool, u64, u64, SessionKey)> = self
            .sessions
            .values()
            .filter(|s| same(s))
            .map(|s| (s.is_active(), s.expired_at_ms, s.last_used_ms, s.key()))
            .collect();
        if all.len() > self.config.max_sessions_per_installation {
            // Expired first (oldest expiry first), then active by least recent use.
            all.sort();
            let excess = all.len() - self.config.max_sessions_per_installation;
            for (_, _, _, k) in all.into_iter().take(excess) {
                self.sessions.remove(&k);
                out.push(Persist::SessionDeleted(k));
            }
        }
        out
    }

    fn sending_session(&self, identity: &[u8], inst: &str) -> Option<SessionKey> {
        self.sessions
            .values()
            .filter(|s| {
                s.is_active()
                    && s.identity == identity
                    && s.installation_id == inst
                    && s.ratchet.as_ref().is_some_and(RatchetState::can_send)
            })
            .min_by(|a, b| a.tie_break.cmp(&b.tie_break))
            .map(SessionRecord::key)
    }

    fn encrypt_session(
        &mut self,
        now: Time,
        key: &SessionKey,
        plaintext: &[u8],
    ) -> Result<(Persist, DirectMessageProtocol), SecurityError> {
        let s = self
            .sessions
            .get_mut(key)
            .ok_or(SecurityError::SessionNotFound)?;
        let ratchet = s
            .ratchet
            .as_mut()
            .ok_or(SecurityError::CorruptState("session without ratchet"))?;
        let suite = ratchet.suite()?;
        let (header, ct) = ratchet.encrypt(plaintext, &[])?;
        s.last_used_ms = now.0;
        let x3dh_header = (s.initiator && s.unconfirmed).then(|| X3dhHeader {
            key: s.ephemeral.clone(),
            id: s.bundle_id.clone(),
            hush_x25519_key: s.x25519_ephemeral.clone(),
        });
        let dm = DirectMessageProtocol {
            x3dh_header,
            dr_header: Some(DrHeader {
                key: header.dh,
                n: header.n,
                pn: header.pn,
                id: s.bundle_id.clone(),
            }),
            dh_header: None,
            payload: ct,
            hush_suite: suite.to_wire(),
        };
        Ok((Persist::Session(Box::new(s.clone())), dm))
    }

    fn open_session(
        &mut self,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
        rec: &InstallationRecord,
    ) -> Result<(Vec<Persist>, SessionKey), SecurityError> {
        let their_identity = PublicKey::from_slice(&rec.identity)
            .map_err(|_| SecurityError::CorruptState("identity"))?;
        let their_spk = PublicKey::from_slice(&rec.signed_pre_key)
            .map_err(|_| SecurityError::CorruptState("signed prekey"))?;
        let ephemeral = random_secret_key(rng);
        let modern: Option<[u8; 32]> = if self.config.offer_modern_suite {
            rec.modern_pre_key.as_slice().try_into().ok()
        } else {
            None
        };
        let (sk, ratchet, x_eph_pub) = match modern {
            Some(their_x) => {
                let (x_eph, x_eph_pub) = Suite::Modern.generate_dh(rng);
                let sk = x3dh::modern_x3dh_active(
                    &self.identity,
                    &ephemeral,
                    &x_eph,
                    &their_identity,
                    &their_spk,
                    &their_x,
                )?;
                let r = RatchetState::new_initiator(Suite::Modern, &sk, &their_x, rng)?;
                (sk, r, x_eph_pub)
            }
            None => {
                let sk = x3dh::x3dh_active(&self.identity, &ephemeral, &their_identity, &their_spk);
                let r = RatchetState::new_initiator(Suite::Status, &sk, &rec.signed_pre_key, rng)?;
                (sk, r, Vec::new())
            }
        };
        let session = SessionRecord {
            identity: rec.identity.clone(),
            installation_id: rec.installation_id.clone(),
            bundle_id: rec.signed_pre_key.clone(),
            ephemeral: public_key(&ephemeral).serialize().to_vec(),
            ratchet: Some(ratchet),
            initiator: true,
            unconfirmed: true,
            x25519_ephemeral: x_eph_pub,
            tie_break: keccak256(&sk).to_vec(),
            created_at_ms: now.0,
            last_used_ms: now.0,
            expired_at_ms: 0,
        };
        let key = session.key();
        self.sessions.insert(key.clone(), session);
        let persist = self.resolve_sessions(now, &key, false);
        Ok((persist, key))
    }

    /// Encrypts `plaintext` for every active installation of `recipient` and our own other
    /// devices. `recipient_bundles` (may be empty) are verified and stored first. Returns the
    /// Persist records (commit them first) and the message to send.
    pub fn encrypt_for(
        &mut self,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
        recipient: &PublicKey,
        recipient_bundles: &[Bundle],
        plaintext: &[u8],
    ) -> Result<(Vec<Persist>, ProtocolMessage), SecurityError> {
        let mut verified = Vec::with_capacity(recipient_bundles.len());
        for b in recipient_bundles {
            let v = self.verify_bundle(b)?;
            self.check_installation_ids(&v)?;
            verified.push(v);
        }
        let mut persist = Vec::new();
        for v in &verified {
            persist.extend(self.store_bundle(now, v));
        }
        let (p, own_bundle) = self.own_bundle(now, rng)?;
        persist.extend(p);

        let theirs = self.active_installations(now, recipient);
        let mut msg = ProtocolMessage {
            installation_id: self.installation_id.clone(),
            bundles: vec![own_bundle],
            ..Default::default()
        };
        if theirs.is_empty() {
            let (key, payload) = x3dh::dh_encrypt(rng, recipient, plaintext);
            msg.direct_message.insert(
                NO_INSTALLATION_ID.to_owned(),
                DirectMessageProtocol {
                    dh_header: Some(DhHeader { key: key.to_vec() }),
                    payload,
                    ..Default::default()
                },
            );
            return Ok((persist, msg));
        }
        let mut targets: BTreeMap<InstallationKey, InstallationRecord> = BTreeMap::new();
        for r in theirs
            .into_iter()
            .chain(self.active_installations(now, &self.identity_public))
        {
            targets.insert((r.identity.clone(), r.installation_id.clone()), r);
        }
        for ((identity, inst), rec) in targets {
            let key = match self.sending_session(&identity, &inst) {
                Some(k) => k,
                None => {
                    let (p, k) = self.open_session(now, rng, &rec)?;
                    persist.extend(p);
                    k
                }
            };
            let (p, dm) = self.encrypt_session(now, &key, plaintext)?;
            persist.push(p);
            msg.direct_message.insert(inst, dm);
        }
        Ok((persist, msg))
    }

    /// A bundle advertisement for `to`: a DH-only message with an empty payload carrying our
    /// bundle (status-go's answer to a message for an unknown device).
    pub fn bundle_advertisement(
        &mut self,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
        to: &PublicKey,
    ) -> Result<(Vec<Persist>, ProtocolMessage), SecurityError> {
        let (persist, b) = self.own_bundle(now, rng)?;
        let (key, payload) = x3dh::dh_encrypt(rng, to, &[]);
        let mut msg = ProtocolMessage {
            installation_id: self.installation_id.clone(),
            bundles: vec![b],
            ..Default::default()
        };
        msg.direct_message.insert(
            NO_INSTALLATION_ID.to_owned(),
            DirectMessageProtocol {
                dh_header: Some(DhHeader { key: key.to_vec() }),
                payload,
                ..Default::default()
            },
        );
        Ok((persist, msg))
    }

    /// Reads a ProtocolMessage from `sender` (the key recovered from the transport signature).
    /// Returns the Persist records to commit — also when the result is an error, since
    /// bundles accepted before a decryption failure are kept — and the outcome.
    pub fn decrypt(
        &mut self,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
        sender: &PublicKey,
        msg: &ProtocolMessage,
    ) -> (Vec<Persist>, Result<Received, SecurityError>) {
        let mut persist = Vec::new();
        let result = self.decrypt_inner(now, rng, sender, msg, &mut persist);
        self.stats.record(&result);
        (persist, result)
    }

    /// Counters: what each [`Self::decrypt`] call made of its message, refusals by reason.
    pub fn stats(&self) -> &super::Stats {
        &self.stats
    }

    fn decrypt_inner(
        &mut self,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
        sender: &PublicKey,
        msg: &ProtocolMessage,
        persist: &mut Vec<Persist>,
    ) -> Result<Received, SecurityError> {
        let bundles: Vec<&Bundle> = msg.bundle.iter().chain(msg.bundles.iter()).collect();
        if bundles.len() > self.config.max_bundles_per_message {
            return Err(SecurityError::LimitExceeded("bundles per message"));
        }
        if msg.installation_id.len() > self.config.max_installation_id_bytes {
            return Err(SecurityError::LimitExceeded("installation id"));
        }
        // Verify all, then store: a bad bundle rejects the whole message (status-go).
        let mut verified = Vec::with_capacity(bundles.len());
        for b in bundles {
            let v = self.verify_bundle(b)?;
            self.check_installation_ids(&v)?;
            verified.push(v);
        }
        for v in &verified {
            persist.extend(self.store_bundle(now, v));
        }
        let sender_bytes = sender.serialize().to_vec();
        let from_self = sender_bytes == self.identity_bytes;
        let inst_key = (sender_bytes.clone(), msg.installation_id.clone());
        if let Some(rec) = self.installations.get_mut(&inst_key) {
            if rec.last_activity_ms < now.0 {
                rec.last_activity_ms = now.0;
                persist.push(Persist::Installation(rec.clone()));
            }
        }

        if !msg.public_message.is_empty() {
            return Ok(Received::Public(msg.public_message.clone()));
        }
        let dm = match msg
            .direct_message
            .get(&self.installation_id)
            .or_else(|| msg.direct_message.get(NO_INSTALLATION_ID))
        {
            Some(dm) => dm,
            None if msg.direct_message.is_empty() => return Ok(Received::BundlesOnly),
            None if from_self => return Err(SecurityError::NotPairedDevice),
            None => {
                let due = self
                    .advertised
                    .get(&sender_bytes)
                    .is_none_or(|last| now.millis_since(*last) >= self.config.advertise_cooldown.0);
                if !due {
                    return Ok(Received::NotForThisDevice { reply: None });
                }
                self.advertised.insert(sender_bytes, now);
                let (p, reply) = self.bundle_advertisement(now, rng, sender)?;
                persist.extend(p);
                return Ok(Received::NotForThisDevice { reply: Some(reply) });
            }
        };

        let (plaintext, suite) = if let Some(dr) = &dm.dr_header {
            let suite = Suite::from_wire(dm.hush_suite)
                .ok_or(SecurityError::UnsupportedSuite(dm.hush_suite))?;
            if suite == Suite::Modern && !self.config.offer_modern_suite {
                return Err(SecurityError::UnsupportedSuite(dm.hush_suite));
            }
            let pt = self.decrypt_dr(
                now,
                rng,
                sender,
                &msg.installation_id,
                dm,
                dr,
                suite,
                persist,
            )?;
            (pt, Some(suite))
        } else if let Some(dh) = &dm.dh_header {
            (
                x3dh::dh_decrypt(&self.identity, &dh.key, &dm.payload)?,
                None,
            )
        } else {
            return Err(SecurityError::NoKeySpecified);
        };
        let negotiated_secret = self
            .installations
            .get(&inst_key)
            .filter(|r| r.protocol_version >= 1)
            .map(|_| ecdh_x(&self.identity, sender));
        Ok(Received::Direct(Decrypted {
            plaintext,
            installation_id: msg.installation_id.clone(),
            forward_secrecy: suite.is_some(),
            suite,
            negotiated_secret,
        }))
    }

    /// Derives a responder session from an X3DH header (not yet stored).
    fn responder_session(
        &self,
        now: Time,
        sender: &PublicKey,
        installation_id: &str,
        x3dh_header: &X3dhHeader,
        suite: Suite,
    ) -> Result<(SessionRecord, bool), SecurityError> {
        let prekey = self
            .own_prekeys
            .values()
            .find(|r| {
                secret32(&r.secret)
                    .is_ok_and(|k| public_key(&k).serialize().as_slice() == x3dh_header.id)
            })
            .ok_or(SecurityError::SessionNotFound)?;
        let spk = secret32(&prekey.secret)?;
        let their_eph =
            PublicKey::from_slice(&x3dh_header.key).map_err(|_| SecurityError::InvalidKey)?;
        let (sk, ratchet) = match suite {
            Suite::Status => {
                let sk = x3dh::x3dh_passive(&self.identity, &spk, sender, &their_eph);
                (
                    sk,
                    RatchetState::new_responder(Suite::Status, &sk, &spk.secret_bytes())?,
                )
            }
            Suite::Modern => {
                let x: [u8; 32] = prekey
                    .x25519_secret
                    .as_slice()
                    .try_into()
                    .map_err(|_| SecurityError::SessionNotFound)?;
                let sk = x3dh::modern_x3dh_passive(
                    &self.identity,
                    &spk,
                    &x,
                    sender,
                    &their_eph,
                    &x3dh_header.hush_x25519_key,
                )?;
                (sk, RatchetState::new_responder(Suite::Modern, &sk, &x)?)
            }
        };
        Ok((
            SessionRecord {
                identity: sender.serialize().to_vec(),
                installation_id: installation_id.to_owned(),
                bundle_id: x3dh_header.id.clone(),
                ephemeral: x3dh_header.key.clone(),
                ratchet: Some(ratchet),
                initiator: false,
                unconfirmed: false,
                x25519_ephemeral: Vec::new(),
                tie_break: keccak256(&sk).to_vec(),
                created_at_ms: now.0,
                last_used_ms: now.0,
                expired_at_ms: 0,
            },
            prekey.expired_at_ms == 0,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn decrypt_dr(
        &mut self,
        now: Time,
        rng: &mut (impl RngCore + CryptoRng),
        sender: &PublicKey,
        installation_id: &str,
        dm: &DirectMessageProtocol,
        dr: &DrHeader,
        suite: Suite,
        persist: &mut Vec<Persist>,
    ) -> Result<Vec<u8>, SecurityError> {
        let sender_bytes = sender.serialize().to_vec();
        let header = Header {
            dh: dr.key.clone(),
            n: dr.n,
            pn: dr.pn,
        };
        let limits = self.config.ratchet_limits();
        // Candidates: the session named by the X3DH header, else every session with this
        // installation and bundle id (most recently used first).
        let mut fresh: Option<(SessionRecord, bool)> = None;
        let mut candidates: Vec<SessionKey> = Vec::new();
        if let Some(x) = &dm.x3dh_header {
            if x.id != dr.id {
                return Err(SecurityError::SessionNotFound);
            }
            let key = SessionKey {
                identity: sender_bytes.clone(),
                installation_id: installation_id.to_owned(),
                bundle_id: x.id.clone(),
                ephemeral: x.key.clone(),
            };
            if self.sessions.contains_key(&key) {
                candidates.push(key);
            } else {
                fresh = Some(self.responder_session(now, sender, installation_id, x, suite)?);
            }
        } else {
            let mut found: Vec<&SessionRecord> = self
                .sessions
                .values()
                .filter(|s| {
                    s.identity == sender_bytes
                        && s.installation_id == installation_id
                        && s.bundle_id == dr.id
                })
                .collect();
            found.sort_by_key(|s| std::cmp::Reverse(s.last_used_ms));
            candidates = found.into_iter().map(SessionRecord::key).collect();
            if candidates.is_empty() {
                return Err(SecurityError::SessionNotFound);
            }
        }

        if let Some((mut session, on_current)) = fresh {
            let ratchet = session
                .ratchet
                .as_mut()
                .ok_or(SecurityError::CorruptState("session without ratchet"))?;
            let pt = ratchet
                .decrypt(&limits, &header, &dm.payload, &[], rng)
                .map_err(|e| SecurityError::from(e).flatten())?;
            let key = session.key();
            self.sessions.insert(key.clone(), session.clone());
            persist.push(Persist::Session(Box::new(session)));
            persist.extend(self.resolve_sessions(now, &key, on_current));
            return Ok(pt);
        }

        let mut first_error = None;
        for key in candidates {
            let Some(s) = self.sessions.get_mut(&key) else {
                continue;
            };
            let Some(ratchet) = s.ratchet.as_mut() else {
                continue;
            };
            if ratchet.suite().ok() != Some(suite) {
                first_error.get_or_insert(SecurityError::UnsupportedSuite(suite.to_wire()));
                continue;
            }
            match ratchet.decrypt(&limits, &header, &dm.payload, &[], rng) {
                Ok(pt) => {
                    s.last_used_ms = now.0;
                    // Any message from the peer in this session confirms our X3DH.
                    s.unconfirmed = false;
                    persist.push(Persist::Session(Box::new(s.clone())));
                    return Ok(pt);
                }
                Err(e) => {
                    first_error.get_or_insert(SecurityError::from(e).flatten());
                }
            }
        }
        Err(first_error.unwrap_or(SecurityError::SessionNotFound))
    }

    /// Next deadline: the earliest deletion of an expired session or prekey.
    pub fn poll_timeout(&self) -> Option<Time> {
        let keep = self.config.expired_retention.0;
        self.sessions
            .values()
            .map(|s| s.expired_at_ms)
            .chain(self.own_prekeys.values().map(|r| r.expired_at_ms))
            .filter(|t| *t != 0)
            .map(|t| Time(t.saturating_add(keep)))
            .min()
    }

    /// Deletes sessions and own prekeys expired more than `expired_retention` ago, and forgets
    /// advertisement rate-limit entries past their cooldown. Idempotent.
    pub fn handle_timeout(&mut self, now: Time) -> Vec<Persist> {
        let keep = self.config.expired_retention.0;
        let gone = |t: u64| t != 0 && now.millis_since(Time(t)) >= keep;
        let mut out = Vec::new();
        let doomed: Vec<SessionKey> = self
            .sessions
            .values()
            .filter(|s| gone(s.expired_at_ms))
            .map(SessionRecord::key)
            .collect();
        for k in doomed {
            self.sessions.remove(&k);
            out.push(Persist::SessionDeleted(k));
        }
        let old: Vec<u32> = self
            .own_prekeys
            .values()
            .filter(|r| gone(r.expired_at_ms))
            .map(|r| r.version)
            .collect();
        for version in old {
            self.own_prekeys.remove(&version);
            out.push(Persist::OwnPreKeyDeleted { version });
        }
        let cooldown = self.config.advertise_cooldown.0;
        self.advertised
            .retain(|_, t| now.millis_since(*t) < cooldown);
        out
    }
}
