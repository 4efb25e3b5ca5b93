//! The stdin command language of `hush node`.
//!
//! Contract: one command per line. [`parse_line`] maps a line to a [`StdinCommand`] (a node
//! [`Command`] or `/quit`), to `Ok(None)` for a blank line, or to a [`CommandError`] saying what
//! is wrong; it never panics. Commands:
//!
//! ```text
//! /join NAME          start receiving public chat NAME
//! /leave NAME         stop receiving it (the driver refuses a chat not joined)
//! /send NAME TEXT...  post TEXT (the rest of the line, inner spaces kept) to NAME; a chat not
//!                     joined is joined first and the driver says so on stderr (kept from the
//!                     first version, which scripts rely on, but no longer silent)
//! /request NAME [SINCE_UNIX_SECS]
//!                     ask the trusted mailserver (--mailserver-peer) for NAME's history since
//!                     SINCE (default: the last 24 h); results arrive like live messages
//! /dm PUBKEY TEXT...   send TEXT to PUBKEY (0x04 + 128 hex, or the 128 hex alone)
//! /group create NAME PUBKEY...
//!                     create a private group NAME with us as admin and these members
//! /group add GROUP PUBKEY
//!                     add a member to GROUP (its name, or its id when names collide)
//! /group send GROUP TEXT...
//!                     post TEXT to GROUP
//! /group remove GROUP PUBKEY | /group admin GROUP PUBKEY... | /group rename GROUP NAME |
//! /group join GROUP | /group leave GROUP
//!                     the other membership changes (admin rules are the node's; join
//!                     accepts an invitation, which status-go 0.36.2 needs before it delivers
//!                     group messages)
//! /history CHAT       print the stored history of CHAT (public name, 0x04… key, group name
//!                     or id), oldest clock first; the driver answers an unknown CHAT with an
//!                     error and a known one without messages with a stderr line
//! /whoami             print our public key, enode and installation id
//! /devices            print our other devices (installation ids) and whether they are paired
//! /pair ID | /unpair ID
//!                     sync (or stop syncing) our messages with our device ID
//! /format public NAME FORMAT | /format dm PUBKEY FORMAT | /format group GROUP FORMAT
//!                     send that chat in FORMAT: transit (status-go ≤ v0.36.0), protobuf
//!                     (status-go ≥ 0.36.2) or auto (the form last received in the chat);
//!                     `default` returns it to --payload-format (GROUP: id, or a unique name)
//! /chats              print the chats we are in
//! /stats              print every counter of every layer, one `stat layer.name value` line each
//! /quit               stop the node
//! ```
//!
//! Chat-name validity (length, characters) is the node's business, not the parser's.
//!
//! Errors quote what the user typed cut to [`MAX_ECHOED_INPUT_CHARS`] characters with a
//! `…(N more bytes)` marker ([`echo_input`]), so a 1 MB line gets a one-line error, not a 1 MB
//! one.

use hush_core::chat::format::FormatSetting;
use hush_core::node::{ChatTarget, Command, NodePublicKey};
use thiserror::Error;

/// Characters of user input quoted back at most in an error message (about one terminal line
/// with the rest of the message); the rest is replaced by a `…(N more bytes)` marker.
pub const MAX_ECHOED_INPUT_CHARS: usize = 64;

/// `text` cut to at most `max_chars` characters, then `…(N more bytes)` when it was longer
/// (never cut inside a character).
pub fn cut_at_chars(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}…({} more bytes)", &text[..cut], text.len() - cut),
    }
}

/// `input` quoted for an error message: `{:?}` of at most `max_chars` characters, then
/// `…(N more bytes)` when it was longer (never cut inside a character).
pub fn echo_input_at_most(input: &str, max_chars: usize) -> String {
    match input.char_indices().nth(max_chars) {
        None => format!("{input:?}"),
        Some((cut, _)) => format!("{:?}…({} more bytes)", &input[..cut], input.len() - cut),
    }
}

/// `input` quoted for an error message, cut to [`MAX_ECHOED_INPUT_CHARS`] characters.
pub fn echo_input(input: &str) -> String {
    echo_input_at_most(input, MAX_ECHOED_INPUT_CHARS)
}

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
    /// Add a member to a group named by its name or id (the driver resolves the name).
    GroupAdd {
        /// Group name or id.
        group: String,
        /// The new member.
        member: NodePublicKey,
    },
    /// Another membership change of a group named by its name or id.
    GroupChange {
        /// Group name or id.
        group: String,
        /// What to do.
        change: GroupChange,
    },
    /// Post to a group named by its name or id.
    GroupSend {
        /// Group name or id.
        group: String,
        /// Text.
        text: String,
    },
    /// Print a chat's stored history.
    History {
        /// Public chat name, `0x04…` key, group name or id.
        chat: String,
    },
    /// Print our identity.
    WhoAmI,
    /// Print our chats.
    Chats,
    /// Print our other devices.
    Devices,
    /// Print counters.
    Stats,
    /// Stop the node.
    Quit,
}

