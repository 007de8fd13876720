//! The few rtnetlink requests a pod network needs (veth on the bridge with its peer in the pod's
//! namespace, address, links up, default route), sent from the emulator itself: each `ip` run
//! they replace cost a fork and exec, 2-20 ms on a loaded machine, and a pod network took ~10 of
//! them (docs/performance/kube-emulator.md). Safe code only: the socket is rustix's, the
//! messages are built here as bytes (linux/rtnetlink.h, linux/if_link.h, linux/veth.h).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use rustix::thread::LinkNameSpaceType;

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_GATEWAY: u16 = 5;
const IFF_UP: u32 = 0x1;
const AF_INET: u8 = 2;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RTN_UNICAST: u8 = 1;
/// The loopback device is always index 1 in a new network namespace.
pub const LOOPBACK_INDEX: u32 = 1;

/// One rtnetlink request being built: header, fixed part, attributes (4-byte aligned).
struct Message(Vec<u8>);

impl Message {
    fn new(kind: u16, flags: u16, fixed: &[u8]) -> Self {
        let mut b = Vec::with_capacity(128);
        b.extend_from_slice(&0u32.to_ne_bytes()); // length, set in `finish`
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes()); // sequence, set in `finish`
        b.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        b.extend_from_slice(fixed);
        Self(b)
    }

    fn pad(&mut self) {
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }

    fn attr(&mut self, kind: u16, payload: &[u8]) -> &mut Self {
        self.0
            .extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(payload);
        self.pad();
        self
    }

    fn name(&mut self, kind: u16, name: &str) -> &mut Self {
        let mut z = name.as_bytes().to_vec();
        z.push(0);
        self.attr(kind, &z)
    }

    /// An attribute holding the attributes (and fixed bytes) `inner` appends.
    fn nested(&mut self, kind: u16, inner: impl FnOnce(&mut Self)) -> &mut Self {
        let start = self.0.len();
        self.attr(kind, &[]);
        inner(self);
        let len = (self.0.len() - start) as u16;
        self.0[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[0..4].copy_from_slice(&len.to_ne_bytes());
        self.0[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.0
    }
}

/// `struct ifinfomsg`: family, type, index, flags, change mask.
fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m[12..16].copy_from_slice(&change.to_ne_bytes());
    m
}

/// A route netlink socket in one network namespace.
pub struct Rtnl {
    fd: OwnedFd,
    seq: u32,
}

