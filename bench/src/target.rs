//! A loopback probe target for the agent-memory run: answers every HTTP request with a
//! 612-byte page (the size of nginx's default page) and closes the connection, so HTTP
//! checks succeed and TCP checks (connect, then close) are accepted. It runs in its own
//! process (`attest-probe-bench serve-target`), so its CPU and memory are never charged to
//! the agent being measured.
//!
//! Invariants: binds 127.0.0.1 only; a request head larger than `MAX_HEAD` or slower than
//! `READ_TIMEOUT` is dropped; nothing a client sends can panic the server.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head read before the connection is dropped.
const MAX_HEAD: usize = 8 * 1024;
/// How long a connection may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of the page body, as nginx's default `index.html`.
const PAGE_BYTES: usize = 612;

/// Serves the page on `127.0.0.1:port` until the process is stopped.
pub async fn serve(port: u16) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let response = std::sync::Arc::new(response());
    loop {
        let (stream, _) = listener.accept().await?;
        let response = response.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(READ_TIMEOUT, answer(stream, &response)).await;
        });
    }
}

fn response() -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {PAGE_BYTES}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    r.resize(r.len() + PAGE_BYTES, b'x');
    r
}

/// Reads one request head and writes the page; a connection that closes without a request
/// (a TCP check) just ends.
async fn answer(mut stream: TcpStream, response: &[u8]) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if head.len() > MAX_HEAD {
            return Ok(());
        }
    }
    stream.write_all(response).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_a_complete_http_answer_of_612_bytes() {
        let r = response();
        let text = String::from_utf8(r).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(head.contains("Content-Length: 612"), "{head}");
        assert_eq!(body.len(), PAGE_BYTES);
    }

    #[tokio::test]
    async fn a_request_gets_the_page_and_a_bare_connect_is_accepted() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        tokio::spawn(serve(port));
        let connect = || async {
            for _ in 0..200 {
                if let Ok(s) = TcpStream::connect(("127.0.0.1", port)).await {
                    return s;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the target never listened on {port}");
        };
        drop(connect().await);
        let mut s = connect().await;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.expect("read");
        assert!(got.starts_with(b"HTTP/1.1 200 OK"));
        assert!(got.ends_with(&[b'x'; 16]));
        assert_eq!(got.len(), response().len());
    }
}
