//! Which pod address (last octet of the slot's /24) a new pod network gets: the next free one
//! after the last handed out, wrapping around (as the CNI host-local IPAM does), not the lowest
//! free one. Reusing the address of a pod removed a moment ago made the next pod unreachable
//! for up to ~45 s: the host and the other pods still held the old pod's MAC address for it in
//! their neighbour (ARP) caches, REACHABLE for 15-45 s, and frames to the old MAC are dropped
//! by the new pod (a StatefulSet or Deployment redeployed right after `delete --all` took
//! 30-34 s instead of 5-10 s to be ready).

use std::collections::BTreeSet;

/// The first and last pod address (`.1` is the gateway, `.255` broadcast).
const FIRST: u8 = 2;
const LAST: u8 = 254;

/// The addresses in use, and where the next search starts.
#[derive(Debug)]
pub struct PodIps {
    used: BTreeSet<u8>,
    next: u8,
}

impl Default for PodIps {
    fn default() -> Self {
        Self {
            used: BTreeSet::new(),
            next: FIRST,
        }
    }
}

impl PodIps {
    /// Takes the next free address at or after the last one handed out; None when all are used.
    pub fn take(&mut self) -> Option<u8> {
        let after = (self.next..=LAST).chain(FIRST..self.next);
        let free = after.into_iter().find(|o| !self.used.contains(o))?;
        self.used.insert(free);
        self.next = if free == LAST { FIRST } else { free + 1 };
        Some(free)
    }

    pub fn release(&mut self, octet: u8) {
        self.used.remove(&octet);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_released_address_is_handed_out_again_only_after_all_others() {
        let mut ips = PodIps::default();
        assert_eq!((ips.take(), ips.take()), (Some(2), Some(3)));
        ips.release(2);
        assert_eq!(ips.take(), Some(4), "not the address just released");
        let rest: Vec<u8> = std::iter::from_fn(|| ips.take()).collect();
        // 5..=254, then the one released long ago; 3 and 4 are still in use.
        assert_eq!(rest.len(), 251);
        assert_eq!(rest.last(), Some(&2));
        assert_eq!(ips.take(), None, "the /24 is full");
        ips.release(100);
        assert_eq!(ips.take(), Some(100));
    }
}
