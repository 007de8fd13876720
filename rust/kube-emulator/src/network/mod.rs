//! Cluster networking of the process runtime: the bridge, pod namespaces and service addresses
//! ([`bridge`]), and host paths created for pod mounts ([`created_paths`]). Service proxying,
//! cluster DNS, Ingress and in-cluster API access build on [`bridge::ClusterNetwork`].

pub mod bridge;
pub mod created_paths;
