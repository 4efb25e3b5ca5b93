//! The stdin command language of `hush node`.
//!
//! Contract: one command per line. [`parse_line`] maps a line to a [`StdinCommand`] (a node
//! [`Command`] or `/quit`), to `Ok(None)` for a blank line, or to a [`CommandError`] saying what
//! is wrong; it never panics. Commands:
//!
//! ```text
//! /join NAME          start receiving public chat NAME
//! /leave NAME         stop receiving it
//! /send NAME TEXT...  post TEXT (the rest of the line, inner spaces kept) to NAME
//! /request NAME [SINCE_UNIX_SECS]
//!                     ask the trusted mailserver (--mailserver-peer) for NAME's history since
//!                     SINCE (default: the last 24 h); results arrive like live messages
//! /quit               stop the node
//! ```
//!
//! Chat-name validity (length, characters) is the node's business, not the parser's.

use hush_core::node::Command;
use thiserror::Error;

/// A parsed stdin line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StdinCommand {
    /// Pass this to the node.
    Node(Command),
    /// Ask the trusted mailserver for a chat's history (`Node::request_history`).
    RequestHistory {
        /// Chat name.
        chat: String,
        /// Oldest sent time wanted, Unix seconds (`None` = the node's default window).
        since_secs: Option<u64>,
    },
    /// Stop the node.
    Quit,
}

/// Why a line is not a command.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CommandError {
    /// Not one of the known commands.
    #[error("unknown command {0:?} (try /join NAME, /leave NAME, /send NAME TEXT, /request NAME [SINCE], /quit)")]
    Unknown(String),
    /// A required argument is missing.
    #[error("{command}: missing {argument}")]
    MissingArgument {
        /// The command.
        command: &'static str,
        /// What is missing.
        argument: &'static str,
    },
    /// An argument that does not parse.
    #[error("{command}: invalid {argument}: {value:?}")]
    Invalid {
        /// The command.
        command: &'static str,
        /// Which argument.
        argument: &'static str,
        /// The text given.
        value: String,
    },
    /// Extra words after a command that takes none or one.
    #[error("{command}: unexpected {extra:?}")]
    Unexpected {
        /// The command.
        command: &'static str,
        /// The extra text.
        extra: String,
    },
}

/// Splits `s` (already left-trimmed) into its first word and the rest, left-trimmed.
fn first_word(s: &str) -> (&str, &str) {
    match s.split_once(char::is_whitespace) {
        Some((w, rest)) => (w, rest.trim_start()),
        None => (s, ""),
    }
}

/// Parses one stdin line (with or without its line terminator).
pub fn parse_line(line: &str) -> Result<Option<StdinCommand>, CommandError> {
    let line = line.trim_end_matches(['\n', '\r']);
    if line.trim().is_empty() {
        return Ok(None);
    }
    let (word, rest) = first_word(line.trim_start());
    let one_name = |command: &'static str| -> Result<String, CommandError> {
        let (name, extra) = first_word(rest);
        if name.is_empty() {
            return Err(CommandError::MissingArgument {
                command,
                argument: "chat name",
            });
        }
        if !extra.trim().is_empty() {
            return Err(CommandError::Unexpected {
                command,
                extra: extra.trim_end().to_string(),
            });
        }
        Ok(name.to_string())
    };
    let cmd = match word {
        "/join" => StdinCommand::Node(Command::JoinPublicChat {
            name: one_name("/join")?,
        }),
        "/leave" => StdinCommand::Node(Command::LeavePublicChat {
            name: one_name("/leave")?,
        }),
        "/send" => {
            let (name, text) = first_word(rest);
            if name.is_empty() {
                return Err(CommandError::MissingArgument {
                    command: "/send",
                    argument: "chat name",
                });
            }
            if text.trim().is_empty() {
                return Err(CommandError::MissingArgument {
                    command: "/send",
                    argument: "message text",
                });
            }
            StdinCommand::Node(Command::SendPublicMessage {
                chat: name.to_string(),
                text: text.to_string(),
            })
        }
        "/request" => {
            let (name, rest) = first_word(rest);
            if name.is_empty() {
                return Err(CommandError::MissingArgument {
                    command: "/request",
                    argument: "chat name",
                });
            }
            let (since, extra) = first_word(rest);
            if !extra.trim().is_empty() {
                return Err(CommandError::Unexpected {
                    command: "/request",
                    extra: extra.trim_end().to_string(),
                });
            }
            let since_secs = if since.is_empty() {
                None
            } else {
                Some(since.parse::<u64>().map_err(|_| CommandError::Invalid {
                    command: "/request",
                    argument: "SINCE_UNIX_SECS",
                    value: since.to_string(),
                })?)
            };
            StdinCommand::RequestHistory {
                chat: name.to_string(),
                since_secs,
            }
        }
        "/quit" => {
            if !rest.trim().is_empty() {
                return Err(CommandError::Unexpected {
                    command: "/quit",
                    extra: rest.trim_end().to_string(),
                });
            }
            StdinCommand::Quit
        }
        other => return Err(CommandError::Unknown(other.to_string())),
    };
    Ok(Some(cmd))
}

#[cfg(test)]
mod tests;
