//! DNS probe: one query for `name`/`type` sent straight to a configured server over UDP
//! or TCP (no resolver, no cache, no retries — like blackbox's dns prober), judged on
//! rcode, answers and the authoritative flag.
//!
//! Invariants: messages are encoded and decoded with hickory-proto; the socket I/O is
//! ours and bounded by the deadline; over UDP a reply with a foreign id or from another
//! address is ignored, not trusted.
//!
//! Values: `dns_rcode` (numeric), `dns_answers` (answer record count). Label `rcode`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use attest_config::wire::{FailureReason, Phase};
use attest_config::{DnsCheck, DnsTransport};
use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use regex_lite::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::net::{self, Failure, Outcome};
use super::{BuildError, Probe, ProbeFuture, compile_regex};

/// Largest DNS message we accept (the TCP length prefix allows no more).
const MAX_MESSAGE: usize = 65_535;

/// Standard mnemonics, index = rcode (RFC 1035, RFC 2136).
const RCODE_NAMES: [&str; 11] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE",
];

pub struct DnsProbe {
    server: SocketAddr,
    name: Name,
    record_type: RecordType,
    transport: DnsTransport,
    expect_rcode: u16,
    expect_answers: Vec<String>,
    answer_regex: Vec<Regex>,
    expect_authoritative: Option<bool>,
    targets: net::Targets,
}

impl DnsProbe {
    /// Confines the probe to `targets` (see [`net::Targets`]).
    pub fn confined(mut self, targets: net::Targets) -> Self {
        self.targets = targets;
        self
    }

    pub fn new(id: &str, spec: &DnsCheck) -> Result<Self, BuildError> {
        let server = SocketAddr::from_str(&spec.server).map_err(|_| {
            BuildError::invalid(id, format!("server {:?} must be ip:port", spec.server))
        })?;
        let mut name = Name::from_utf8(&spec.name)
            .map_err(|e| BuildError::invalid(id, format!("name {:?}: {e}", spec.name)))?;
        name.set_fqdn(true);
        let record_type =
            RecordType::from_str(&spec.record_type.to_ascii_uppercase()).map_err(|e| {
                BuildError::invalid(id, format!("record type {:?}: {e}", spec.record_type))
            })?;
        let expect_rcode = rcode_from_name(&spec.expect_rcode).ok_or_else(|| {
            BuildError::invalid(
                id,
                format!(
                    "expect_rcode {:?}: use a name like NOERROR or NXDOMAIN",
                    spec.expect_rcode
                ),
            )
        })?;
        let answer_regex = spec
            .expect_answer_regex
            .iter()
            .map(|p| compile_regex(id, p))
            .collect::<Result<_, _>>()?;
        Ok(DnsProbe {
            targets: net::Targets::any(),
            server,
            name,
            record_type,
            transport: spec.transport,
            expect_rcode,
            expect_answers: spec.expect_answers.clone(),
            answer_regex,
            expect_authoritative: spec.expect_authoritative,
        })
    }

    fn query(&self) -> Result<(u16, Vec<u8>), Failure> {
        let mut msg = Message::query();
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(self.name.clone(), self.record_type));
        msg.edns = Some(Edns::new());
        let bytes = msg.to_vec().map_err(|e| {
            Failure::new(
                FailureReason::Agent,
                Phase::Query,
                format!("cannot encode query: {e}"),
            )
        })?;
        Ok((msg.metadata.id, bytes))
    }

    async fn run(&self, deadline: Instant, out: &mut Outcome) -> Result<(), Failure> {
        self.targets.check(self.server, Phase::Connect)?;
        let (id, query) = self.query()?;
        let reply = match self.transport {
            DnsTransport::Udp => {
                out.timed(
                    Phase::Query,
                    deadline,
                    udp_exchange(self.server, id, &query),
                )
                .await?
            }
            DnsTransport::Tcp => {
                let mut tcp = out
                    .timed(Phase::Connect, deadline, net::connect(self.server))
                    .await?;
                out.timed(Phase::Query, deadline, tcp_exchange(&mut tcp, &query))
                    .await?
            }
        };
        let msg = Message::from_vec(&reply).map_err(|e| {
            Failure::new(
                FailureReason::Protocol,
                Phase::Query,
                format!("undecodable reply: {e}"),
            )
        })?;
        if msg.metadata.id != id {
            return Err(Failure::new(
                FailureReason::Protocol,
                Phase::Query,
                "reply id does not match query",
            ));
        }
        self.judge(&msg, out)
    }

    fn judge(&self, msg: &Message, out: &mut Outcome) -> Result<(), Failure> {
        let rcode = u16::from(msg.metadata.response_code);
        out.value("dns_rcode", f64::from(rcode));
        out.value("dns_answers", msg.answers.len() as f64);
        out.labels
            .insert("rcode".to_string(), rcode_name(msg.metadata.response_code));
        let fail = |m: String| Err(Failure::check(FailureReason::DnsAnswer, m));
        if rcode != self.expect_rcode {
            return fail(format!("rcode {}", rcode_name(msg.metadata.response_code)));
        }
        if let Some(want) = self.expect_authoritative
            && msg.metadata.authoritative != want
        {
            return fail(format!(
                "authoritative flag is {}",
                msg.metadata.authoritative
            ));
        }
        let answers: Vec<String> = msg.answers.iter().map(|r| r.data.to_string()).collect();
        if let Some(missing) = self.expect_answers.iter().find(|a| !answers.contains(a)) {
            return fail(format!("no answer {missing:?} in {answers:?}"));
        }
        if let Some(re) = self
            .answer_regex
            .iter()
            .find(|re| !answers.iter().any(|a| re.is_match(a)))
        {
            return fail(format!(
                "no answer matches {:?} in {answers:?}",
                re.as_str()
            ));
        }
        Ok(())
    }
}

