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

/// Sends `method path` to `addr` and returns the status code and body.
pub async fn request(
    access: &Access,
    addr: &str,
    method: &str,
    path: &str,
) -> anyhow::Result<(u16, String)> {
    let exchange = async {
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
        match &access.tls {
            None => exchange(stream, &head).await,
            Some(config) => {
                let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = ServerName::try_from(host.to_string())
                    .with_context(|| format!("{host} is not a host name for TLS"))?;
                let stream = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, stream)
                    .await
                    .with_context(|| format!("TLS with {addr}"))?;
                exchange(stream, &head).await
            }
        }
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

/// Writes the request head and reads the whole response (at most 16 MiB).
async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    head: &str,
) -> anyhow::Result<Vec<u8>> {
    stream.write_all(head.as_bytes()).await?;
    stream.flush().await?;
    let mut response = Vec::new();
    stream
        .take(16 * 1024 * 1024)
        .read_to_end(&mut response)
        .await?;
    Ok(response)
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
