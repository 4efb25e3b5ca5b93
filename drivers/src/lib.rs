//! hush-drivers: the IO side of hush.
//!
//! Contract: everything that touches the OS lives here (sockets, the clock, OS randomness,
//! files, stdin/stdout); the protocol lives in `hush-core`. The [`driver`] moves bytes, time and
//! commands between the OS and `hush_core::node::Node` and never branches on protocol state.
//!
//! Modules: [`archive`] (SQLite mailserver archive), [`bench`] (`hush bench e2e`), [`cli`] (`hush node` arguments and start-up), [`driver`] (the smol TCP loop),
//! [`nodekey`] (the geth-format key file), [`commands`] (stdin command language), [`output`]
//! (stdout/stderr/persisted line formats), [`sqlcipher`] (the SQLite files encrypted at rest),
//! [`script`] (`--script`: timed commands), [`rpc`] (the JSON-RPC server: `--http`, `--ws`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod archive;
pub mod bench;
pub mod cli;
pub mod commands;
pub mod driver;
pub mod identity;
pub mod keystore;
pub mod nodekey;
pub mod output;
pub mod rpc;
pub mod script;
pub mod sqlcipher;
pub mod store;

#[cfg(test)]
mod test_util;
