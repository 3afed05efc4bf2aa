//! TLS on the three ports, with rustls and its `ring` provider.
//!
//! The client and HTTP ports present the node's certificate and ask nothing of the other side.
//! The peer port is mutual: a peer must present a certificate signed by the cluster's CA, and
//! the node id its certificate names (a SAN URI `skiff://node/I`, see [`node_id_of`]) must be
//! the id it claims in its Hello; a node dialling a peer checks the same of the peer's
//! certificate.
//!
//! The files are re-read on [`Tls::reload`] (SIGHUP, `skiff admin reload-tls`): new connections
//! use the new certificates, existing ones finish on the old. Every file is read with a size
//! limit and a file that does not parse leaves the running configuration in place.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The largest certificate or key file read: a chain of a few certificates is a few KiB.
const MAX_PEM_BYTES: u64 = 1024 * 1024;
/// How long a new connection may take to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Addresses remembered for "logged once per address"; past this the memory starts afresh.
const MAX_LOGGED_ADDRESSES: usize = 4096;
/// The scheme and path of the SAN URI that names a node in its certificate.
pub const NODE_URI_PREFIX: &str = "skiff://node/";

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// The path names a pipe, a directory or a device, not a file.
    #[error("{path} is not a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A file is too large to be a certificate or key.
    #[error("{path} is larger than {MAX_PEM_BYTES} bytes: not a certificate or key file")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A file holds no PEM object of the kind needed, or one that does not parse.
    #[error("{path}: {why}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// rustls refused the certificates or key (a key that does not match, say).
    #[error("the TLS certificate or key is unusable: {0}")]
    Rustls(#[from] rustls::Error),
    /// Another reload is reading the files now.
    #[error("another reload of the TLS files is under way; try again")]
    ReloadUnderWay,
    /// The reload's thread stopped before it finished (it panicked).
    #[error("the reload stopped: {0}")]
    Reload(String),
    /// The CA file cannot verify peers.
    #[error("the CA certificates cannot verify peers: {0}")]
    Verifier(String),
}

/// The three files `--tls-cert-file`, `--tls-key-file` and `--tls-ca-cert-file` name.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The node's certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The cluster's CA certificate(s) (PEM): what peers' certificates must be signed by.
    pub ca: PathBuf,
}

/// The rustls configurations made from one reading of the files.
pub struct TlsConfigs {
    /// For the client and HTTP ports: the node's certificate, no client certificate asked.
    pub server: Arc<ServerConfig>,
    /// For the peer port: a client certificate signed by the CA is required.
    pub peer_server: Arc<ServerConfig>,
    /// For dialling peers: presents the node's certificate, verifies the peer's by the CA.
    pub peer_client: Arc<ClientConfig>,
}

/// The node's TLS settings, reloadable.
pub struct Tls {
    files: TlsFiles,
    current: RwLock<Arc<TlsConfigs>>,
    /// Addresses whose failed handshake was logged.
    logged: Mutex<HashSet<IpAddr>>,
    /// Held while the files are read again: one reload at a time, so that of two racing
    /// (a signal and a request, or requests), an older reading never replaces a newer one.
    reloading: Mutex<()>,
}

