//! hush-core: the 2019 Status protocol stack as pure state machines.
//!
//! Contract (see DESIGN.md, "The state-machine contract"): nothing in this crate reads a clock,
//! an OS random source, a socket, a file or an environment variable. Time arrives as [`Time`]
//! (milliseconds since the Unix epoch); randomness as a 32-byte seed for a ChaCha20 RNG owned by
//! each machine. Every machine has the same shape: `handle_*(now, input)` mutates state,
//! `poll_action()` drains one output at a time (drain until `None` after every `handle_*`),
//! `poll_timeout()` names the next deadline and `handle_timeout(now)` is idempotent.
//!
//! Layers, bottom up: [`rlp`] (codec) → `p2p` (RLPx + devp2p) → `whisper` → `chat`; `node`
//! wires them into the one machine that both drivers run.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chat;
pub mod ecies;
pub mod keccak;
pub mod mvds;
pub mod node;
pub mod p2p;
pub mod rlp;
pub mod rng;
pub mod security;
pub mod stats;
pub mod time;
pub mod whisper;

pub use time::{Duration, Time};
