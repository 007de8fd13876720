//! Pod networks of a [`ClusterNetwork`]: a namespace `kemu<N>-<octet>` with loopback up and a
//! veth `eth0` holding the pod's IP (default route via the bridge's gateway), its host end
//! `kemu<N>v<octet>` on the bridge; and the warm pool of them that a pod start takes from.
//!
//! Making one used to cost ~10 `ip` runs on the pod's start, then two `ip -batch` runs per
//! pooled network, made one after the other: under load the pool of 8 ran dry in a burst of
//! pod starts and the next pod waited for the refill (the pod-start p90). Now a refill makes
//! everything missing at once: one `ip -batch` adds all the namespaces (`ip netns add` also
//! keeps `/run/netns` set up as iproute2 expects), the veths, addresses, links and routes are
//! rtnetlink requests from the emulator itself ([`super::netlink`]).

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::Path;

use super::bridge::{
    ClusterNetwork, Error, PodNetwork, Result, ip, ip_batch, link_exists, remove_netns,
};
use super::netlink::{LOOPBACK_INDEX, Rtnl};

/// Refill rounds per [`ClusterNetwork::fill_pool`] call: pods taking networks meanwhile can
/// leave the pool short after a round; a later pod start calls again.
const FILL_ROUNDS: usize = 3;

fn netlink(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
}