impl Tls {
    /// Reads the files.
    pub fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        let configs = Arc::new(TlsConfigs::read(&files)?);
        Ok(Tls {
            files,
            current: RwLock::new(configs),
            logged: Mutex::new(HashSet::new()),
            reloading: Mutex::new(()),
        })
    }

    /// Re-reads the files; on an error the configuration in use stays. While another reload
    /// reads them, refused ([`TlsError::ReloadUnderWay`]) rather than queued.
    pub fn reload(&self) -> Result<(), TlsError> {
        let _one_at_a_time = match self.reloading.try_lock() {
            Ok(held) => held,
            Err(std::sync::TryLockError::WouldBlock) => return Err(TlsError::ReloadUnderWay),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        };
        let configs = Arc::new(TlsConfigs::read(&self.files)?);
        if let Ok(mut current) = self.current.write() {
            *current = configs;
        }
        Ok(())
    }

    /// [`Tls::reload`] on the blocking pool, for a caller on the runtime (SIGHUP, the admin
    /// request): the files are read and the configurations built off the threads that serve
    /// clients.
    pub async fn reload_off_runtime(self: &Arc<Self>) -> Result<(), TlsError> {
        let tls = Arc::clone(self);
        tokio::task::spawn_blocking(move || tls.reload())
            .await
            .unwrap_or_else(|stopped| Err(TlsError::Reload(stopped.to_string())))
    }

    /// The configurations new connections use.
    pub fn configs(&self) -> Arc<TlsConfigs> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Completes the server side of a handshake on a client or HTTP connection, within
    /// [`HANDSHAKE_TIMEOUT`]; a failure is logged once per address and counted.
    pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        addr: SocketAddr,
        port: &'static str,
    ) -> Option<tokio_rustls::server::TlsStream<S>> {
        let acceptor = TlsAcceptor::from(self.configs().server.clone());
        self.finish(acceptor, stream, addr, port).await
    }

    /// Completes the server side of a peer's handshake: the peer presented a certificate the
    /// CA signed. Returns the stream and the node id its certificate names.
    pub async fn accept_peer<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        addr: SocketAddr,
    ) -> Option<(tokio_rustls::server::TlsStream<S>, Result<u64, String>)> {
        let acceptor = TlsAcceptor::from(self.configs().peer_server.clone());
        let stream = self.finish(acceptor, stream, addr, "peer").await?;
        let named = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(node_id_of)
            .unwrap_or_else(|| Err("the peer presented no certificate".into()));
        Some((stream, named))
    }

    async fn finish<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        acceptor: TlsAcceptor,
        stream: S,
        addr: SocketAddr,
        port: &'static str,
    ) -> Option<tokio_rustls::server::TlsStream<S>> {
        let error = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no handshake within {HANDSHAKE_TIMEOUT:?}"),
        };
        let first = match self.logged.lock() {
            Ok(mut logged) => {
                if logged.len() >= MAX_LOGGED_ADDRESSES {
                    logged.clear();
                }
                logged.insert(addr.ip())
            }
            Err(_) => true,
        };
        if first {
            tracing::warn!(client = %addr, port, %error, "refused a connection whose TLS handshake failed (plain TCP on a TLS port?); further failures from this address are logged at debug");
        } else {
            tracing::debug!(client = %addr, port, %error, "refused a connection whose TLS handshake failed");
        }
        None
    }

    /// Dials the TLS side of a peer connection to node `peer` at `addr` and checks that the
    /// certificate the peer presents names that node.
    pub async fn connect_peer<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        peer: u64,
        addr: SocketAddr,
    ) -> Result<tokio_rustls::client::TlsStream<S>, String> {
        let connector = TlsConnector::from(self.configs().peer_client.clone());
        let name = ServerName::IpAddress(addr.ip().into());
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, stream))
            .await
            .map_err(|_| format!("no handshake within {HANDSHAKE_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        let named = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(node_id_of)
            .unwrap_or_else(|| Err("the peer presented no certificate".into()))?;
        if named != peer {
            return Err(format!(
                "the certificate at {addr} names node {named}, not node {peer}"
            ));
        }
        Ok(stream)
    }
}

impl TlsConfigs {
    fn read(files: &TlsFiles) -> Result<TlsConfigs, TlsError> {
        let chain = certificates(&files.cert)?;
        let key = private_key(&files.key)?;
        let mut roots = RootCertStore::empty();
        for ca in certificates(&files.ca)? {
            roots.add(ca).map_err(|e| TlsError::Pem {
                path: files.ca.clone(),
                why: format!("not a usable CA certificate: {e}"),
            })?;
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain.clone(), key.clone_key())?;
        // The peer port trusts only certificates the cluster's CA signed.
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let mut peer_server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())?;
        // A dialling peer never resumes a session, and never reads its socket: tickets it
        // would leave unread make its side's close a reset instead of an end.
        peer_server.send_tls13_tickets = 0;
        let peer_client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        Ok(TlsConfigs {
            server: Arc::new(server),
            peer_server: Arc::new(peer_server),
            peer_client: Arc::new(peer_client),
        })
    }
}

