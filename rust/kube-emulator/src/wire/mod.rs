//! Wire protocols: Kubernetes protobuf request bodies, SPDY/3.1 framing and the port-forward
//! protocol over it.

pub mod portforward_spdy;
pub mod protobuf;
pub mod spdy;
