//! A minimal HTTP/1.1 client for the CLI's own requests to nodes (`/status`, `/admin/...`),
//! over TLS and with the admin token when the nodes ask for them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;

/// How to reach the nodes' HTTP ports.
#[derive(Clone, Default)]
pub struct Access {
    /// HTTPS, trusting this configuration's CA.
    pub tls: Option<Arc<ClientConfig>>,
    /// The admin token, sent as `Authorization: Bearer …`.
    pub token: Option<String>,
}

impl Access {
    /// From the CLI's `--tls-ca-cert-file` and `--token-file`.
    pub fn from_files(
        ca: Option<&std::path::Path>,
        token: Option<&std::path::Path>,
    ) -> anyhow::Result<Access> {
        Ok(Access {
            tls: ca.map(crate::tls::client_config).transpose()?,
            token: token
                .map(|path| crate::auth::read_secret_text(path, "admin token"))
                .transpose()?,
        })
    }
}

/// A connection to a node's HTTP port, plain or TLS.
pub trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

/// Connects to `addr` (with TLS when `access` says so) and sends `method path`; the response
/// is the caller's to read.
pub async fn open(
    access: &Access,
    addr: &str,
    method: &str,
    path: &str,
) -> anyhow::Result<Box<dyn Connection>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let authorization = access
        .token
        .as_ref()
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Connection: close\r\nContent-Length: 0\r\n\r\n"
    );
    let mut connection: Box<dyn Connection> = match &access.tls {
        None => Box::new(stream),
        Some(config) => {
            let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(host.to_string())
                .with_context(|| format!("{host} is not a host name for TLS"))?;
            Box::new(
                tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, stream)
                    .await
                    .with_context(|| format!("TLS with {addr}"))?,
            )
        }
    };
    connection.write_all(head.as_bytes()).await?;
    connection.flush().await?;
    Ok(connection)
}

/// The most a response's status line and headers may take.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The largest body [`request`] reads.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How long a node has to answer a request, unless the caller waits longer.
pub const ANSWER_WAIT: Duration = Duration::from_secs(5);

/// Sends `method path` to `addr` and returns the status code and body (at most 16 MiB); no
/// answer within [`ANSWER_WAIT`] is an error.
pub async fn request(
    access: &Access,
    addr: &str,
    method: &str,
    path: &str,
) -> anyhow::Result<(u16, String)> {
    request_waiting(access, addr, method, path, ANSWER_WAIT).await
}

/// As [`request`], for a request the node answers only once it has done the work (a
/// snapshot of a large store, say): no answer within `wait` is an error.
pub async fn request_waiting(
    access: &Access,
    addr: &str,
    method: &str,
    path: &str,
    wait: Duration,
) -> anyhow::Result<(u16, String)> {
    request_bounded(access, addr, method, path, MAX_BODY_BYTES, wait).await
}

