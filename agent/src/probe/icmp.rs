//! ICMP echo probe with a small hand-written echo codec: unprivileged ICMP datagram
//! ("ping") sockets first, raw sockets when those are not allowed.
//!
//! Invariants: echoes are sent one after another, each waiting at most its share of
//! the remaining time, so `count` echoes always fit the deadline; a reply counts only
//! if its sequence number and payload token are ours (raw sockets see every ICMP
//! packet of the host, including our own requests on loopback). The probe is up when at
//! least one echo came back; no reply at all is reason `no_reply` in phase `rtt`.
//!
//! Values: `icmp_rtt_seconds` (mean of the replies), `icmp_packets_sent`,
//! `icmp_packets_received`, `icmp_packet_loss_ratio`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use attest_config::wire::{FailureReason, Phase};
use attest_config::{IcmpCheck, IpFamily};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::net::{self, Failure, Outcome};
use super::{BuildError, Probe, ProbeFuture};

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
const HEADER_LEN: usize = 8;
const TOKEN_LEN: usize = 8;

/// Distinguishes this probe's echoes from any other ICMP traffic.
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(0x6174_7465_7374_0000);

pub struct IcmpProbe {
    spec: IcmpCheck,
    targets: net::Targets,
}

impl IcmpProbe {
    /// Confines the probe to `targets` (see [`net::Targets`]).
    pub fn confined(mut self, targets: net::Targets) -> Self {
        self.targets = targets;
        self
    }

    /// Fails when the process may open neither kind of ICMP socket, with the remedy.
    pub fn new(id: &str, spec: &IcmpCheck) -> Result<Self, BuildError> {
        if spec.count == 0 {
            return Err(BuildError::invalid(id, "count must be at least 1"));
        }
        let v6 = spec.ip_family == IpFamily::Ipv6;
        match open_socket(v6) {
            Ok(_) => Ok(IcmpProbe {
                spec: spec.clone(),
                targets: net::Targets::any(),
            }),
            Err(e) if is_permission(&e) => Err(BuildError::IcmpNotPermitted(e.to_string())),
            Err(e) => Err(BuildError::invalid(
                id,
                format!("cannot open an ICMP socket: {e}"),
            )),
        }
    }

    async fn run(&self, deadline: Instant, out: &mut Outcome) -> Result<(), Failure> {
        let addr = out
            .timed(
                Phase::Resolve,
                deadline,
                net::resolve(&self.spec.host, 0, self.spec.ip_family, &self.targets),
            )
            .await?;
        out.labels
            .insert("address".to_string(), addr.ip().to_string());
        let pinger = Pinger::open(addr.ip())?;
        let mut rtts = Vec::new();
        let count = self.spec.count;
        for seq in 0..count {
            let left = deadline.saturating_duration_since(Instant::now());
            let share = left / (count - seq);
            if let Some(rtt) = pinger.echo(seq as u16, Instant::now() + share).await? {
                rtts.push(rtt);
            }
        }
        record(out, count, &rtts);
        if rtts.is_empty() {
            return Err(Failure::new(
                FailureReason::NoReply,
                Phase::Rtt,
                format!("no echo reply from {} to {count} requests", addr.ip()),
            ));
        }
        Ok(())
    }
}

fn record(out: &mut Outcome, sent: u32, rtts: &[Duration]) {
    let received = rtts.len() as f64;
    out.value("icmp_packets_sent", f64::from(sent));
    out.value("icmp_packets_received", received);
    out.value("icmp_packet_loss_ratio", 1.0 - received / f64::from(sent));
    if !rtts.is_empty() {
        let mean = rtts.iter().map(Duration::as_secs_f64).sum::<f64>() / received;
        out.value("icmp_rtt_seconds", mean);
        out.add_phase(Phase::Rtt, mean);
    }
}

impl Probe for IcmpProbe {
    fn probe(&self, deadline: Instant) -> ProbeFuture<'_> {
        Box::pin(async move {
            let mut out = Outcome::default();
            let result = self.run(deadline, &mut out).await;
            out.into_report(result)
        })
    }
}

fn is_permission(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied
        || matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES))
}

/// A ping socket if allowed, else a raw socket; `true` when raw (replies carry the
/// IPv4 header).
fn open_socket(v6: bool) -> io::Result<(Socket, bool)> {
    let (domain, proto) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    match Socket::new(domain, Type::DGRAM, Some(proto)) {
        Ok(s) => Ok((s, false)),
        Err(dgram_err) => match Socket::new(domain, Type::RAW, Some(proto)) {
            Ok(s) => Ok((s, true)),
            Err(raw_err) if is_permission(&raw_err) && !is_permission(&dgram_err) => Err(dgram_err),
            Err(raw_err) => Err(raw_err),
        },
    }
}

