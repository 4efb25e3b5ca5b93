//! hush-tests: shared helpers for the integration tests.
//!
//! Contract: [`hush_bin`] finds the `hush` binary that `cargo test --workspace` built (hush-tests
//! is another package, so `CARGO_BIN_EXE_hush` is not available here); [`NodeProcess`] runs one
//! `hush node` with piped stdio, lets a test wait (with a deadline) for lines on its stdout or
//! stderr, and kills the process and removes its data directory when dropped.

pub mod rpc;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Environment variable that overrides where the `hush` binary is.
pub const HUSH_BIN_ENV: &str = "HUSH_BIN";

/// The `hush` binary: `$HUSH_BIN` if set, else `hush` in the directory above this test
/// executable (`target/<profile>/deps/two_nodes-… → target/<profile>/hush`).
///
/// # Panics
/// If the binary is not there, with instructions.
pub fn hush_bin() -> PathBuf {
    if let Some(p) = std::env::var_os(HUSH_BIN_ENV) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable is in target/<profile>/deps");
    let bin = profile_dir.join(format!("hush{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "hush binary not found at {}. Run the tests with `cargo test --workspace` (which builds it \
         for hush-drivers' integration tests), or `cargo build --bin hush` first, or set {HUSH_BIN_ENV}.",
        bin.display()
    );
    bin
}

/// A fresh directory path (not created) under the system temp dir, unique per process and call.
pub fn unique_temp_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("hush-{tag}-{}-{nanos}-{n}", std::process::id()))
}

/// How long to let a dead process's remaining output arrive before reporting it.
const EXIT_GRACE_MS: u64 = 300;

/// One running `hush node`, killed (and its data dir removed) on drop.
pub struct NodeProcess {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
    /// The node's data directory.
    pub data_dir: PathBuf,
}

impl NodeProcess {
    /// Starts `hush node --data-dir <fresh temp dir> <args>`.
    pub fn spawn(name: &str, args: &[&str]) -> NodeProcess {
        Self::spawn_in(name, unique_temp_dir(&format!("e2e-{name}")), args)
    }

    /// Starts `hush node --data-dir <data_dir> <args>` (e.g. a restart on a kept directory);
    /// the directory is removed when the returned process is dropped.
    pub fn spawn_in(name: &str, data_dir: PathBuf, args: &[&str]) -> NodeProcess {
        Self::spawn_with(name, data_dir, &[], args, true)
    }

    /// Starts `WRAPPER... hush node --data-dir <data_dir> <args>` (e.g. `ip netns exec NS`,
    /// which execs the node in place, so killing this process kills the node). With
    /// `stdin_piped` false the node's stdin is `/dev/null` (a node that runs unattended) and
    /// [`NodeProcess::send_line`] panics.
    pub fn spawn_with(
        name: &str,
        data_dir: PathBuf,
        wrapper: &[&str],
        args: &[&str],
        stdin_piped: bool,
    ) -> NodeProcess {
        Self::spawn_full(name, data_dir, wrapper, args, stdin_piped, &[])
    }

    /// [`NodeProcess::spawn_in`] with extra environment variables (e.g. a test-only crash
    /// injection).
    pub fn spawn_in_env(
        name: &str,
        data_dir: PathBuf,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> NodeProcess {
        Self::spawn_full(name, data_dir, &[], args, true, env)
    }

    fn spawn_full(
        name: &str,
        data_dir: PathBuf,
        wrapper: &[&str],
        args: &[&str],
        stdin_piped: bool,
        env: &[(&str, &str)],
    ) -> NodeProcess {
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(hush_bin());
                c
            }
            None => Command::new(hush_bin()),
        };
        let mut child = cmd
            .arg("node")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .stdin(if stdin_piped {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", hush_bin().display()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stdout = forward(
            child.stdout.take().expect("piped"),
            format!("{name} out"),
            log.clone(),
        );
        let stderr = forward(
            child.stderr.take().expect("piped"),
            format!("{name} err"),
            log.clone(),
        );
        let stdin = child.stdin.take();
        NodeProcess {
            name: name.to_string(),
            child,
            stdin,
            stdout,
            stderr,
            log,
            data_dir,
        }
    }