impl Rtnl {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            // NETLINK_ROUTE is protocol 0, the default.
            None,
        )?;
        Ok(Self { fd, seq: 0 })
    }

    /// A socket in the network namespace `netns` (e.g. `/run/netns/<name>` opened): created by
    /// a short-lived thread that enters the namespace (a socket stays in the namespace it was
    /// created in; the emulator's own threads never leave the host's).
    pub fn open_in(netns: BorrowedFd<'_>) -> io::Result<Self> {
        std::thread::scope(|s| {
            s.spawn(|| {
                rustix::thread::move_into_link_name_space(netns, Some(LinkNameSpaceType::Network))?;
                Self::open()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the netns thread panicked")))
        })
    }

    /// Sends one request and waits for its acknowledgement; returns the reply message that
    /// came before it (for a GET), if any.
    fn request(&mut self, m: Message) -> io::Result<Vec<u8>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        rustix::net::send(&self.fd, &m.finish(seq), SendFlags::empty())?;
        let mut buf = vec![0u8; 32 * 1024];
        let mut reply = Vec::new();
        // Bounded: the kernel answers a request with at most a reply and an acknowledgement.
        for _ in 0..16 {
            let (n, _) = rustix::net::recv(&self.fd, &mut buf[..], RecvFlags::empty())?;
            let mut at = 0;
            while at + 16 <= n {
                let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
                let kind = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().expect("2 bytes"));
                let their = u32::from_ne_bytes(buf[at + 8..at + 12].try_into().expect("4 bytes"));
                if len < 16 || at + len > n {
                    return Err(io::Error::other("truncated netlink reply"));
                }
                if their == seq {
                    if kind == NLMSG_ERROR {
                        let code =
                            i32::from_ne_bytes(buf[at + 16..at + 20].try_into().expect("4 bytes"));
                        return match code {
                            0 => Ok(reply),
                            e => Err(io::Error::from_raw_os_error(-e)),
                        };
                    }
                    reply = buf[at..at + len].to_vec();
                }
                at += len.next_multiple_of(4);
            }
        }
        Err(io::Error::other("no netlink acknowledgement"))
    }

    /// The index of link `name`.
    pub fn link_index(&mut self, name: &str) -> io::Result<u32> {
        let mut m = Message::new(RTM_GETLINK, 0, &ifinfomsg(0, 0, 0));
        m.name(IFLA_IFNAME, name);
        let reply = self.request(m)?;
        // nlmsghdr (16) then ifinfomsg: the index at bytes 4..8 of it.
        reply
            .get(20..24)
            .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
            .ok_or_else(|| io::Error::other(format!("no link {name} in the reply")))
    }

    /// Creates veth `name`, up and enslaved to the bridge `master`, with its peer `peer` in
    /// the network namespace `peer_netns` (down until set up there).
    pub fn add_veth(
        &mut self,
        name: &str,
        master: u32,
        peer: &str,
        peer_netns: BorrowedFd<'_>,
    ) -> io::Result<()> {
        let mut m = Message::new(
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            &ifinfomsg(0, IFF_UP, IFF_UP),
        );
        m.name(IFLA_IFNAME, name)
            .attr(IFLA_MASTER, &master.to_ne_bytes())
            .nested(IFLA_LINKINFO, |m| {
                m.name(IFLA_INFO_KIND, "veth").nested(IFLA_INFO_DATA, |m| {
                    m.nested(VETH_INFO_PEER, |m| {
                        m.0.extend_from_slice(&ifinfomsg(0, 0, 0));
                        m.name(IFLA_IFNAME, peer).attr(
                            IFLA_NET_NS_FD,
                            &(peer_netns.as_raw_fd() as u32).to_ne_bytes(),
                        );
                    });
                });
            });
        self.request(m).map(drop)
    }

    /// Sets link `index` up.
    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        let m = Message::new(RTM_NEWLINK, 0, &ifinfomsg(index, IFF_UP, IFF_UP));
        self.request(m).map(drop)
    }

    /// Adds `ip/prefix` to link `index`.
    pub fn add_address(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> io::Result<()> {
        // struct ifaddrmsg: family, prefix length, flags, scope (universe), index.
        let mut fixed = vec![AF_INET, prefix, 0, 0];
        fixed.extend_from_slice(&index.to_ne_bytes());
        let mut m = Message::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &fixed);
        m.attr(IFA_LOCAL, &ip.octets())
            .attr(IFA_ADDRESS, &ip.octets());
        self.request(m).map(drop)
    }

    /// Adds the default route via `gateway` (main table).
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> io::Result<()> {
        // struct rtmsg: family, dst/src length, tos, table, protocol, scope, type, flags.
        let fixed = [AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, 0, RTN_UNICAST];
        let mut fixed = fixed.to_vec();
        fixed.extend_from_slice(&0u32.to_ne_bytes());
        let mut m = Message::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &fixed);
        m.attr(RTA_GATEWAY, &gateway.octets());
        self.request(m).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_aligned_and_nested_lengths_cover_their_contents() {
        let mut m = Message::new(RTM_NEWLINK, NLM_F_CREATE, &ifinfomsg(0, IFF_UP, IFF_UP));
        m.name(IFLA_IFNAME, "kemu1v2").nested(IFLA_LINKINFO, |m| {
            m.name(IFLA_INFO_KIND, "veth");
        });
        let b = m.finish(7);
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize,
            b.len()
        );
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 7);
        let flags = u16::from_ne_bytes(b[6..8].try_into().unwrap());
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE);
        // "kemu1v2\0" is 8 bytes: attribute length 12, no padding.
        assert_eq!(&b[32..36], &[12, 0, 3, 0]);
        assert_eq!(&b[36..44], b"kemu1v2\0");
        // The nested attribute: its header (4) + IFLA_INFO_KIND "veth\0" (4 + 5, padded to 12).
        assert_eq!(u16::from_ne_bytes(b[44..46].try_into().unwrap()), 4 + 12);
        assert_eq!(&b[48..52], &[9, 0, 1, 0]);
        assert_eq!(b.len(), 44 + 16);
        assert!(b.len().is_multiple_of(4));
    }

    /// Root only (CI runs as root): an error from the kernel comes back as the errno.
    #[test]
    fn kernel_errors_come_back_as_errno() {
        super::super::bridge::preflight()
            .unwrap_or_else(|e| panic!("this test needs root and namespaces: {e}"));
        let mut rtnl = Rtnl::open().unwrap();
        let err = rtnl.link_index("kemu-no-such").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(19), "ENODEV: {err}");
        assert_eq!(rtnl.link_index("lo").unwrap(), LOOPBACK_INDEX);
    }
}
