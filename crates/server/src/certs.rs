//! `skiff certs`: a CA, a certificate per node and a client certificate, for TLS on every port
//! (see [`crate::tls`]). Each node's certificate names the node (a SAN URI `skiff://node/I`,
//! which the peer port checks against the id a peer claims) and the hosts it is reached by;
//! private keys are written with mode 0600.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

use crate::tls::NODE_URI_PREFIX;

/// The most nodes `skiff certs` makes certificates for at once.
const MAX_NODES: u64 = 1000;

/// `skiff certs` settings.
#[derive(clap::Args, Clone, Debug)]
pub struct CertsArgs {
    /// The directory to write into (created if missing); existing files are not overwritten.
    #[arg(long)]
    pub out: PathBuf,
    /// How many node certificates (node-1 … node-N).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_NODES))]
    pub nodes: u64,
    /// Host names and IP addresses (comma-separated) the nodes are reached by; every node's
    /// certificate names all of them, and `localhost` and 127.0.0.1 besides.
    #[arg(long, value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Sign with this existing CA certificate (with --ca-key-file) instead of making a new CA:
    /// for rotating node certificates while peers and clients keep trusting the same CA.
    #[arg(long, requires = "ca_key_file")]
    pub ca_cert_file: Option<PathBuf>,
    /// The existing CA's private key.
    #[arg(long, requires = "ca_cert_file")]
    pub ca_key_file: Option<PathBuf>,
}

/// Writes the CA, the node certificates and the client certificate into `args.out`.
pub fn certs(args: CertsArgs) -> anyhow::Result<()> {
    let ca = match (&args.ca_cert_file, &args.ca_key_file) {
        (Some(cert), Some(key)) => Some(existing_authority(cert, key)?),
        _ => None,
    };
    let written = generate(&args.out, args.nodes, &args.hosts, ca)?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Generates every file, signed by `ca` or by a new CA written as `ca.crt` and `ca.key`;
/// returns the paths written.
pub fn generate(
    out: &Path,
    nodes: u64,
    hosts: &[String],
    ca: Option<(Certificate, KeyPair)>,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
    for host in hosts.iter().map(|h| h.trim()).filter(|h| !h.is_empty()) {
        if !names.iter().any(|n| n == host) {
            names.push(host.to_string());
        }
    }
    let mut written = Vec::new();
    let (ca, ca_key) = match ca {
        Some(ca) => ca,
        None => {
            let (ca, ca_key) = authority()?;
            written.push(write(out, "ca.crt", &ca.pem(), false)?);
            written.push(write(out, "ca.key", &ca_key.serialize_pem(), true)?);
            (ca, ca_key)
        }
    };
    for id in 1..=nodes {
        let mut params = CertificateParams::new(names.clone())
            .context("a host is neither a DNS name nor an IP address")?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("skiff node {id}"));
        params
            .subject_alt_names
            .push(SanType::URI(format!("{NODE_URI_PREFIX}{id}").try_into()?));
        // A node is a server on its three ports and a client when it dials its peers.
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca, &ca_key)?;
        written.push(write(out, &format!("node-{id}.crt"), &cert.pem(), false)?);
        written.push(write(
            out,
            &format!("node-{id}.key"),
            &key.serialize_pem(),
            true,
        )?);
    }
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "skiff client");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    written.push(write(out, "client.crt", &cert.pem(), false)?);
    written.push(write(out, "client.key", &key.serialize_pem(), true)?);
    Ok(written)
}

/// A new self-signed CA.
fn authority() -> anyhow::Result<(Certificate, KeyPair)> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "skiff cluster CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate()?;
    Ok((params.self_signed(&key)?, key))
}

/// The CA in `cert` and `key`, to sign with: its certificate made again from its own name and
/// key, so what it signs verifies against the original `ca.crt`.
fn existing_authority(cert: &Path, key: &Path) -> anyhow::Result<(Certificate, KeyPair)> {
    let read = |path: &Path| {
        crate::tls::read_bounded(path, 1024 * 1024)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    };
    let key = KeyPair::from_pem(&read(key)?).context("reading the CA key")?;
    let params =
        CertificateParams::from_ca_cert_pem(&read(cert)?).context("reading the CA certificate")?;
    Ok((params.self_signed(&key)?, key))
}

/// Writes `text` to `dir/name`, refusing to overwrite; a secret is created with mode 0600.
pub fn write(dir: &Path, name: &str, text: &str, secret: bool) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    if path.exists() {
        bail!("{} exists; remove it or write elsewhere", path.display());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    options.mode(if secret { 0o600 } else { 0o644 });
    let mut file = options
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::CertificateDer;

    #[test]
    fn each_node_certificate_names_its_node_and_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        generate(
            dir.path(),
            3,
            &["10.0.0.1".into(), "db.example".into()],
            None,
        )
        .unwrap();
        for id in 1..=3u64 {
            let der =
                CertificateDer::from_pem_file(dir.path().join(format!("node-{id}.crt"))).unwrap();
            assert_eq!(crate::tls::node_id_of(&der), Ok(id));
            let mode = std::fs::metadata(dir.path().join(format!("node-{id}.key")))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let client = CertificateDer::from_pem_file(dir.path().join("client.crt")).unwrap();
        assert!(crate::tls::node_id_of(&client).is_err());
        let mode = std::fs::metadata(dir.path().join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // The files load as a node's TLS settings.
        crate::tls::Tls::load(crate::tls::TlsFiles {
            cert: dir.path().join("node-1.crt"),
            key: dir.path().join("node-1.key"),
            ca: dir.path().join("ca.crt"),
        })
        .unwrap();
        // A second run refuses to overwrite.
        assert!(generate(dir.path(), 1, &[], None).is_err());
        // New node certificates from the same CA load beside the old CA file.
        let rotated = dir.path().join("rotated");
        let ca =
            existing_authority(&dir.path().join("ca.crt"), &dir.path().join("ca.key")).unwrap();
        generate(&rotated, 1, &[], Some(ca)).unwrap();
        assert!(!rotated.join("ca.crt").exists());
        crate::tls::Tls::load(crate::tls::TlsFiles {
            cert: rotated.join("node-1.crt"),
            key: rotated.join("node-1.key"),
            ca: dir.path().join("ca.crt"),
        })
        .unwrap();
    }
}
