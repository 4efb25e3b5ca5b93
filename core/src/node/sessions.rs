//! Moving each devp2p session's output into node actions and Whisper input, the cached
//! session deadlines, and the peer manager's dials and disconnects.

use super::*;

impl Node {
    /// Moves one session's outputs into node actions and Whisper inputs, then refreshes its
    /// cached deadline.
    pub(super) fn pump_session(&mut self, now: Time, conn: ConnId) {
        self.drain_session(now, conn);
        self.refresh_session_deadline(conn);
    }

    /// Re-reads one session's deadline into `session_deadlines`.
    pub(super) fn refresh_session_deadline(&mut self, conn: ConnId) {
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let now_due = if peer.closed {
            None
        } else {
            peer.session.poll_timeout()
        };
        if now_due == peer.deadline {
            return;
        }
        if let Some(t) = std::mem::replace(&mut peer.deadline, now_due) {
            self.session_deadlines.remove(&(t, conn));
        }
        if let Some(t) = now_due {
            self.session_deadlines.insert((t, conn));
        }
    }

    pub(super) fn drain_session(&mut self, now: Time, conn: ConnId) {
        if let Some(peer) = self.peers.get_mut(&conn) {
            let ignored = peer.session.ignored_base_messages();
            let new = ignored.saturating_sub(peer.ignored_base_messages_seen);
            peer.ignored_base_messages_seen = ignored;
            self.stats.base_messages_ignored += new;
        }
        loop {
            let Some(peer) = self.peers.get_mut(&conn) else {
                return;
            };
            let Some(action) = peer.session.poll_action() else {
                return;
            };
            match action {
                session::Action::Transmit(bytes) => {
                    self.actions.push_back(Action::Send { conn, bytes })
                }
                session::Action::Close => {
                    if !peer.closed {
                        peer.closed = true;
                        self.actions.push_back(Action::Close { conn });
                    }
                }
                session::Action::Event(session::Event::Established {
                    remote, client_id, ..
                }) => {
                    let remote = pubkey_to_wire(&remote);
                    match self.manager.handle_established(now, conn, &remote) {
                        Admission::Accept => {
                            if let Some(peer) = self.peers.get_mut(&conn) {
                                peer.whisper_attached = true;
                            }
                            self.remotes.insert(conn, remote);
                            let ip = self.conn_ips.get(&conn).copied();
                            self.whisper.handle_peer_connected_from(now, conn, ip);
                            if self.config.mailservers.contains(&remote) {
                                self.whisper.set_trusted(conn, true);
                            }
                            self.actions.push_back(Action::Event(Event::PeerConnected {
                                conn,
                                remote,
                                client_id,
                            }));
                        }
                        Admission::Reject(reason) => {
                            // Counted by the peer manager and as a Disconnect sent.
                            crate::log_drop!("p2p", reason.label(), conn);
                            if let Some(peer) = self.peers.get_mut(&conn) {
                                peer.session.disconnect(now, reason);
                            }
                        }
                    }
                    // A duplicate contest may have ended another connection.
                    self.pump_peers(now);
                }
                session::Action::Event(session::Event::Message {
                    capability,
                    code,
                    payload,
                }) => {
                    if *capability == *WHISPER_CAPABILITY {
                        self.whisper.handle_peer_message(now, conn, code, &payload);
                    } else {
                        self.actions
                            .push_back(Action::Event(Event::CapabilityMessage {
                                conn,
                                capability: capability.to_string(),
                                code,
                                payload,
                            }));
                    }
                }
                session::Action::Event(session::Event::Disconnected { reason, by_peer }) => {
                    let fault = peer.session.fault();
                    let was_attached = std::mem::replace(&mut peer.whisper_attached, false);
                    self.stats.sessions_closed += 1;
                    let by_reason = if by_peer {
                        &mut self.stats.disconnects_received
                    } else {
                        &mut self.stats.disconnects_sent
                    };
                    *by_reason.entry(reason).or_default() += 1;
                    if let Some(fault) = fault {
                        *self.stats.peer_faults.entry(fault).or_default() += 1;
                        crate::log_drop!("p2p", fault.label(), conn);
                    }
                    if was_attached {
                        self.whisper.handle_peer_disconnected(now, conn);
                    }
                    self.manager.handle_closed(now, conn);
                    self.sync_stats();
                    self.remotes.remove(&conn);
                    let who = if by_peer { "by peer" } else { "by us" };
                    self.actions
                        .push_back(Action::Event(Event::PeerDisconnected {
                            conn,
                            reason: format!("{reason} ({who})"),
                        }));
                }
            }
        }
    }

    /// Performs the peer manager's requests: dials become [`Action::Dial`], duplicate losers
    /// are disconnected.
    pub(super) fn pump_peers(&mut self, now: Time) {
        while let Some(action) = self.manager.poll_action() {
            match action {
                peers::Action::Dial { conn, enode } => {
                    self.actions.push_back(Action::Dial { conn, enode })
                }
                peers::Action::Disconnect { conn, reason } => {
                    if let Some(p) = self.peers.get_mut(&conn) {
                        p.session.disconnect(now, reason);
                    }
                    self.pump_session(now, conn);
                }
            }
        }
        self.sync_stats();
    }

    pub(super) fn sync_stats(&mut self) {
        if self.stats.peers != *self.manager.stats() {
            self.stats.peers = self.manager.stats().clone();
        }
    }
}
