//! TCP probe: connect, optional TLS, then line-based send/expect steps for banner
//! checks (SMTP, SSH, Redis inline commands...).
//!
//! Semantics: `send` writes the text followed by CRLF (accepted by the line protocols
//! this targets); `expect` reads lines until one matches its regex — a closed
//! connection before a match fails with reason `expect`. Lines are capped at
//! [`MAX_LINE_BYTES`] so a peer cannot make the agent buffer without bound.
//!
//! Values: for TLS, `tls_earliest_cert_expiry_seconds` and the label `tls_version`.
//! Label `address`: the address probed.

use attest_config::wire::{FailureReason, Phase};
use attest_config::{TcpCheck, TcpStep};
use regex_lite::Regex;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::time::Instant;

use super::net::{self, Failure, Outcome};
use super::tls_client::TlsSetup;
use super::{BuildError, Probe, ProbeFuture, compile_regex};

/// Longest line an `expect` step reads before giving up on the peer.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

enum Step {
    Send(Vec<u8>),
    Expect(Regex),
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct TcpProbe {
    host: String,
    port: u16,
    spec: TcpCheck,
    tls: Option<std::sync::Arc<TlsSetup>>,
    steps: Vec<Step>,
    targets: net::Targets,
}

impl TcpProbe {
    /// Confines the probe to `targets` (see [`net::Targets`]).
    pub fn confined(mut self, targets: net::Targets) -> Self {
        self.targets = targets;
        self
    }

    pub fn new(id: &str, spec: &TcpCheck) -> Result<Self, BuildError> {
        let (host, port) = net::split_host_port(&spec.address).ok_or_else(|| {
            BuildError::invalid(id, format!("address {:?} is not host:port", spec.address))
        })?;
        let tls = spec
            .tls
            .as_ref()
            .map(|t| TlsSetup::shared(t, &[]))
            .transpose()?;
        let steps = spec
            .steps
            .iter()
            .map(|s| match s {
                TcpStep::Send(text) => Ok(Step::Send(format!("{text}\r\n").into_bytes())),
                TcpStep::Expect(pat) => compile_regex(id, pat).map(Step::Expect),
            })
            .collect::<Result<_, _>>()?;
        Ok(TcpProbe {
            targets: net::Targets::any(),
            host,
            port,
            spec: spec.clone(),
            tls,
            steps,
        })
    }

    async fn run(&self, deadline: Instant, out: &mut Outcome) -> Result<(), Failure> {
        let addr = out
            .timed(
                Phase::Resolve,
                deadline,
                net::resolve(&self.host, self.port, self.spec.ip_family, &self.targets),
            )
            .await?;
        out.labels.insert("address".to_string(), addr.to_string());
        let tcp = out
            .timed(Phase::Connect, deadline, net::connect(addr))
            .await?;
        let stream: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let mut facts = Default::default();
                let handshake = async {
                    let (result, f) = tls.handshake(tcp, &self.host).await;
                    facts = f;
                    result
                };
                let result = out.timed(Phase::Tls, deadline, handshake).await;
                facts.record(out);
                Box::new(result?)
            }
        };
        if self.steps.is_empty() {
            return Ok(());
        }
        let mut progress = Progress::default();
        let result = out
            .timed(
                Phase::Exchange,
                deadline,
                self.exchange(stream, &mut progress),
            )
            .await;
        result.map_err(|f| progress.explain_timeout(f))
    }

    async fn exchange(&self, stream: Box<dyn Io>, progress: &mut Progress) -> Result<(), Failure> {
        let mut stream = BufReader::new(stream);
        for step in &self.steps {
            match step {
                Step::Send(bytes) => send(&mut stream, bytes).await?,
                Step::Expect(re) => expect(&mut stream, re, progress).await?,
            }
        }
        Ok(())
    }
}

