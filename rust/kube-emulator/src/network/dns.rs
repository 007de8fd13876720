//! Cluster DNS: a small authoritative responder for `<cluster domain>` over UDP and TCP.
//!
//! Hand-written instead of hickory-server: it answers A (and CNAME for ExternalName Services)
//! from the [`ClusterView`], NODATA for other types of known names, NXDOMAIN for every other
//! name (authoritative inside the cluster domain; nothing is forwarded) and REFUSED for classes
//! other than IN. That is a few
//! hundred lines of RFC 1035 instead of a resolver stack to compile.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

use super::view::{ClusterView, DnsAnswer};

/// TTL of every answer, as CoreDNS's kubernetes plugin (5 s).
const TTL: u32 = 5;
/// Classic DNS over UDP without EDNS: answers beyond this set TC and the client retries on TCP.
const UDP_LIMIT: usize = 512;
/// A TCP client that sends nothing for this long is dropped.
const TCP_IDLE: Duration = Duration::from_secs(10);

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError = 0,
    FormErr = 1,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
}

/// One parsed question (the only kind of query resolvers send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    flags: u16,
    /// The question section as sent (name, type, class), echoed in the answer.
    question: Vec<u8>,
    /// Lower-case name without the trailing dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
}

/// Parses a query; Err carries the id (if readable) and the rcode to answer with.
pub fn parse_query(msg: &[u8]) -> Result<Query, (Option<u16>, Rcode)> {
    if msg.len() < 12 {
        return Err((None, Rcode::FormErr));
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    let fail = |rcode| Err((Some(id), rcode));
    if flags & 0x8000 != 0 {
        return fail(Rcode::FormErr);
    }
    if (flags >> 11) & 0xf != 0 {
        return fail(Rcode::NotImp);
    }
    if u16::from_be_bytes([msg[4], msg[5]]) != 1 {
        return fail(Rcode::FormErr);
    }
    let mut labels = Vec::new();
    let mut at = 12;
    loop {
        let Some(&len) = msg.get(at) else {
            return fail(Rcode::FormErr);
        };
        at += 1;
        if len == 0 {
            break;
        }
        // Compression pointers (0xC0) and extended label types never appear in a question.
        if len & 0xc0 != 0 || at + len as usize > msg.len() || at > 255 + 12 {
            return fail(Rcode::FormErr);
        }
        let label = &msg[at..at + len as usize];
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += len as usize;
    }
    let Some(tail) = msg.get(at..at + 4) else {
        return fail(Rcode::FormErr);
    };
    Ok(Query {
        id,
        flags,
        question: msg[12..at + 4].to_vec(),
        name: labels.join("."),
        qtype: u16::from_be_bytes([tail[0], tail[1]]),
        qclass: u16::from_be_bytes([tail[2], tail[3]]),
    })
}

/// A header-only answer (no question) for queries that could not be parsed.
pub fn error_response(id: u16, rcode: Rcode) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(0x8000u16 | rcode as u16).to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    out
}

/// Encodes `name` as DNS labels (the CNAME target).
fn encode_name(name: &str, out: &mut Vec<u8>) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let bytes = &label.as_bytes()[..label.len().min(63)];
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    out.push(0);
}

