//! `hush node --script FILE`: timed commands, for a node that runs unattended (under Shadow,
//! in CI, on many hosts) with no one typing on its stdin.
//!
//! Contract: a script is UTF-8 text, one entry per line: `AT_MS COMMAND`, where `AT_MS` is
//! milliseconds since the node started listening (its enode line) and `COMMAND` is a line of
//! the stdin command language, checked by the same parser ([`crate::commands::parse_line`]).
//! Blank lines and lines whose first non-blank character is `#` are ignored (a `#` inside a
//! command is text). Times must not decrease from one entry to the next: a script is a
//! timeline read top to bottom, and an entry out of order is far more likely a typo than a
//! wish, so it is an error rather than silently sorted. [`load_script`] reads and checks the
//! whole file before the node starts; any problem is one [`ScriptError`] naming `FILE:LINE`
//! and the reason. Limits: [`MAX_SCRIPT_BYTES`], [`MAX_SCRIPT_COMMANDS`], [`MAX_SCRIPT_AT_MS`].
//!
//! At run time [`feed_script`] hands each command, at its time, to the same queue stdin lines
//! go to, so scripted and typed commands run the same way and may be mixed. A command that is
//! late (the queue was full: back-pressure) goes as soon as it can; the ones after it keep
//! their own times. When the script ends the node keeps running, like after EOF on stdin,
//! until `/quit` (in the script or on stdin) or SIGINT/SIGTERM.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_io::Timer;
use smol::channel::Sender;
use thiserror::Error;

use crate::commands::{echo_input, parse_line};
use crate::driver::StdinLine;

/// Largest script file read, bytes: 16 MiB is a few hundred thousand commands, hours of
/// traffic for one simulated node, and small enough to hold in memory at start.
pub const MAX_SCRIPT_BYTES: u64 = 16 * 1024 * 1024;

/// Most commands (non-blank, non-comment lines) in one script.
pub const MAX_SCRIPT_COMMANDS: usize = 500_000;

/// Latest `AT_MS` accepted: 30 days. Later times are almost surely a unit mistake (seconds
/// since the epoch, microseconds), and keeping them bounded keeps the deadline arithmetic
/// far from overflow.
pub const MAX_SCRIPT_AT_MS: u64 = 30 * 24 * 3600 * 1000;

/// One command of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptEntry {
    /// 1-based line number in the file.
    pub line: usize,
    /// When to run it, ms after the node started listening.
    pub at_ms: u64,
    /// The command, exactly as it would be typed on stdin.
    pub command: String,
}

/// A checked script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// The file it came from.
    pub path: PathBuf,
    /// Its commands, in time order.
    pub entries: Vec<ScriptEntry>,
}

/// Why a script was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ScriptError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_SCRIPT_BYTES`].
    #[error("{path}: larger than {MAX_SCRIPT_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file is not UTF-8.
    #[error("{path}: not UTF-8 text")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// More than [`MAX_SCRIPT_COMMANDS`] commands.
    #[error("{path}:{line}: more than {MAX_SCRIPT_COMMANDS} commands")]
    TooManyCommands {
        /// The file.
        path: PathBuf,
        /// The first line over the limit.
        line: usize,
    },
    /// One line is malformed.
    #[error("{path}:{line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Reads and checks a script file (see the module contract).
pub fn load_script(path: &Path) -> Result<Script, ScriptError> {
    use std::io::Read as _;
    let io = |source| ScriptError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    // One byte more than allowed tells "too large" from "exactly the limit".
    file.take(MAX_SCRIPT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_SCRIPT_BYTES {
        return Err(ScriptError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| ScriptError::NotUtf8 {
        path: path.to_path_buf(),
    })?;
    parse_script(&text, path)
}

/// Checks a script's text; `path` only names it in errors.
pub fn parse_script(text: &str, path: &Path) -> Result<Script, ScriptError> {
    let mut entries: Vec<ScriptEntry> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let bad = |reason: String| ScriptError::Line {
            path: path.to_path_buf(),
            line,
            reason,
        };
        if entries.len() == MAX_SCRIPT_COMMANDS {
            return Err(ScriptError::TooManyCommands {
                path: path.to_path_buf(),
                line,
            });
        }
        let (time, command) = match trimmed.split_once(char::is_whitespace) {
            Some((t, c)) => (t, c.trim_start()),
            None => (trimmed, ""),
        };
        let at_ms: u64 = time.parse().map_err(|_| {
            bad(format!(
                "expected AT_MS (milliseconds since start, a whole number) then a command, got {}",
                echo_input(time)
            ))
        })?;
        if at_ms > MAX_SCRIPT_AT_MS {
            return Err(bad(format!(
                "AT_MS {at_ms} is later than {MAX_SCRIPT_AT_MS} ms (30 days)"
            )));
        }
        if command.is_empty() {
            return Err(bad("missing the command after AT_MS".into()));
        }
        match parse_line(command) {
            Ok(Some(_)) => {}
            Ok(None) => return Err(bad("missing the command after AT_MS".into())),
            Err(e) => return Err(bad(e.to_string())),
        }
        if let Some(prev) = entries.last() {
            if at_ms < prev.at_ms {
                return Err(bad(format!(
                    "AT_MS {at_ms} is earlier than line {}'s {} (times must not decrease)",
                    prev.line, prev.at_ms
                )));
            }
        }
        entries.push(ScriptEntry {
            line,
            at_ms,
            command: command.to_string(),
        });
    }
    Ok(Script {
        path: path.to_path_buf(),
        entries,
    })
}

/// A clap parser for `--script FILE`: reads and checks the whole file when the arguments are
/// read, so a bad script is a usage error (exit 2) before the node starts.
pub fn parse_script_arg(s: &str) -> Result<Script, String> {
    load_script(Path::new(s)).map_err(|e| e.to_string())
}

/// Hands each command of `script` to `lines` at `start + at_ms` (see the module contract),
/// then says on stderr that the script is done. Returns early if `lines` is closed.
pub async fn feed_script(script: Script, start: Instant, lines: Sender<StdinLine>) {
    let count = script.entries.len();
    for entry in script.entries {
        // `at_ms` is at most MAX_SCRIPT_AT_MS: no overflow.
        Timer::at(start + Duration::from_millis(entry.at_ms)).await;
        if lines.send(StdinLine::Text(entry.command)).await.is_err() {
            return;
        }
    }
    eprintln!(
        "hush: script {} done ({count} commands handed to the node); still running until /quit or a signal",
        script.path.display()
    );
}

#[cfg(test)]
mod tests;
