//! Shared secrets: the client password (`--requirepass-file`, Redis's `requirepass`) and the
//! admin token (`--admin-token-file`, sent as `Authorization: Bearer …`).
//!
//! A secret is read from a file, bounded and trimmed of its final line break, and kept only as
//! its SHA-256 digest; an attempt is digested and compared in constant time, so neither the
//! time a comparison takes nor the attempt's length tells how much of it was right.

use std::path::Path;

use anyhow::{bail, Context};
use subtle::ConstantTimeEq;

/// The longest secret file read.
const MAX_SECRET_FILE_BYTES: u64 = 4096;
/// The shortest secret accepted: a password an attacker could guess online is no protection.
pub const MIN_SECRET_BYTES: usize = 8;

/// The secret in `path`: its first line, printable text of at least [`MIN_SECRET_BYTES`]
/// bytes (it goes into headers and commands).
pub fn read_secret_text(path: &Path, what: &str) -> anyhow::Result<String> {
    let bytes = crate::tls::read_bounded(path, MAX_SECRET_FILE_BYTES)
        .with_context(|| format!("reading the {what}"))?;
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() < MIN_SECRET_BYTES {
        bail!(
            "the {what} in {} is shorter than {MIN_SECRET_BYTES} bytes",
            path.display()
        );
    }
    if !line.iter().all(|b| b.is_ascii_graphic()) {
        bail!(
            "the {what} in {} holds bytes other than printable ASCII without spaces",
            path.display()
        );
    }
    Ok(String::from_utf8_lossy(line).into_owned())
}

/// What an `AUTH` (or `HELLO … AUTH`) attempt comes to.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The client is authenticated (`+OK`).
    Accepted,
    /// Another user than `default`, or a wrong password (`-WRONGPASS`, counted).
    Refused,
    /// `AUTH <password>` on a node that requires none: Redis's error saying so, which tells
    /// an operator the password they rely on is not set.
    NoPasswordConfigured,
}

/// Decides an attempt as Redis does for its only user, `default`: with a password required,
/// the attempt must be it; without one (Redis's `nopass` default user) any password is taken
/// for `default`, but a bare `AUTH <password>` is an error.
pub fn check(required: Option<&Secret>, username: Option<&[u8]>, attempt: &[u8]) -> AuthOutcome {
    let user_known = username.is_none_or(|user| user == b"default");
    match required {
        None if username.is_none() => AuthOutcome::NoPasswordConfigured,
        None if user_known => AuthOutcome::Accepted,
        Some(secret) if secret.matches(attempt) && user_known => AuthOutcome::Accepted,
        _ => AuthOutcome::Refused,
    }
}

/// A password or token, as its digest.
#[derive(Clone)]
pub struct Secret {
    digest: [u8; 32],
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// The secret in `path` (see [`read_secret_text`]).
    pub fn read(path: &Path, what: &str) -> anyhow::Result<Secret> {
        Ok(Secret::new(read_secret_text(path, what)?.as_bytes()))
    }

    /// The secret `text`.
    pub fn new(text: &[u8]) -> Secret {
        let mut digest = [0; 32];
        digest.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, text).as_ref());
        Secret { digest }
    }

    /// Whether `attempt` is the secret, compared in constant time.
    pub fn matches(&self, attempt: &[u8]) -> bool {
        let attempt = ring::digest::digest(&ring::digest::SHA256, attempt);
        self.digest.ct_eq(attempt.as_ref()).into()
    }

    /// Whether an `Authorization` header's value carries the token (`Bearer <token>`).
    pub fn authorizes(&self, header: Option<&[u8]>) -> bool {
        let Some(value) = header else {
            return false;
        };
        let Some(token) = value
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
            .map(|_| &value[7..])
        else {
            return false;
        };
        self.matches(token.trim_ascii())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_matches_itself_only() {
        let secret = Secret::new(b"correct horse");
        assert!(secret.matches(b"correct horse"));
        assert!(!secret.matches(b"correct hors"));
        assert!(!secret.matches(b"correct horsee"));
        assert!(!secret.matches(b""));
        assert!(secret.authorizes(Some(b"Bearer correct horse")));
        assert!(secret.authorizes(Some(b"bearer correct horse")));
        for header in [
            &b"Basic correct horse"[..],
            b"Bearer",
            b"Bearer ",
            b"Bearercorrect horse",
            b"correct horse",
            b"\xff\xfe",
        ] {
            assert!(!secret.authorizes(Some(header)), "{header:?}");
        }
        assert!(!secret.authorizes(None));
    }

    #[test]
    fn auth_is_decided_as_redis_decides_it_for_the_default_user() {
        use AuthOutcome::*;
        let secret = Secret::new(b"correct horse");
        let required = Some(&secret);
        // With a password: it, alone or as the default user's; nothing else.
        assert_eq!(check(required, None, b"correct horse"), Accepted);
        assert_eq!(
            check(required, Some(b"default"), b"correct horse"),
            Accepted
        );
        assert_eq!(check(required, None, b"wrong"), Refused);
        assert_eq!(check(required, Some(b"default"), b"wrong"), Refused);
        assert_eq!(check(required, Some(b"admin"), b"correct horse"), Refused);
        // Without one (redis-server without requirepass): `AUTH x` is an error, `AUTH
        // default x` and `HELLO 2 AUTH default x` are taken, another user is refused.
        assert_eq!(check(None, None, b"x"), NoPasswordConfigured);
        assert_eq!(check(None, Some(b"default"), b"x"), Accepted);
        assert_eq!(check(None, Some(b"default"), b""), Accepted);
        assert_eq!(check(None, Some(b"someone"), b"x"), Refused);
    }

    #[test]
    fn a_secret_file_is_its_first_line_and_must_not_be_short_or_huge() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pass");
        std::fs::write(&path, "s3cret-pass\r\nsecond line\n").unwrap();
        assert!(Secret::read(&path, "password")
            .unwrap()
            .matches(b"s3cret-pass"));
        std::fs::write(&path, "short\n").unwrap();
        assert!(Secret::read(&path, "password").is_err());
        std::fs::write(&path, "with a space\n").unwrap();
        assert!(Secret::read(&path, "password").is_err());
        std::fs::write(&path, vec![b'x'; 5000]).unwrap();
        assert!(Secret::read(&path, "password").is_err());
        assert!(Secret::read(&dir.path().join("missing"), "password").is_err());
    }
}