/// The answer for one query against the view; `limit` caps the size (TC set when it bites).
pub fn answer(view: &ClusterView, domain: &str, q: &Query, limit: usize) -> Vec<u8> {
    let in_domain = q.name == domain || q.name.ends_with(&format!(".{domain}"));
    let (rcode, records): (Rcode, Vec<(u16, Vec<u8>)>) = if q.qclass != CLASS_IN {
        (Rcode::Refused, Vec::new())
    } else if !in_domain {
        // Nothing is forwarded. NXDOMAIN (not REFUSED) so that resolvers walking the search path
        // end with "no such name" instead of a server failure they would retry or report.
        (Rcode::NxDomain, Vec::new())
    } else {
        match view.names.get(&q.name) {
            None => (Rcode::NxDomain, Vec::new()),
            Some(DnsAnswer::A(ips)) if matches!(q.qtype, TYPE_A | TYPE_ANY) => (
                Rcode::NoError,
                ips.iter()
                    .map(|ip| (TYPE_A, ip.octets().to_vec()))
                    .collect(),
            ),
            Some(DnsAnswer::Cname(target)) => {
                let mut rdata = Vec::new();
                encode_name(target, &mut rdata);
                (Rcode::NoError, vec![(TYPE_CNAME, rdata)])
            }
            // A known name without records of this type (AAAA, SRV, ...): NODATA.
            Some(DnsAnswer::A(_)) => (Rcode::NoError, Vec::new()),
        }
    };
    let authoritative = in_domain && rcode != Rcode::Refused;
    let mut flags = 0x8000 | (q.flags & 0x0100) | rcode as u16;
    if authoritative {
        flags |= 0x0400;
    }
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&q.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&q.question);
    let mut count: u16 = 0;
    for (rtype, rdata) in &records {
        // Name: a pointer to the question's name at offset 12.
        if out.len() + 12 + rdata.len() > limit {
            out[2] |= 0x02; // TC
            break;
        }
        out.extend_from_slice(&[0xc0, 0x0c]);
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
        count += 1;
    }
    out[6..8].copy_from_slice(&count.to_be_bytes());
    out
}

fn respond(
    view: &watch::Receiver<Arc<ClusterView>>,
    domain: &str,
    msg: &[u8],
    limit: usize,
) -> Option<Vec<u8>> {
    match parse_query(msg) {
        Ok(q) => {
            let view = view.borrow().clone();
            Some(answer(&view, domain, &q, limit))
        }
        Err((Some(id), rcode)) => Some(error_response(id, rcode)),
        Err((None, _)) => None,
    }
}

/// The bound DNS sockets; [`DnsServer::serve`] answers until the task is dropped.
pub struct DnsServer {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl DnsServer {
    /// Binds UDP and TCP on `addr` (port 0: a free port, the same for both when possible).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let tcp = TcpListener::bind(addr).await?;
        let udp = UdpSocket::bind(tcp.local_addr()?).await?;
        Ok(Self { udp, tcp })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    pub async fn serve(self, view: watch::Receiver<Arc<ClusterView>>, domain: String) {
        let domain: Arc<str> = domain.to_ascii_lowercase().into();
        let tcp_view = view.clone();
        let tcp_domain = domain.clone();
        let tcp = async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                match self.tcp.accept().await {
                    Ok((stream, _)) => {
                        let (view, domain) = (tcp_view.clone(), tcp_domain.clone());
                        conns.spawn(serve_tcp(stream, view, domain));
                    }
                    Err(e) => tracing::debug!(error = %e, "dns tcp accept failed"),
                }
                while conns.try_join_next().is_some() {}
            }
        };
        let udp = async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let (n, peer) = match self.udp.recv_from(&mut buf).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::debug!(error = %e, "dns udp receive failed");
                        continue;
                    }
                };
                if let Some(reply) = respond(&view, &domain, &buf[..n], UDP_LIMIT)
                    && let Err(e) = self.udp.send_to(&reply, peer).await
                {
                    tracing::debug!(error = %e, %peer, "dns udp send failed");
                }
            }
        };
        tokio::join!(tcp, udp);
    }
}