impl ClusterNetwork {
    /// A pod network, from the warm pool when one is ready; when the pool is empty it waits for
    /// a refill in flight (and takes one of its networks), else makes one now.
    pub fn add_pod(&self) -> Result<PodNetwork> {
        if let Some(ready) = self.take_pooled() {
            return Ok(ready);
        }
        // A refill in flight holds `shut` until its networks are in the pool.
        let shut = self.shut.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ready) = self.take_pooled() {
            return Ok(ready);
        }
        if *shut {
            return Err(Error::Io {
                what: "creating a pod network".into(),
                source: std::io::Error::other("the cluster network is shut down"),
            });
        }
        let mut made = self.create_pod_networks(1)?;
        Ok(made.remove(0))
    }

    /// A pod network from the warm pool, if one is ready (never waits for one).
    pub fn take_pooled(&self) -> Option<PodNetwork> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// How many pod networks are ready in the pool.
    pub fn pooled(&self) -> usize {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Makes pod networks until `target` are ready for [`ClusterNetwork::add_pod`], all the
    /// missing ones in one go (call it off the hot path, e.g. after each pod start). Calls
    /// queue behind each other; failures are logged.
    pub fn fill_pool(&self, target: usize) {
        for _ in 0..FILL_ROUNDS {
            // Under `shut`: a concurrent shutdown waits for these networks and removes them,
            // instead of cleaning first and leaving them behind.
            let shut = self.shut.lock().unwrap_or_else(|p| p.into_inner());
            let missing = target.saturating_sub(self.pooled());
            if *shut || missing == 0 {
                return;
            }
            match self.create_pod_networks(missing) {
                // Pooled before `shut` is released, for `add_pod` waiting on it.
                Ok(made) => self
                    .pool
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(made),
                Err(e) => {
                    tracing::warn!(error = %e, "pre-creating pod networks failed");
                    return;
                }
            }
        }
    }

    /// Makes up to `count` pod networks (fewer when the pod CIDR runs out; an error when
    /// none could be made).
    fn create_pod_networks(&self, count: usize) -> Result<Vec<PodNetwork>> {
        let pods: Vec<PodNetwork> = {
            let mut ips = self.pods.lock().unwrap_or_else(|p| p.into_inner());
            std::iter::from_fn(|| ips.take())
                .take(count)
                .map(|octet| self.pod_network(octet))
                .collect()
        };
        if pods.is_empty() {
            return Err(Error::PodCidrFull(format!("10.244.{}", self.slot)));
        }
        let adds: Vec<String> = pods
            .iter()
            .map(|p| format!("netns add {}", p.netns))
            .collect();
        let plugged = ip_batch(&adds).and_then(|()| {
            let bridge = self.bridge_name();
            let mut host =
                Rtnl::open().map_err(netlink("opening a route netlink socket".into()))?;
            let master = host
                .link_index(&bridge)
                .map_err(netlink(format!("looking up bridge {bridge}")))?;
            Ok((host, master))
        });
        let (mut host, master) = match plugged {
            Ok(ok) => ok,
            Err(e) => {
                pods.iter().for_each(|p| self.remove_pod(p));
                return Err(e);
            }
        };
        let (mut made, mut first_error) = (Vec::new(), None);
        for pod in pods {
            match self.plug(&mut host, master, &pod) {
                Ok(()) => made.push(pod),
                Err(e) => {
                    self.remove_pod(&pod);
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if made.is_empty() => Err(e),
            Some(e) => {
                tracing::warn!(error = %e, "creating a pod network failed");
                Ok(made)
            }
            None => Ok(made),
        }
    }

    fn pod_network(&self, octet: u8) -> PodNetwork {
        let netns = format!("kemu{}-{octet}", self.slot);
        PodNetwork {
            netns_path: Path::new("/run/netns").join(&netns),
            netns,
            ip: Ipv4Addr::new(10, 244, self.slot, octet),
            host_veth: format!("kemu{}v{octet}", self.slot),
        }
    }

    /// The veth pair into the pod's (new, empty) namespace, its address, links up and route.
    fn plug(&self, host: &mut Rtnl, master: u32, pod: &PodNetwork) -> Result<()> {
        let ns = File::open(&pod.netns_path)
            .map_err(netlink(format!("opening {}", pod.netns_path.display())))?;
        let veth = &pod.host_veth;
        host.add_veth(veth, master, "eth0", ns.as_fd())
            .map_err(netlink(format!("adding veth {veth} into {}", pod.netns)))?;
        let in_pod = |what: &str| netlink(format!("{what} in {}", pod.netns));
        let mut inside = Rtnl::open_in(ns.as_fd()).map_err(in_pod("opening route netlink"))?;
        let eth0 = inside.link_index("eth0").map_err(in_pod("finding eth0"))?;
        inside
            .add_address(eth0, pod.ip, 24)
            .map_err(in_pod("adding the pod address"))?;
        inside.set_up(eth0).map_err(in_pod("setting eth0 up"))?;
        inside
            .set_up(LOOPBACK_INDEX)
            .map_err(in_pod("setting lo up"))?;
        inside
            .add_default_route(self.gateway())
            .map_err(in_pod("adding the default route"))
    }

    /// Kills what still runs in the pod's namespace, deletes it (its veth goes with it) and
    /// frees the IP. Best effort: failures are logged, never fatal.
    pub fn remove_pod(&self, pod: &PodNetwork) {
        remove_netns(&pod.netns);
        // Deleting the namespace deletes the veth pair too, asynchronously.
        if link_exists(&pod.host_veth)
            && let Err(e) = ip(&["link", "del", &pod.host_veth])
            && link_exists(&pod.host_veth)
        {
            tracing::warn!(error = %e, "removing a pod veth");
        }
        // The host's neighbour entry would keep the removed pod's MAC for this address.
        let _ = ip(&[
            "neigh",
            "flush",
            "to",
            &pod.ip.to_string(),
            "dev",
            &self.bridge_name(),
        ]);
        self.pods
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(pod.ip.octets()[3]);
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::super::bridge::{connect_from, list_netns, preflight};
    use super::*;

    fn namespaces_of(net: &ClusterNetwork) -> usize {
        let prefix = format!("kemu{}-", net.slot());
        list_netns()
            .iter()
            .filter(|n| n.starts_with(&prefix))
            .count()
    }

    fn ip_in(pod: &PodNetwork, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["-n", &pod.netns])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Root only (CI runs as root): a refill makes every missing network at once, pods take
    /// from the pool without making any, and each network works (address, links up, route,
    /// the host's veth on the bridge, the gateway reachable).
    #[test]
    fn the_pool_is_refilled_with_working_networks() {
        preflight().unwrap_or_else(|e| panic!("this test needs root and namespaces: {e}"));
        let net = ClusterNetwork::create().unwrap();
        net.fill_pool(4);
        assert_eq!((net.pooled(), namespaces_of(&net)), (4, 4));
        let taken: Vec<PodNetwork> = (0..3).map(|_| net.add_pod().unwrap()).collect();
        assert_eq!(
            (net.pooled(), namespaces_of(&net)),
            (1, 4),
            "taken from the pool, none made"
        );
        net.fill_pool(4);
        assert_eq!((net.pooled(), namespaces_of(&net)), (4, 7));
        let mut ips: Vec<Ipv4Addr> = taken.iter().map(|p| p.ip).collect();
        ips.extend(std::iter::from_fn(|| net.take_pooled()).map(|p| p.ip));
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), 7, "every network has its own address: {ips:?}");

        let listener = std::net::TcpListener::bind((net.gateway(), 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        for pod in &taken {
            let addr = ip_in(pod, &["-4", "-o", "addr", "show", "dev", "eth0"]);
            assert!(addr.contains(&format!("inet {}/24", pod.ip)), "{addr}");
            assert!(ip_in(pod, &["link", "show", "lo"]).contains(",UP"));
            let route = ip_in(pod, &["route", "show", "default"]);
            assert!(route.contains(&format!("via {}", net.gateway())), "{route}");
            let master = std::fs::read_link(format!("/sys/class/net/{}/master", pod.host_veth));
            assert!(
                master.unwrap().ends_with(net.bridge_name()),
                "{} is on the bridge",
                pod.host_veth
            );
            let out = connect_from(&pod.netns, net.gateway(), port);
            assert!(out.status.success(), "{out:?}");
            listener.accept().unwrap();
        }
        net.remove_pod(&taken[0]);
        assert!(!taken[0].netns_path.exists());
        assert!(!link_exists(&taken[0].host_veth));
    }

    /// Root only: with the pool empty a pod gets a network made for it; after shutdown
    /// nothing is made any more.
    #[test]
    fn an_empty_pool_makes_one_and_a_shut_network_none() {
        preflight().unwrap_or_else(|e| panic!("this test needs root and namespaces: {e}"));
        let net = ClusterNetwork::create().unwrap();
        let pod = net.add_pod().unwrap();
        assert!(pod.netns_path.exists());
        assert_eq!((net.pooled(), namespaces_of(&net)), (0, 1));
        net.shutdown();
        assert_eq!(namespaces_of(&net), 0);
        net.fill_pool(2);
        assert!(net.add_pod().is_err());
        assert_eq!((net.pooled(), namespaces_of(&net)), (0, 0));
    }
}
