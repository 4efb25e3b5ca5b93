//! The JSON-RPC 2.0 server of `hush node` (issue 15): geth's `shh_` namespace over HTTP
//! (`--http`, POST, batches) and WebSocket (`--ws`, the same plus `shh_subscribe`).
//!
//! Rooms: [`args`] (the flags), [`http`] (HTTP/1.1 on `httparse`), [`ws`] (WebSocket on `async-tungstenite`),
//! [`jsonrpc`] (request objects, batches, error codes), [`shh`] (geth's parameter and result
//! shapes ↔ `hush_core::node::ShhRequest`), [`link`] (the driver loop's side: calls into the
//! stack, subscriptions out).
//!
//! Contract:
//! - Off unless asked; an address without a host binds 127.0.0.1 (geth's ports 8545 / 8546).
//! - Like geth, a request whose `Host` is neither an IP literal nor in `--http-vhosts`
//!   (default `localhost`) gets 403, so a web page that rebinds its DNS name to 127.0.0.1
//!   cannot drive the node. CORS is off unless `--http-corsdomain` allows an origin; a browser
//!   request (it carries `Origin`) from any other origin gets 403 (geth only withholds the CORS
//!   headers). A WebSocket handshake whose `Origin` is present and not in `--ws-origins`
//!   (default `http://localhost`) gets 403 (geth `wsHandshakeValidator`).
//! - Every limit is a named constant or an [`RpcConfig`] value, and every refusal is counted in
//!   [`RpcCounters`] (`/stats`, layer `rpc`).
//! - The node state machine is only touched by the driver loop: every call travels as an
//!   [`RpcCall`] with its reply channel; the server tasks never see the stack.
//! - Secret keys in requests or answers are never logged.

pub mod args;
pub mod http;
pub mod jsonrpc;
pub mod link;
pub mod shh;
pub mod ws;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use hush_core::node::{ShhError, ShhRequest, ShhResponse};
use hush_core::whisper::api::PushedMessage;
use smol::channel::{Receiver, Sender};

/// geth's default HTTP-RPC port.
pub const DEFAULT_HTTP_PORT: u16 = 8545;
/// geth's default WebSocket-RPC port.
pub const DEFAULT_WS_PORT: u16 = 8546;
/// Largest request body (HTTP) or message (WebSocket), bytes: geth's `maxRequestContentLength`.
pub const MAX_REQUEST_BODY_BYTES: usize = 5 * 1024 * 1024;
/// Largest HTTP request head (request line and headers), bytes.
pub const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;
/// Headers of one HTTP request at most.
pub const MAX_REQUEST_HEADERS: usize = 64;
/// Calls in one batch at most (geth 1.9 had no bound; later geth's default is 1000).
pub const MAX_BATCH_LEN: usize = 1000;
/// HTTP connections served at once by default; more are answered 503 and closed.
pub const DEFAULT_MAX_HTTP_CONNECTIONS: usize = 64;
/// WebSocket connections served at once by default; more are answered 503 and closed.
pub const DEFAULT_MAX_WS_CONNECTIONS: usize = 100;
/// Subscriptions one WebSocket connection holds at most.
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 16;
/// Notifications queued for one WebSocket connection at most; a client that lets more pile up
/// is disconnected (a slow consumer must not make the node buffer without bound).
pub const MAX_QUEUED_NOTIFICATIONS: usize = 1024;
/// An HTTP connection idle this long between requests is closed (geth's `IdleTimeout`), s.
pub const HTTP_IDLE_TIMEOUT_SECS: u64 = 120;
/// Reading one request (head and body) may take this long (geth's `ReadTimeout`), s.
pub const HTTP_READ_TIMEOUT_SECS: u64 = 30;
/// Calls waiting for the driver loop at most (all connections together).
pub const RPC_CALL_QUEUE: usize = 256;