    /// Writes one command line to the node's stdin.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: writing stdin: {e}\n{}", self.name, self.transcript()));
    }

    /// Writes `text` (any number of whole lines) to the node's stdin in one go, as a pipe
    /// would; blocks while the node does not read (back-pressure).
    pub fn send_text(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(text.as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: writing stdin: {e}\n{}", self.name, self.transcript()));
    }

    /// Sends a signal (`INT`, `TERM`, ...) to the node with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("running kill: {e}"));
        assert!(
            status.success(),
            "kill -{name} {}: {status}",
            self.child.id()
        );
    }

    /// Waits (polling, until `deadline`) for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, deadline: Instant) -> Option<std::process::ExitStatus> {
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The first (next) stdout line satisfying `pred`, or `None` if none came by `deadline`
    /// (or the stream closed).
    pub fn try_wait_stdout(
        &self,
        deadline: Instant,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) if pred(&line) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// The next stdout line, waiting until `deadline`.
    pub fn next_stdout_line(&self, deadline: Instant) -> String {
        self.wait(&self.stdout, "stdout", deadline, |_| true)
    }

    /// The first (next) stdout line satisfying `pred`, waiting until `deadline`.
    pub fn wait_stdout(&self, deadline: Instant, pred: impl Fn(&str) -> bool) -> String {
        self.wait(&self.stdout, "stdout", deadline, pred)
    }

    /// The first (next) stderr line satisfying `pred`, waiting until `deadline`.
    pub fn wait_stderr(&self, deadline: Instant, pred: impl Fn(&str) -> bool) -> String {
        self.wait(&self.stderr, "stderr", deadline, pred)
    }

    fn wait(
        &self,
        rx: &Receiver<String>,
        what: &str,
        deadline: Instant,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: timed out waiting on {what}\n{}",
                        self.name,
                        self.transcript()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Let the other stream's reader catch the exit message (a panic, an error).
                    std::thread::sleep(std::time::Duration::from_millis(EXIT_GRACE_MS));
                    panic!(
                        "{}: {what} closed (process exited?)\n{}",
                        self.name,
                        self.transcript()
                    )
                }
            }
        }
    }

    /// Everything the process printed so far, tagged by stream, for failure messages.
    pub fn transcript(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

fn forward(
    stream: impl std::io::Read + Send + 'static,
    tag: String,
    log: Arc<Mutex<Vec<String>>>,
) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut l) = log.lock() {
                l.push(format!("[{tag}] {line}"));
            }
            if tx.send(line).is_err() {
                // Nobody waits on this stream any more; keep draining so the child never blocks.
                continue;
            }
        }
    });
    rx
}

impl NodeProcess {
    /// The process id (to signal it, or to measure its memory).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process but keeps its data directory, returning its path (to restart on it).
    pub fn stop_keep_data(mut self) -> PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::take(&mut self.data_dir)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.data_dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// Helpers over a node's output, shared by the end-to-end tests.
impl NodeProcess {
    /// The enode URL the node prints as its first stdout line.
    pub fn enode(&self, deadline: Instant) -> hush_core::p2p::enode::Enode {
        let first = self.next_stdout_line(deadline);
        first
            .parse()
            .unwrap_or_else(|e| panic!("first stdout line {first:?}: {e}\n{}", self.transcript()))
    }

    /// Waits for the stderr line saying the peer with this key completed its handshakes.
    pub fn wait_connected(&self, deadline: Instant, peer: &hush_core::p2p::enode::Enode) {
        let key = hex::encode(peer.public_key);
        self.wait_stderr(deadline, |l| {
            l.starts_with(PEER_CONNECTED_PREFIX) && l.contains(&key)
        });
    }
}

/// Prefix of `hush node`'s stderr line for a completed peer handshake (kept equal to
/// `hush_drivers::output::PEER_CONNECTED_PREFIX`, which a test checks).
pub const PEER_CONNECTED_PREFIX: &str = "hush: peer connected";

/// The `0x04…` public key (what `/dm` takes) of an enode.
pub fn key_of(enode: &hush_core::p2p::enode::Enode) -> String {
    format!("0x04{}", hex::encode(enode.public_key))
}

/// 1:1 texts printed as received messages (not command replies) in a transcript's
/// `[name out]` lines, with how many times each was printed.
pub fn dm_counts(transcript: &str, name: &str) -> std::collections::BTreeMap<String, usize> {
    let tag = format!("[{name} out] ");
    let mut counts = std::collections::BTreeMap::new();
    for line in transcript.lines() {
        let Some(json) = line.strip_prefix(&tag) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
            continue;
        };
        if v["kind"] == "dm" && v.get("reply").is_none() {
            if let Some(text) = v["text"].as_str() {
                *counts.entry(text.to_string()).or_insert(0) += 1;
            }
        }
    }
    counts
}
