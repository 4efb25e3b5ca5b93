//! Entry points of every hush-core fuzz target, shared by the libFuzzer binaries (nightly,
//! `fuzz_targets/<name>.rs`) and the stable test harness (`tests/targets.rs`: every seed plus
//! random inputs). Contract: an entry point never panics on any input; the structured modes
//! build a valid input from the fuzz bytes (through the real encoder, keys fixed, randomness
//! seeded) so the fuzzer reaches past MACs, signatures and decryption, and some check an
//! oracle (a valid input decodes to what was encoded).
//!
//! [`TARGETS`] lists them all by name; [`seeds::seeds`] gives each target its seed inputs
//! (from the repo's test vectors and from valid encodings).

pub mod chat;
pub mod mvds;
pub mod p2p;
pub mod security;
pub mod seeds;
pub mod whisper;

use hush_core::Time;

/// Clock of every machine under test (2019-10-02 in ms).
pub const T0: Time = Time(1_570_000_000_000);

/// A fuzz target: never panics on any bytes.
pub type Target = fn(&[u8]);

/// Every target, by the name of its libFuzzer binary.
pub const TARGETS: &[(&str, Target)] = &[
    ("handshake", p2p::handshake),
    ("frame", p2p::frame),
    ("session", p2p::session),
    ("node", p2p::node),
    ("rlp", p2p::rlp),
    ("ecies", p2p::ecies),
    ("enode", p2p::enode),
    ("envelope", whisper::envelope),
    ("messages", whisper::messages),
    ("whisper_packets", whisper::packets),
    ("plaintext", whisper::plaintext),
    ("whisper", whisper::whisper),
    ("whisper_mailserver", whisper::whisper_mailserver),
    ("mailserver_codecs", whisper::mailserver_codecs),
    ("security_proto", security::security_proto),
    ("security_decrypt", security::security_decrypt),
    ("mvds_payload", mvds::mvds_payload),
    ("mvds_persist", mvds::mvds_persist),
    ("mvds_sync", mvds::mvds_sync),
    ("chat_app", chat::chat_app),
    ("chat_record", chat::chat_record),
    ("group_fold", chat::group_fold),
    ("public_chats", chat::public_chats),
    ("conversations", chat::conversations),
    ("record_snapshot", chat::record_snapshot),
];

/// The target named `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Stable runner of one target binary (built without the `libfuzzer` feature): each path
/// argument (a file, or a directory of files such as a corpus) is run through `target`; with
/// no argument, stdin is one input.
pub fn run_inputs(target: Target) {
    use std::io::Read;
    let paths: Vec<std::path::PathBuf> = std::env::args_os().skip(1).map(Into::into).collect();
    if paths.is_empty() {
        let mut data = Vec::new();
        std::io::stdin().read_to_end(&mut data).expect("read stdin");
        target(&data);
        return;
    }
    for path in paths {
        let files: Vec<std::path::PathBuf> = if path.is_dir() {
            let mut v: Vec<_> = std::fs::read_dir(&path)
                .expect("read dir")
                .map(|e| e.expect("dir entry").path())
                .collect();
            v.sort();
            v
        } else {
            vec![path]
        };
        for file in files {
            let data = std::fs::read(&file).expect("read input file");
            target(&data);
            println!("ok {}", file.display());
        }
    }
}

/// Splits `data` into messages `(code, payload)`: one code byte, a 2-byte big-endian length
/// (cut to what is left), the payload; a trailing fragment is dropped.
pub fn split_messages(mut data: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while let [code, l1, l2, tail @ ..] = data {
        let len = usize::from(u16::from_be_bytes([*l1, *l2])).min(tail.len());
        let (payload, next) = tail.split_at(len);
        out.push((*code, payload));
        data = next;
    }
    out
}

/// Encodes messages in the form [`split_messages`] reads (for seeds and tests).
pub fn join_messages(messages: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (code, payload) in messages {
        let len = u16::try_from(payload.len()).expect("seed message under 64 KiB");
        out.push(*code);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(payload);
    }
    out
}