/// Where and how the server listens.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    /// HTTP listen address (`--http`).
    pub http: Option<SocketAddr>,
    /// WebSocket listen address (`--ws`).
    pub ws: Option<SocketAddr>,
    /// Accepted `Host` names besides IP literals, lowercase; `*` accepts any.
    pub vhosts: Vec<String>,
    /// Origins allowed to call over HTTP (CORS); empty = none; `*` = any.
    pub cors_origins: Vec<String>,
    /// Origins allowed to open a WebSocket; `*` = any.
    pub ws_origins: Vec<String>,
    /// HTTP connections at once.
    pub max_http_connections: usize,
    /// WebSocket connections at once.
    pub max_ws_connections: usize,
}

impl Default for RpcConfig {
    fn default() -> Self {
        RpcConfig {
            http: None,
            ws: None,
            vhosts: vec!["localhost".into()],
            cors_origins: Vec::new(),
            ws_origins: vec!["http://localhost".into()],
            max_http_connections: DEFAULT_MAX_HTTP_CONNECTIONS,
            max_ws_connections: DEFAULT_MAX_WS_CONNECTIONS,
        }
    }
}

/// Parses `--http` / `--ws` values: `ADDR:PORT`, `PORT`, or `ADDR` (default port).
pub fn parse_listen(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            default_port,
        ));
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    Err(format!("expected ADDR:PORT, PORT or ADDR, got {s:?}"))
}

/// Splits a comma-separated flag value into lowercase entries.
pub fn parse_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .collect()
}

/// One call for the driver loop, with where its answer goes.
pub struct RpcCall {
    /// The call.
    pub request: ShhRequest,
    /// Gets the answer.
    pub reply: Sender<Result<ShhResponse, ShhError>>,
    /// For a subscription: where its messages go (one queue per WebSocket connection).
    pub subscriber: Option<Sender<PushedMessage>>,
}

impl std::fmt::Debug for RpcCall {
    // Requests may carry secret keys: only whether it subscribes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcCall")
            .field("subscribes", &self.subscriber.is_some())
            .finish_non_exhaustive()
    }
}

/// What the driver loop needs: the calls and the counters it reports in `/stats`.
#[derive(Clone, Debug)]
pub struct RpcInputs {
    /// Calls from the server tasks.
    pub calls: Receiver<RpcCall>,
    /// The server's counters.
    pub counters: Arc<RpcCounters>,
}