impl Probe for DnsProbe {
    fn probe(&self, deadline: Instant) -> ProbeFuture<'_> {
        Box::pin(async move {
            let mut out = Outcome::default();
            let result = self.run(deadline, &mut out).await;
            out.into_report(result)
        })
    }
}

fn query_io(what: &str, e: &std::io::Error) -> Failure {
    let reason = if e.kind() == std::io::ErrorKind::ConnectionRefused {
        FailureReason::ConnectRefused
    } else {
        FailureReason::Connect
    };
    Failure::new(reason, Phase::Query, format!("{what}: {e}"))
}

/// Sends the query and waits for the reply carrying our id from the server's address.
async fn udp_exchange(server: SocketAddr, id: u16, query: &[u8]) -> Result<Vec<u8>, Failure> {
    let local: IpAddr = if server.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = UdpSocket::bind((local, 0))
        .await
        .map_err(|e| query_io("bind", &e))?;
    socket
        .connect(server)
        .await
        .map_err(|e| query_io("connect", &e))?;
    socket.send(query).await.map_err(|e| query_io("send", &e))?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let n = socket
            .recv(&mut buf)
            .await
            .map_err(|e| query_io("receive", &e))?;
        // A connected UDP socket only delivers datagrams from `server`; check the id.
        if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

/// One length-prefixed query and reply over TCP (RFC 1035 §4.2.2).
async fn tcp_exchange(
    stream: &mut tokio::net::TcpStream,
    query: &[u8],
) -> Result<Vec<u8>, Failure> {
    let len = u16::try_from(query.len())
        .map_err(|_| Failure::new(FailureReason::Agent, Phase::Query, "query too large"))?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream
        .write_all(&framed)
        .await
        .map_err(|e| query_io("send", &e))?;
    let mut len_buf = [0u8; 2];
    stream
        .read_exact(&mut len_buf)
        .await
        .map_err(|e| query_io("receive", &e))?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len_buf))];
    stream
        .read_exact(&mut reply)
        .await
        .map_err(|e| query_io("receive", &e))?;
    Ok(reply)
}

fn rcode_from_name(name: &str) -> Option<u16> {
    let upper = name.trim().to_ascii_uppercase();
    if let Ok(n) = upper.parse::<u16>() {
        return Some(n);
    }
    RCODE_NAMES
        .iter()
        .position(|n| *n == upper)
        .and_then(|i| u16::try_from(i).ok())
}

fn rcode_name(code: ResponseCode) -> String {
    let n = u16::from(code);
    RCODE_NAMES
        .get(usize::from(n))
        .map_or_else(|| n.to_string(), |s| (*s).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rcode_names_round_trip() {
        assert_eq!(rcode_from_name("noerror"), Some(0));
        assert_eq!(rcode_from_name("NXDOMAIN"), Some(3));
        assert_eq!(rcode_from_name("5"), Some(5));
        assert_eq!(rcode_from_name("BOGUS"), None);
        assert_eq!(rcode_name(ResponseCode::ServFail), "SERVFAIL");
        assert_eq!(rcode_name(<ResponseCode as From<u16>>::from(23)), "23");
    }
}
