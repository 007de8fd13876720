//! Cluster networking of the process runtime: the bridge, pod namespaces and service addresses
//! ([`bridge`], which claims the slot and cleans what `host_records` lists; pod networks and
//! their warm pool in [`pod_network`], over [`netlink`]), and on top of the bridge
//! what kube-proxy, CoreDNS, the apiserver's `kubernetes` Service and an ingress controller do
//! ([`serve`]: [`services`], [`dns`], [`apiserver_access`], [`ingress`], over one [`view`]).

pub mod apiserver_access;
pub mod bridge;
pub mod dns;
pub mod ingress;
pub mod ingress_routes;
pub mod netlink;
pub mod pod_ips;
pub mod pod_network;
pub mod serve;
pub mod services;
pub mod view;

pub use crate::host_records::created_paths;
pub use apiserver_access::ApiserverAccess;
pub use serve::{Error, IngressListen, Network, NetworkConfig};
pub use services::{LocalAddresses, Loopback};
