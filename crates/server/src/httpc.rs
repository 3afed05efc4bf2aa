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

/// Sends `method path` to `addr` and returns the status code and body.
pub async fn request(
    access: &Access,
    addr: &str,
    method: &str,
    path: &str,
) -> anyhow::Result<(u16, String)> {
    let exchange = async {
        let connection = open(access, addr, method, path).await?;
        // The whole response, at most 16 MiB.
        let mut response = Vec::new();
        connection
            .take(16 * 1024 * 1024)
            .read_to_end(&mut response)
            .await?;
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .with_context(|| format!("no answer from {addr} within 5 s"))??;
    let text = String::from_utf8_lossy(&response);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("malformed HTTP response from {addr}");
    };
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("malformed HTTP status line from {addr}"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((code, body))
}

/// Joins the chunks of a chunked body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// `GET /status` from the node whose HTTP address is `addr`.
pub async fn status(access: &Access, addr: &str) -> anyhow::Result<crate::shared::NodeStatus> {
    let (code, body) = request(access, addr, "GET", "/status").await?;
    if code != 200 {
        bail!("{addr} answered /status with HTTP {code}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("parsing /status from {addr}"))
}
