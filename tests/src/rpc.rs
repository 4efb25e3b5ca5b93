//! Helpers for the JSON-RPC end-to-end tests: a node started with `--http`/`--ws` on ephemeral
//! loopback ports, a raw HTTP/1.1 client (so tests control every header and byte), and a
//! WebSocket client (tungstenite, blocking).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::NodeProcess;

/// How long one RPC exchange may take before a test fails.
pub const RPC_IO_TIMEOUT_SECS: u64 = 30;

/// A node with its RPC addresses.
pub struct RpcNode {
    /// The process.
    pub process: NodeProcess,
    /// HTTP address.
    pub http: SocketAddr,
    /// WebSocket address.
    pub ws: SocketAddr,
}

impl RpcNode {
    /// Starts `hush node --http 127.0.0.1:0 --ws 127.0.0.1:0 <args>` and reads the addresses.
    pub fn start(name: &str, args: &[&str]) -> RpcNode {
        let mut all = vec![
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--ws",
            "127.0.0.1:0",
        ];
        all.extend_from_slice(args);
        let process = NodeProcess::spawn(name, &all);
        let deadline = Instant::now() + Duration::from_secs(RPC_IO_TIMEOUT_SECS);
        let addr = |kind: &str| -> SocketAddr {
            let prefix = format!("hush: {kind} rpc listening on ");
            let line = process.wait_stderr(deadline, |l| l.starts_with(&prefix));
            line[prefix.len()..].trim().parse().expect("address")
        };
        let http = addr("http");
        let ws = addr("ws");
        RpcNode { process, http, ws }
    }

    /// One call over HTTP; the whole answer object.
    pub fn call_raw(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let (status, answer) = http_post(self.http, &body.to_string(), &[]);
        assert_eq!(status, 200, "{method}: {answer}");
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{method}: {e}: {answer}"))
    }

    /// One call over HTTP that must succeed; its result.
    pub fn call(&self, method: &str, params: Value) -> Value {
        let a = self.call_raw(method, params);
        match a.get("result") {
            Some(r) => r.clone(),
            None => panic!("{method}: {a}\n{}", self.process.transcript()),
        }
    }

    /// One call over HTTP that must fail; its error object.
    pub fn call_err(&self, method: &str, params: Value) -> Value {
        let a = self.call_raw(method, params);
        match a.get("error") {
            Some(e) => e.clone(),
            None => panic!("{method}: expected an error, got {a}"),
        }
    }
}

/// Sends one HTTP/1.1 POST (`Connection: close`) with `Host: 127.0.0.1:PORT` and JSON content
/// type unless `headers` override them; returns the status and body.
pub fn http_post(addr: SocketAddr, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut all: Vec<(String, String)> = vec![
        ("Host".into(), addr.to_string()),
        ("Content-Type".into(), "application/json".into()),
    ];
    for (k, v) in headers {
        all.retain(|(name, _)| !name.eq_ignore_ascii_case(k));
        all.push((k.to_string(), v.to_string()));
    }
    let mut head = format!(
        "POST / HTTP/1.1\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in all {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body.as_bytes());
    http_exchange(addr, &request)
}

/// Writes raw bytes, reads until the server closes; returns the status and body. A write
/// that the server cut short (it refused and closed) still reads what it answered.
pub fn http_exchange(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(RPC_IO_TIMEOUT_SECS)))
        .unwrap();
    s.set_write_timeout(Some(Duration::from_secs(RPC_IO_TIMEOUT_SECS)))
        .unwrap();
    let _ = s.write_all(request);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

/// Status and body of one HTTP/1.1 response.
pub fn parse_response(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A blocking WebSocket client.
pub type Ws = tungstenite::WebSocket<TcpStream>;

/// Opens a WebSocket to `addr` (`Host` = the address, no `Origin`).
pub fn ws_connect(addr: SocketAddr) -> Ws {
    ws_connect_with(addr, &[]).expect("websocket handshake")
}

/// Opens a WebSocket with extra handshake headers; the handshake error if refused.
pub fn ws_connect_with(
    addr: SocketAddr,
    headers: &[(&str, &str)],
) -> Result<Ws, tungstenite::Error> {
    use tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/").into_client_request()?;
    for (k, v) in headers {
        request.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let stream = TcpStream::connect(addr).map_err(tungstenite::Error::Io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(RPC_IO_TIMEOUT_SECS)))
        .unwrap();
    tungstenite::client::client(request, stream)
        .map(|(ws, _)| ws)
        .map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => e,
            tungstenite::HandshakeError::Interrupted(_) => {
                tungstenite::Error::Io(std::io::ErrorKind::WouldBlock.into())
            }
        })
}

/// Sends one call over a WebSocket and returns the next answer that is not a notification.
pub fn ws_call(ws: &mut Ws, id: u64, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    ws.send(tungstenite::Message::text(body.to_string()))
        .expect("ws send");
    loop {
        let v = ws_next(ws);
        if v.get("method").is_none() {
            return v;
        }
    }
}

/// The next JSON message on a WebSocket (answer or notification).
pub fn ws_next(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("ws read") {
            tungstenite::Message::Text(t) => {
                return serde_json::from_str(t.as_str()).expect("json message")
            }
            tungstenite::Message::Close(f) => panic!("ws closed: {f:?}"),
            _ => continue,
        }
    }
}

/// Resident set size of a process, KiB (Linux `/proc/PID/status` `VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}