macro_rules! counters {
    ($($name:ident: $doc:literal,)*) => {
        /// The server's counters (monotonic, except the `*_open` gauges), `rpc.NAME` in `/stats`.
        #[derive(Debug, Default)]
        pub struct RpcCounters {
            $(#[doc = $doc] pub $name: AtomicU64,)*
        }

        impl RpcCounters {
            /// Every counter as `(rpc.name, value)`.
            pub fn list(&self) -> Vec<(String, u64)> {
                vec![$((concat!("rpc.", stringify!($name)).to_string(), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    calls: "Calls answered (each call of a batch counts).",
    call_errors: "Calls answered with a method error (-32000).",
    parse_errors: "Bodies or messages that are not JSON (-32700).",
    invalid_requests: "Request objects that are not JSON-RPC 2.0 calls, empty batches (-32600).",
    unknown_methods: "Calls of methods we do not have (-32601).",
    invalid_params: "Calls whose parameters do not fit the method (-32602).",
    batches_too_long: "Batches longer than MAX_BATCH_LEN, refused whole.",
    http_requests: "HTTP requests read.",
    http_forbidden_host: "HTTP requests refused for their Host header (403).",
    http_forbidden_origin: "HTTP requests refused for their Origin header (403).",
    http_bodies_too_large: "HTTP requests refused for their size (413).",
    http_bad_requests: "HTTP requests that are not well-formed or not POST JSON (400/405/411/415/431).",
    http_timeouts: "HTTP connections closed on a read or idle timeout.",
    http_connections_refused: "HTTP connections refused at the connection limit (503).",
    ws_connections_refused: "WebSocket connections refused at the connection limit (503).",
    ws_handshakes_refused: "WebSocket handshakes refused (bad Host or Origin, not a handshake).",
    ws_messages_too_large: "WebSocket connections closed for a message over the size limit.",
    subscriptions_refused: "Subscriptions refused at MAX_SUBSCRIPTIONS_PER_CONNECTION or over HTTP.",
    slow_consumers_disconnected: "WebSocket connections closed because MAX_QUEUED_NOTIFICATIONS were waiting.",
    notifications_sent: "Subscription notifications sent.",
    http_open: "HTTP connections open now.",
    ws_open: "WebSocket connections open now.",
}

/// Holds one slot of a connection limit; gives it back when dropped.
pub(crate) struct Slot {
    open: Arc<AtomicUsize>,
}

impl Slot {
    /// Takes a slot if fewer than `max` are taken.
    pub(crate) fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        let mut n = open.load(Ordering::SeqCst);
        loop {
            if n >= max {
                return None;
            }
            match open.compare_exchange(n, n + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Some(Slot { open: open.clone() }),
                Err(now) => n = now,
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the server tasks share.
pub(crate) struct Ctx {
    pub(crate) config: RpcConfig,
    pub(crate) calls: Sender<RpcCall>,
    pub(crate) counters: Arc<RpcCounters>,
}

impl Ctx {
    /// Sends a call to the driver loop and waits for its answer.
    pub(crate) async fn call(
        &self,
        request: ShhRequest,
        subscriber: Option<Sender<PushedMessage>>,
    ) -> Result<ShhResponse, ShhError> {
        let (reply, answer) = smol::channel::bounded(1);
        let call = RpcCall {
            request,
            reply,
            subscriber,
        };
        if self.calls.send(call).await.is_err() {
            return Err(ShhError::Unavailable);
        }
        answer.recv().await.unwrap_or(Err(ShhError::Unavailable))
    }

    /// geth's virtual-host check: no Host, an IP literal, `*` or a listed name passes.
    pub(crate) fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return true };
        let name = match host.rsplit_once(':') {
            // `[::1]:8545`, `name:8545`; a bare IPv6 literal has several colons.
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
            _ => host,
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        if name.parse::<IpAddr>().is_ok() {
            return true;
        }
        let name = name.to_ascii_lowercase();
        self.config.vhosts.iter().any(|v| v == "*" || *v == name)
    }
}

/// True if `origin` is in `allowed` (`*` = any), case-insensitively.
pub(crate) fn origin_listed(allowed: &[String], origin: &str) -> bool {
    let origin = origin.to_ascii_lowercase();
    allowed.iter().any(|a| a == "*" || *a == origin)
}

/// Binds the listeners asked for and starts serving; returns the tasks (dropping them stops
/// the server), the bound addresses and what the driver loop needs.
pub async fn start(
    config: RpcConfig,
) -> anyhow::Result<(
    Vec<smol::Task<()>>,
    Vec<(&'static str, SocketAddr)>,
    RpcInputs,
)> {
    let (calls_tx, calls_rx) = smol::channel::bounded(RPC_CALL_QUEUE);
    let counters = Arc::new(RpcCounters::default());
    let ctx = Arc::new(Ctx {
        config: config.clone(),
        calls: calls_tx,
        counters: counters.clone(),
    });
    let mut tasks = Vec::new();
    let mut bound = Vec::new();
    if let Some(addr) = config.http {
        let listener = smol::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("--http {addr}: {e}"))?;
        bound.push(("http", listener.local_addr()?));
        tasks.push(smol::spawn(http::serve(listener, ctx.clone())));
    }
    if let Some(addr) = config.ws {
        let listener = smol::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("--ws {addr}: {e}"))?;
        bound.push(("ws", listener.local_addr()?));
        tasks.push(smol::spawn(ws::serve(listener, ctx.clone())));
    }
    Ok((
        tasks,
        bound,
        RpcInputs {
            calls: calls_rx,
            counters,
        },
    ))
}

#[cfg(test)]
mod tests;