async fn serve_tcp(
    mut stream: TcpStream,
    view: watch::Receiver<Arc<ClusterView>>,
    domain: Arc<str>,
) {
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        if stream.read_exact(&mut msg).await.is_err() {
            return;
        }
        let Some(reply) = respond(&view, &domain, &msg, u16::MAX as usize) else {
            return;
        };
        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

/// The nameserver line of a pod's resolv.conf for a DNS address (documentation helper).
pub fn resolv_conf(nameserver: Ipv4Addr, namespace: &str, domain: &str) -> String {
    format!(
        "nameserver {nameserver}\nsearch {namespace}.svc.{domain} svc.{domain} {domain}\noptions ndots:5\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        encode_name(name, &mut m);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        m
    }

    fn view() -> ClusterView {
        let mut v = ClusterView::default();
        let ips = (1..=40).map(|i| Ipv4Addr::new(10, 244, 1, i)).collect();
        v.names.insert(
            "web.apps.svc.cluster.local".into(),
            DnsAnswer::A(vec![Ipv4Addr::new(10, 96, 1, 20)]),
        );
        v.names
            .insert("big.apps.svc.cluster.local".into(), DnsAnswer::A(ips));
        v.names.insert(
            "ext.apps.svc.cluster.local".into(),
            DnsAnswer::Cname("db.example.com".into()),
        );
        v
    }

    fn ask(name: &str, qtype: u16, limit: usize) -> Vec<u8> {
        let q = parse_query(&query(0xbeef, name, qtype)).unwrap();
        answer(&view(), "cluster.local", &q, limit)
    }

    fn rcode(reply: &[u8]) -> u8 {
        reply[3] & 0x0f
    }

    fn ancount(reply: &[u8]) -> u16 {
        u16::from_be_bytes([reply[6], reply[7]])
    }

    #[test]
    fn known_names_answer_a_records_case_insensitively() {
        let r = ask("WEB.apps.svc.cluster.local", TYPE_A, UDP_LIMIT);
        assert_eq!(&r[..2], &[0xbe, 0xef]);
        assert_eq!((rcode(&r), ancount(&r)), (0, 1));
        assert_eq!(&r[r.len() - 4..], &[10, 96, 1, 20]);
        assert_eq!(r[2] & 0x84, 0x84, "a response, authoritative");
        assert_eq!(&r[12..12 + 4], b"\x03WEB", "the question is echoed as sent");
    }

    #[test]
    fn other_types_get_nodata_and_unknown_or_outside_names_nxdomain() {
        let aaaa = ask("web.apps.svc.cluster.local", 28, UDP_LIMIT);
        assert_eq!((rcode(&aaaa), ancount(&aaaa)), (0, 0));
        let missing = ask("nope.apps.svc.cluster.local", TYPE_A, UDP_LIMIT);
        assert_eq!((rcode(&missing), ancount(&missing)), (3, 0));
        assert_eq!(
            missing[2] & 0x04,
            0x04,
            "authoritative for the cluster domain"
        );
        let outside = ask("example.com", TYPE_A, UDP_LIMIT);
        assert_eq!(
            (rcode(&outside), outside[2] & 0x04),
            (3, 0),
            "NXDOMAIN, not authoritative"
        );
        let lookalike = ask("evilcluster.local", TYPE_A, UDP_LIMIT);
        assert_eq!((rcode(&lookalike), lookalike[2] & 0x04), (3, 0));
        let mut chaos = query(9, "version.bind", TYPE_A);
        let n = chaos.len();
        chaos[n - 1] = 3; // class CH
        let q = parse_query(&chaos).unwrap();
        assert_eq!(
            rcode(&answer(&view(), "cluster.local", &q, UDP_LIMIT)),
            5,
            "REFUSED"
        );
    }

    #[test]
    fn external_names_answer_a_cname_and_large_answers_truncate_over_udp() {
        let c = ask("ext.apps.svc.cluster.local", TYPE_A, UDP_LIMIT);
        assert_eq!(ancount(&c), 1);
        assert!(c.ends_with(b"\x02db\x07example\x03com\x00"));
        let big = ask("big.apps.svc.cluster.local", TYPE_A, UDP_LIMIT);
        assert!(big.len() <= UDP_LIMIT && big[2] & 0x02 != 0, "TC set");
        assert!(ancount(&big) < 40);
        let tcp = ask("big.apps.svc.cluster.local", TYPE_A, u16::MAX as usize);
        assert_eq!((ancount(&tcp), tcp[2] & 0x02), (40, 0));
    }

    #[test]
    fn malformed_queries_are_rejected() {
        assert_eq!(parse_query(&[0; 5]), Err((None, Rcode::FormErr)));
        let mut pointer = query(7, "web", TYPE_A);
        pointer[12] = 0xc0;
        assert_eq!(parse_query(&pointer), Err((Some(7), Rcode::FormErr)));
        let mut update = query(8, "web", TYPE_A);
        update[2] = 0x28; // opcode 5 (UPDATE)
        assert_eq!(parse_query(&update), Err((Some(8), Rcode::NotImp)));
        assert_eq!(rcode(&error_response(8, Rcode::NotImp)), 4);
    }
}