struct Pinger {
    socket: UdpSocket,
    raw: bool,
    target: IpAddr,
    token: [u8; TOKEN_LEN],
    ident: u16,
}

impl Pinger {
    fn open(target: IpAddr) -> Result<Self, Failure> {
        let agent = |e: io::Error| {
            Failure::new(
                FailureReason::Agent,
                Phase::Rtt,
                format!("icmp socket: {e}"),
            )
        };
        let (socket, raw) = open_socket(target.is_ipv6()).map_err(agent)?;
        socket.set_nonblocking(true).map_err(agent)?;
        let std_socket: std::net::UdpSocket = socket.into();
        let socket = UdpSocket::from_std(std_socket).map_err(agent)?;
        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        let ident = (std::process::id() as u16) ^ u16::from_be_bytes([token[6], token[7]]);
        Ok(Pinger {
            socket,
            raw,
            target,
            token,
            ident,
        })
    }

    /// Sends echo `seq` and waits until `until` for its reply; `None` when none came.
    async fn echo(&self, seq: u16, until: Instant) -> Result<Option<Duration>, Failure> {
        let packet = encode_request(self.target.is_ipv6(), self.ident, seq, &self.token);
        let sent = Instant::now();
        self.socket
            .send_to(&packet, SocketAddr::new(self.target, 0))
            .await
            .map_err(|e| {
                Failure::new(
                    FailureReason::Connect,
                    Phase::Rtt,
                    format!("send echo: {e}"),
                )
            })?;
        let mut buf = [0u8; 1500];
        loop {
            let recv = tokio::time::timeout_at(until, self.socket.recv_from(&mut buf)).await;
            let Ok(Ok((n, from))) = recv else {
                return Ok(None);
            };
            if from.ip() == self.target && self.is_our_reply(&buf[..n], seq) {
                return Ok(Some(sent.elapsed()));
            }
        }
    }

    fn is_our_reply(&self, datagram: &[u8], seq: u16) -> bool {
        let icmp = if self.raw && !self.target.is_ipv6() {
            strip_ipv4_header(datagram)
        } else {
            Some(datagram)
        };
        let want = if self.target.is_ipv6() {
            ECHO_REPLY_V6
        } else {
            ECHO_REPLY_V4
        };
        icmp.and_then(parse_echo)
            .is_some_and(|e| e.kind == want && e.seq == seq && e.payload.starts_with(&self.token))
    }
}

struct Echo<'a> {
    kind: u8,
    seq: u16,
    payload: &'a [u8],
}

fn parse_echo(icmp: &[u8]) -> Option<Echo<'_>> {
    if icmp.len() < HEADER_LEN {
        return None;
    }
    Some(Echo {
        kind: icmp[0],
        seq: u16::from_be_bytes([icmp[6], icmp[7]]),
        payload: &icmp[HEADER_LEN..],
    })
}

fn strip_ipv4_header(datagram: &[u8]) -> Option<&[u8]> {
    let ihl = usize::from(datagram.first()? & 0x0f) * 4;
    datagram.get(ihl..)
}

/// An echo request; the checksum is ours for IPv4, the kernel's for ICMPv6.
fn encode_request(v6: bool, ident: u16, seq: u16, token: &[u8; TOKEN_LEN]) -> Vec<u8> {
    let kind = if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 };
    let mut p = vec![kind, 0, 0, 0];
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(token);
    if !v6 {
        let sum = checksum(&p);
        p[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    p
}

/// RFC 1071 internet checksum.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_checksum_verifies() {
        let p = encode_request(false, 0x1234, 7, b"abcdefgh");
        assert_eq!(checksum(&p), 0, "a packet with its checksum sums to zero");
        let e = parse_echo(&p).unwrap();
        assert_eq!((e.kind, e.seq, e.payload), (8, 7, &b"abcdefgh"[..]));
    }

    #[test]
    fn short_or_headerless_input_is_rejected() {
        assert!(parse_echo(&[0, 0, 0]).is_none());
        assert!(strip_ipv4_header(&[]).is_none());
        assert_eq!(strip_ipv4_header(&[0x45; 24]).map(<[u8]>::len), Some(4));
    }
}