/// A membership change other than adding a member (see [`StdinCommand::GroupChange`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupChange {
    /// Remove a member.
    Remove(NodePublicKey),
    /// Make members admins.
    Admins(Vec<NodePublicKey>),
    /// Rename the group.
    Rename(String),
    /// Accept the invitation (`member-joined`).
    Join,
    /// Leave the group.
    Leave,
}

/// Parses a public key as `0x04` + 128 hex, `04` + 128 hex, or the 128 hex of X‖Y.
pub fn parse_public_key(s: &str) -> Option<NodePublicKey> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    let s = if s.len() == 130 {
        s.strip_prefix("04")?
    } else {
        s
    };
    let mut key = [0u8; 64];
    hex::decode_to_slice(s, &mut key).ok()?;
    Some(key)
}

/// Why a line is not a command.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CommandError {
    /// Not one of the known commands.
    #[error("unknown command {} (try /join NAME, /leave NAME, /send NAME TEXT, /request NAME [SINCE], /dm PUBKEY TEXT, /group create|add|send, /format public|dm|group CHAT FORMAT, /history CHAT, /whoami, /chats, /quit)", echo_input(.0))]
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
    #[error("{command}: invalid {argument}: {}", echo_input(.value))]
    Invalid {
        /// The command.
        command: &'static str,
        /// Which argument.
        argument: &'static str,
        /// The text given.
        value: String,
    },
    /// Extra words after a command that takes none or one.
    #[error("{command}: unexpected {}", echo_input(.extra))]
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
        "/dm" => {
            let (key, text) = first_word(rest);
            let to = required_key("/dm", key)?;
            if text.trim().is_empty() {
                return Err(CommandError::MissingArgument {
                    command: "/dm",
                    argument: "message text",
                });
            }
            StdinCommand::Node(Command::SendDirect {
                to,
                text: text.to_string(),
            })
        }
        "/group" => {
            let (sub, rest) = first_word(rest);
            match sub {
                "create" => {
                    let (name, keys) = first_word(rest);
                    if name.is_empty() {
                        return Err(CommandError::MissingArgument {
                            command: "/group create",
                            argument: "group name",
                        });
                    }
                    let members = keys
                        .split_whitespace()
                        .map(|k| required_key("/group create", k))
                        .collect::<Result<Vec<_>, _>>()?;
                    StdinCommand::Node(Command::CreateGroup {
                        name: name.to_string(),
                        members,
                    })
                }
                "add" => {
                    let (group, rest) = first_word(rest);
                    if group.is_empty() {
                        return Err(CommandError::MissingArgument {
                            command: "/group add",
                            argument: "group",
                        });
                    }
                    let (key, extra) = first_word(rest);
                    let member = required_key("/group add", key)?;
                    if !extra.trim().is_empty() {
                        return Err(CommandError::Unexpected {
                            command: "/group add",
                            extra: extra.trim_end().to_string(),
                        });
                    }
                    StdinCommand::GroupAdd {
                        group: group.to_string(),
                        member,
                    }
                }
                "send" => {
                    let (group, text) = first_word(rest);
                    if group.is_empty() {
                        return Err(CommandError::MissingArgument {
                            command: "/group send",
                            argument: "group",
                        });
                    }
                    if text.trim().is_empty() {
                        return Err(CommandError::MissingArgument {
                            command: "/group send",
                            argument: "message text",
                        });
                    }
                    StdinCommand::GroupSend {
                        group: group.to_string(),
                        text: text.to_string(),
                    }
                }
                "remove" | "admin" | "rename" | "join" | "leave" => {
                    let command = match sub {
                        "remove" => "/group remove",
                        "admin" => "/group admin",
                        "rename" => "/group rename",
                        "join" => "/group join",
                        _ => "/group leave",
                    };
                    let (group, rest) = first_word(rest);
                    if group.is_empty() {
                        return Err(CommandError::MissingArgument {
                            command,
                            argument: "group",
                        });
                    }
                    let rest = rest.trim_end();
                    let change = match sub {
                        "remove" => {
                            let (key, extra) = first_word(rest);
                            if !extra.is_empty() {
                                return Err(CommandError::Unexpected {
                                    command,
                                    extra: extra.to_string(),
                                });
                            }
                            GroupChange::Remove(required_key(command, key)?)
                        }
                        "admin" => {
                            if rest.is_empty() {
                                return Err(CommandError::MissingArgument {
                                    command,
                                    argument: "public key",
                                });
                            }
                            GroupChange::Admins(
                                rest.split_whitespace()
                                    .map(|k| required_key(command, k))
                                    .collect::<Result<_, _>>()?,
                            )
                        }
                        "rename" => {
                            if rest.is_empty() {
                                return Err(CommandError::MissingArgument {
                                    command,
                                    argument: "new name",
                                });
                            }
                            GroupChange::Rename(rest.to_string())
                        }
                        _ => {
                            if !rest.is_empty() {
                                return Err(CommandError::Unexpected {
                                    command,
                                    extra: rest.to_string(),
                                });
                            }
                            if sub == "join" {
                                GroupChange::Join
                            } else {
                                GroupChange::Leave
                            }
                        }
                    };
                    StdinCommand::GroupChange {
                        group: group.to_string(),
                        change,
                    }
                }
                "" => {
                    return Err(CommandError::MissingArgument {
                        command: "/group",
                        argument: "create, add, send, remove, admin, rename, join or leave",
                    })
                }
                other => {
                    return Err(CommandError::Invalid {
                        command: "/group",
                        argument:
                            "subcommand (create, add, send, remove, admin, rename, join, leave)",
                        value: other.to_string(),
                    })
                }
            }
        }
        "/format" => {
            const C: &str = "/format";
            let (kind, rest) = first_word(rest);
            let (chat, rest) = first_word(rest);
            let (format, extra) = first_word(rest);
            if kind.is_empty() {
                return Err(CommandError::MissingArgument {
                    command: C,
                    argument: "chat kind (public, dm or group)",
                });
            }
            if chat.is_empty() {
                return Err(CommandError::MissingArgument {
                    command: C,
                    argument: "chat",
                });
            }
            if format.is_empty() {
                return Err(CommandError::MissingArgument {
                    command: C,
                    argument: "format (transit, protobuf, auto or default)",
                });
            }
            if !extra.trim().is_empty() {
                return Err(CommandError::Unexpected {
                    command: C,
                    extra: extra.trim_end().to_string(),
                });
            }
            let chat = match kind {
                "public" => ChatTarget::Public(chat.to_string()),
                "dm" => ChatTarget::Direct(required_key(C, chat)?),
                "group" => ChatTarget::Group(chat.to_string()),
                other => {
                    return Err(CommandError::Invalid {
                        command: C,
                        argument: "chat kind (public, dm, group)",
                        value: other.to_string(),
                    })
                }
            };
            let format = match format {
                "default" => None,
                f => Some(
                    FormatSetting::parse(f).ok_or_else(|| CommandError::Invalid {
                        command: C,
                        argument: "format (transit, protobuf, auto, default)",
                        value: f.to_string(),
                    })?,
                ),
            };
            StdinCommand::Node(Command::SetChatFormat { chat, format })
        }
        "/history" => StdinCommand::History {
            chat: one_name("/history")?,
        },
        "/pair" | "/unpair" => {
            let command = if word == "/pair" { "/pair" } else { "/unpair" };
            let (id, extra) = first_word(rest);
            if id.is_empty() {
                return Err(CommandError::MissingArgument {
                    command,
                    argument: "installation id",
                });
            }
            if !extra.trim().is_empty() {
                return Err(CommandError::Unexpected {
                    command,
                    extra: extra.trim_end().to_string(),
                });
            }
            StdinCommand::Node(Command::PairDevice {
                installation_id: id.to_string(),
                enabled: word == "/pair",
            })
        }
        "/devices" | "/stats" => {
            let command = if word == "/devices" {
                "/devices"
            } else {
                "/stats"
            };
            if !rest.trim().is_empty() {
                return Err(CommandError::Unexpected {
                    command,
                    extra: rest.trim_end().to_string(),
                });
            }
            if word == "/devices" {
                StdinCommand::Devices
            } else {
                StdinCommand::Stats
            }
        }
        "/whoami" | "/chats" => {
            if !rest.trim().is_empty() {
                return Err(CommandError::Unexpected {
                    command: if word == "/whoami" {
                        "/whoami"
                    } else {
                        "/chats"
                    },
                    extra: rest.trim_end().to_string(),
                });
            }
            if word == "/whoami" {
                StdinCommand::WhoAmI
            } else {
                StdinCommand::Chats
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

fn required_key(command: &'static str, word: &str) -> Result<NodePublicKey, CommandError> {
    if word.is_empty() {
        return Err(CommandError::MissingArgument {
            command,
            argument: "public key",
        });
    }
    parse_public_key(word).ok_or_else(|| CommandError::Invalid {
        command,
        argument: "public key (0x04 + 128 hex)",
        value: word.to_string(),
    })
}

#[cfg(test)]
mod tests;
