//! `hush node`'s JSON-RPC flags (geth's names: `--http`, `--ws`, `--http-vhosts`,
//! `--http-corsdomain`, `--ws-origins`).

use std::net::SocketAddr;

use super::{
    parse_list, parse_listen, RpcConfig, DEFAULT_HTTP_PORT, DEFAULT_MAX_HTTP_CONNECTIONS,
    DEFAULT_MAX_WS_CONNECTIONS, DEFAULT_WS_PORT,
};

fn http_addr(s: &str) -> Result<SocketAddr, String> {
    parse_listen(s, DEFAULT_HTTP_PORT)
}

fn ws_addr(s: &str) -> Result<SocketAddr, String> {
    parse_listen(s, DEFAULT_WS_PORT)
}

/// The JSON-RPC server's flags.
#[derive(clap::Args, Debug, Clone)]
pub struct RpcArgs {
    /// Serve JSON-RPC over HTTP POST (geth's shh_ API; docs/rpc.md). Without a value:
    /// 127.0.0.1:8545; a port alone binds 127.0.0.1. Off by default.
    #[arg(long, value_name = "ADDR:PORT", num_args = 0..=1, default_missing_value = "", value_parser = http_addr)]
    pub http: Option<SocketAddr>,
    /// Serve JSON-RPC over WebSocket, with shh_subscribe. Without a value: 127.0.0.1:8546.
    /// Off by default.
    #[arg(long, value_name = "ADDR:PORT", num_args = 0..=1, default_missing_value = "", value_parser = ws_addr)]
    pub ws: Option<SocketAddr>,
    /// Host names accepted in the Host header of RPC requests, comma-separated (`*` = any);
    /// IP literals always pass. Guards against DNS rebinding.
    #[arg(long, value_name = "HOSTS", default_value = "localhost")]
    pub http_vhosts: String,
    /// Origins allowed to call over HTTP from a browser (CORS), comma-separated (`*` = any);
    /// none by default.
    #[arg(long, value_name = "ORIGINS", default_value = "")]
    pub http_corsdomain: String,
    /// Origins allowed to open a WebSocket, comma-separated (`*` = any); a handshake without
    /// Origin (not a browser) always passes.
    #[arg(long, value_name = "ORIGINS", default_value = "http://localhost")]
    pub ws_origins: String,
    /// HTTP connections served at once; more get 503.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_HTTP_CONNECTIONS)]
    pub http_max_connections: usize,
    /// WebSocket connections served at once; more get 503.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_WS_CONNECTIONS)]
    pub ws_max_connections: usize,
}

impl RpcArgs {
    /// The server configuration, `None` when neither `--http` nor `--ws` is given.
    pub fn config(&self) -> Option<RpcConfig> {
        if self.http.is_none() && self.ws.is_none() {
            return None;
        }
        Some(RpcConfig {
            http: self.http,
            ws: self.ws,
            vhosts: parse_list(&self.http_vhosts),
            cors_origins: parse_list(&self.http_corsdomain),
            ws_origins: parse_list(&self.ws_origins),
            max_http_connections: self.http_max_connections,
            max_ws_connections: self.ws_max_connections,
        })
    }
}