/// A client-side configuration that trusts the CA in `ca` (for `skiff status`, `skiff admin`
/// and a node relaying to another's HTTPS port).
pub fn client_config(ca: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca)? {
        roots.add(cert).map_err(|e| TlsError::Pem {
            path: ca.to_path_buf(),
            why: format!("not a usable CA certificate: {e}"),
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// A file's bytes, refusing one larger than [`MAX_PEM_BYTES`].
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let read_error = |source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    };
    use std::os::unix::fs::OpenOptionsExt;
    // A pipe at the path is not waited on (`O_NONBLOCK` changes nothing for a regular file);
    // links are followed, since certificates are often links a renewal points elsewhere.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(read_error)?;
    if !file.metadata().map_err(read_error)?.is_file() {
        return Err(TlsError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > max {
        return Err(TlsError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// The certificates in a PEM file; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_bounded(path, MAX_PEM_BYTES)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            why: format!("not PEM certificates: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            why: "holds no PEM certificate".into(),
        });
    }
    Ok(certs)
}

/// The private key in a PEM file.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_bounded(path, MAX_PEM_BYTES)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        why: format!("holds no usable PEM private key: {e}"),
    })
}

/// The node id a certificate names: its SAN URI `skiff://node/I`. A certificate naming no
/// node, or two different ones, names none.
pub fn node_id_of(cert: &CertificateDer<'_>) -> Result<u64, String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, parsed) = X509Certificate::from_der(cert.as_ref())
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    let names = parsed
        .subject_alternative_name()
        .map_err(|e| format!("the certificate's names do not parse: {e}"))?;
    let mut ids = names
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) => uri.strip_prefix(NODE_URI_PREFIX),
            _ => None,
        })
        .map(|id| {
            id.parse::<u64>()
                .map_err(|_| format!("the certificate names node {id:?}"))
        });
    let id = ids
        .next()
        .ok_or_else(|| format!("the certificate names no node ({NODE_URI_PREFIX}I)"))??;
    if ids.any(|other| other != Ok(id)) {
        return Err("the certificate names more than one node".into());
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `path` on a thread of its own: a read that waits on a pipe fails the test
    /// instead of hanging it.
    fn read_within_seconds(path: &Path) -> Result<Vec<u8>, TlsError> {
        let (sent, received) = std::sync::mpsc::channel();
        let path = path.to_path_buf();
        std::thread::spawn(move || sent.send(read_bounded(&path, MAX_PEM_BYTES)));
        received
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the read waited on what the path names")
    }

    /// A reload asked for while another reads the files is refused, not queued behind it
    /// (an older reading must not land after a newer one, and requests must not pile up
    /// threads); once that one is done, the next reload goes through.
    #[test]
    fn a_reload_while_another_reads_the_files_is_refused_and_the_next_goes_through() {
        let dir = tempfile::tempdir().unwrap();
        crate::certs::generate(dir.path(), 1, &[], None).unwrap();
        let tls = Tls::load(TlsFiles {
            cert: dir.path().join("node-1.crt"),
            key: dir.path().join("node-1.key"),
            ca: dir.path().join("ca.crt"),
        })
        .unwrap();
        let before = Arc::as_ptr(&tls.configs());
        let reading = tls.reloading.lock().unwrap();
        let refused = tls.reload().unwrap_err();
        assert!(matches!(refused, TlsError::ReloadUnderWay), "{refused}");
        assert_eq!(
            Arc::as_ptr(&tls.configs()),
            before,
            "the configuration stays"
        );
        drop(reading);
        tls.reload().expect("reloaded");
        assert_ne!(Arc::as_ptr(&tls.configs()), before, "read again");
    }

    /// A certificate path pointed at a pipe nobody writes, or at a directory, is refused at
    /// once, saying so, where waiting would hold a thread for good (a reload on request);
    /// a link to a file is followed, as certificates often are links.
    #[test]
    fn a_pipe_or_a_directory_at_a_certificate_path_is_refused_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let pipe = dir.path().join("node.crt");
        let made = std::process::Command::new("mkfifo").arg(&pipe).status();
        assert!(made.unwrap().success(), "mkfifo");
        let error = read_within_seconds(&pipe).unwrap_err();
        assert!(matches!(error, TlsError::NotAFile { .. }), "{error}");
        assert!(error.to_string().contains("not a regular file"), "{error}");
        let error = read_within_seconds(dir.path()).unwrap_err();
        assert!(matches!(error, TlsError::NotAFile { .. }), "{error}");

        let file = dir.path().join("issued.crt");
        std::fs::write(&file, b"-----BEGIN CERTIFICATE-----").unwrap();
        let link = dir.path().join("live.crt");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(
            read_within_seconds(&link).unwrap(),
            b"-----BEGIN CERTIFICATE-----"
        );
    }
}
