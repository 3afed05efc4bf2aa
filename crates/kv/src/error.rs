//! Why decoding, restoring or configuring failed: [`KvError`].
//!
//! These are the failures the world can cause (bytes damaged on disk or in flight, a bad
//! configuration file), so each is a typed error and never a panic. What the state machine
//! says to a client — a wrong type of value, a stale request — is a [`Reply::Error`]
//! instead, because it is part of the replicated result.
//!
//! [`Reply::Error`]: crate::Reply::Error

/// What was being decoded when bytes turned out to be malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoded {
    /// A [`Command`](crate::Command) taken from a log entry.
    Command,
    /// A snapshot made by [`StateMachine::snapshot`](crate::StateMachine::snapshot).
    Snapshot,
    /// A [`Request`](crate::Request): a command with its client session, as a log entry.
    Request,
    /// A [`Reply`](crate::Reply) sent between nodes.
    Reply,
}

impl std::fmt::Display for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encoded::Command => "command",
            Encoded::Snapshot => "snapshot",
            Encoded::Request => "request",
            Encoded::Reply => "reply",
        })
    }
}

/// Why bytes could not be decoded, a snapshot restored, or a configuration accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// There were no bytes at all.
    #[error("{what}: empty")]
    Empty {
        /// What was being decoded.
        what: Encoded,
    },
    /// The bytes end before the value they describe does.
    #[error("{what}: truncated at byte {offset}")]
    Truncated {
        /// What was being decoded.
        what: Encoded,
        /// Where the missing bytes should have started.
        offset: usize,
    },
    /// The format version is not one this build reads.
    #[error("{what}: unsupported format version {version}")]
    UnsupportedVersion {
        /// What was being decoded.
        what: Encoded,
        /// The version found.
        version: u8,
    },
    /// A one-byte tag (command opcode, condition, reply kind…) has no meaning.
    #[error("{what}: unknown {field} tag {tag} at byte {offset}")]
    UnknownTag {
        /// What was being decoded.
        what: Encoded,
        /// Which tag it was.
        field: &'static str,
        /// The value found.
        tag: u8,
        /// Where it was found.
        offset: usize,
    },
    /// A variable-length integer is longer than 64 bits or not in its shortest form.
    #[error("{what}: malformed varint at byte {offset}")]
    BadVarint {
        /// What was being decoded.
        what: Encoded,
        /// Where the integer starts.
        offset: usize,
    },
    /// The value is complete but more bytes follow it.
    #[error("{what}: {count} unexpected bytes after the end")]
    TrailingBytes {
        /// What was being decoded.
        what: Encoded,
        /// How many bytes were left over.
        count: usize,
    },
    /// The snapshot does not start with the snapshot magic: it is not a snapshot.
    #[error("snapshot: bad magic")]
    BadMagic,
    /// The snapshot's checksum does not match its contents: it was damaged.
    #[error("snapshot: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    ChecksumMismatch {
        /// The CRC-32C stored at the end of the snapshot.
        stored: u32,
        /// The CRC-32C of the bytes before it.
        computed: u32,
    },
    /// The snapshot decodes but breaks a rule every snapshot this crate writes obeys
    /// (keys in strictly increasing order, sessions no newer than the applied index, …).
    #[error("snapshot: invalid: {0}")]
    InvalidSnapshot(&'static str),
    /// A request whose fields contradict each other.
    #[error("request: invalid: {0}")]
    InvalidRequest(&'static str),
    /// A [`KvConfig`](crate::KvConfig) setting is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
}
