//! devp2p: RLPx v5 transport and the base protocol.

pub mod enode;