/// Where the exchange stood, so a timeout while lines kept arriving without a match
/// is reported as `expect` (the peer answered, wrongly) rather than a bare timeout.
#[derive(Debug, Default)]
struct Progress {
    expecting: Option<String>,
    last_line: Option<String>,
}

impl Progress {
    fn explain_timeout(self, failure: Failure) -> Failure {
        match (failure.reason, self.expecting, self.last_line) {
            (FailureReason::Timeout, Some(pattern), Some(line)) => Failure::new(
                FailureReason::Expect,
                Phase::Exchange,
                format!("no line matched {pattern:?} before the timeout (last line {line:?})"),
            ),
            _ => failure,
        }
    }
}

impl Probe for TcpProbe {
    fn probe(&self, deadline: Instant) -> ProbeFuture<'_> {
        Box::pin(async move {
            let mut out = Outcome::default();
            let result = self.run(deadline, &mut out).await;
            out.into_report(result)
        })
    }
}

fn io_failure(what: &str, e: &std::io::Error) -> Failure {
    Failure::new(
        FailureReason::Connect,
        Phase::Exchange,
        format!("{what}: {e}"),
    )
}

async fn send<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> Result<(), Failure> {
    stream
        .write_all(bytes)
        .await
        .map_err(|e| io_failure("send", &e))?;
    stream.flush().await.map_err(|e| io_failure("send", &e))
}

/// Reads lines until one matches `re`; EOF or an over-long line fails the step.
async fn expect<S: AsyncBufReadExt + Unpin>(
    stream: &mut S,
    re: &Regex,
    progress: &mut Progress,
) -> Result<(), Failure> {
    progress.expecting = Some(re.as_str().to_string());
    progress.last_line = None;
    loop {
        let Some(line) = read_line(stream).await? else {
            return Err(Failure::new(
                FailureReason::Expect,
                Phase::Exchange,
                format!(
                    "connection closed before a line matched {:?} (last line {:?})",
                    re.as_str(),
                    progress.last_line.as_deref().unwrap_or("")
                ),
            ));
        };
        if re.is_match(&line) {
            progress.expecting = None;
            return Ok(());
        }
        progress.last_line = Some(line);
    }
}

/// One line without its terminator, or `None` at EOF.
async fn read_line<S: AsyncBufReadExt + Unpin>(stream: &mut S) -> Result<Option<String>, Failure> {
    let mut buf = Vec::new();
    loop {
        let chunk = stream
            .fill_buf()
            .await
            .map_err(|e| io_failure("receive", &e))?;
        if chunk.is_empty() {
            return Ok((!buf.is_empty()).then(|| line_text(&buf)));
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        buf.extend_from_slice(&chunk[..take]);
        stream.consume(take);
        if done {
            return Ok(Some(line_text(&buf)));
        }
        if buf.len() > MAX_LINE_BYTES {
            return Err(Failure::new(
                FailureReason::Protocol,
                Phase::Exchange,
                format!("line longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
    }
}

fn line_text(buf: &[u8]) -> String {
    let text = String::from_utf8_lossy(buf);
    text.trim_end_matches(['\r', '\n']).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_split_and_trim() {
        let mut input: &[u8] = b"220 hello\r\nsecond\nlast";
        assert_eq!(
            read_line(&mut input).await.unwrap().as_deref(),
            Some("220 hello")
        );
        assert_eq!(
            read_line(&mut input).await.unwrap().as_deref(),
            Some("second")
        );
        assert_eq!(
            read_line(&mut input).await.unwrap().as_deref(),
            Some("last")
        );
        assert_eq!(read_line(&mut input).await.unwrap(), None);
    }

    #[tokio::test]
    async fn overlong_line_is_a_protocol_failure() {
        let data = vec![b'x'; MAX_LINE_BYTES + 10];
        let mut input = BufReader::with_capacity(1024, &data[..]);
        let err = read_line(&mut input).await.unwrap_err();
        assert_eq!(err.reason, FailureReason::Protocol);
    }
}