/// As [`request_waiting`], reading no more than a head and `max_body_bytes` of body from the
/// connection: a longer answer is an error, and so is a chunked body that does not parse.
pub async fn request_bounded(
    access: &Access,
    addr: &str,
    method: &str,
    path: &str,
    max_body_bytes: usize,
    wait: Duration,
) -> anyhow::Result<(u16, String)> {
    let max_response_bytes = max_body_bytes.saturating_add(MAX_HEAD_BYTES);
    let answer = async {
        let connection = open(access, addr, method, path).await?;
        // One byte past the limit tells an answer at the limit from one over it.
        let mut response = Vec::new();
        connection
            .take(u64::try_from(max_response_bytes)?.saturating_add(1))
            .read_to_end(&mut response)
            .await?;
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(wait, answer)
        .await
        .with_context(|| format!("no answer from {addr} within {} s", wait.as_secs()))??;
    if response.len() > max_response_bytes {
        bail!("an answer from {addr} of over {max_response_bytes} bytes");
    }
    let Some(head_end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        bail!("malformed HTTP response from {addr}");
    };
    let head = String::from_utf8_lossy(&response[..head_end]);
    let body = &response[head_end + 4..];
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("malformed HTTP status line from {addr}"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body).with_context(|| format!("malformed chunked body from {addr}"))?
    } else {
        body.to_vec()
    };
    if body.len() > max_body_bytes {
        bail!(
            "a body of {} bytes from {addr}, over {max_body_bytes}",
            body.len()
        );
    }
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

/// Joins the chunks of a chunked body (RFC 9112 §7.1), up to its last (empty) chunk; chunk
/// extensions and trailers are ignored. Sizes are checked against the bytes there are.
fn dechunk(mut body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") else {
            bail!("the body ends before its last chunk");
        };
        let line = std::str::from_utf8(&body[..line_end]).context("a chunk size not in ASCII")?;
        let digits = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(digits, 16)
            .with_context(|| format!("a chunk size of {digits:.32} is not a hex size"))?;
        let rest = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let Some(chunk) = rest.get(..size) else {
            bail!("a chunk of {size} bytes where {} remain", rest.len());
        };
        out.extend_from_slice(chunk);
        let Some(next) = rest[size..].strip_prefix(b"\r\n") else {
            bail!("a chunk of {size} bytes not followed by CRLF");
        };
        body = next;
    }
}

/// `GET /status` from the node whose HTTP address is `addr`.
pub async fn status(access: &Access, addr: &str) -> anyhow::Result<crate::shared::NodeStatus> {
    let (code, body) = request(access, addr, "GET", "/status").await?;
    if code != 200 {
        bail!("{addr} answered /status with HTTP {code}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("parsing /status from {addr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node that takes the request and never answers is given up on after the caller's
    /// wait, with an error that names the address and the wait, not a hang.
    #[tokio::test]
    async fn a_node_that_never_answers_is_given_up_on_after_the_wait() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let silent = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let began = std::time::Instant::now();
        let wait = Duration::from_secs(1);
        let error = request_waiting(&Access::default(), &addr, "POST", "/admin/snapshot", wait)
            .await
            .unwrap_err();
        let waited = began.elapsed();
        assert!(
            error
                .to_string()
                .contains(&format!("no answer from {addr} within 1 s")),
            "{error:#}"
        );
        assert!(
            waited >= wait && waited < Duration::from_secs(30),
            "{waited:?}"
        );
        silent.abort();
    }

    /// A long wait is no licence to read without end: a node that floods its answer is cut
    /// off past the body limit at once, and one that answers nonsense and closes is an
    /// error, each well before the wait.
    #[tokio::test]
    async fn a_flooding_or_garbled_answer_is_refused_long_before_the_wait() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let node = tokio::spawn(async move {
            // The first connection floods, and holds on; the second answers garbage and closes.
            let (mut flood, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = flood.read(&mut request).await;
            flood.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..(MAX_BODY_BYTES >> 20) + 2 {
                if flood.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            let (mut garbled, _) = listener.accept().await.unwrap();
            let _ = garbled.read(&mut request).await;
            garbled.write_all(b"\x00\xffnot http at all").await.unwrap();
            drop(garbled);
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(flood);
        });
        let wait = Duration::from_secs(600);
        let began = std::time::Instant::now();
        let flooded = request_waiting(&Access::default(), &addr, "POST", "/admin/snapshot", wait)
            .await
            .unwrap_err();
        let cut = format!("an answer from {addr} of over");
        assert!(flooded.to_string().contains(&cut), "{flooded:#}");
        let garbled = request_waiting(&Access::default(), &addr, "POST", "/admin/snapshot", wait)
            .await
            .unwrap_err();
        assert!(
            garbled.to_string().contains("malformed HTTP response"),
            "{garbled:#}"
        );
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "{:?}",
            began.elapsed()
        );
        node.abort();
    }
}
