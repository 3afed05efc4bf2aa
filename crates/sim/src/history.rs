//! Client histories in the one format every linearizability check uses (JSON lines):
//! `{"client":C,"op":"get|put|delete|cas","key":K,"value":V,"expected":E,"existed":B,
//!   "ok":true|false|null,"call_ns":T1,"return_ns":T2}`.
//!
//! - `call_ns` is taken right before sending, `return_ns` right after the reply, on one
//!   monotonic clock for all clients.
//! - `ok: null` means the outcome is unknown (timeout, reset, any error that does not prove the
//!   command was not applied); `ok: false` for get/put/delete only when non-application is
//!   certain; for cas it means the compare failed. `value: null` means the key is absent.
//! - Each client is sequential; after an unknown outcome it continues under a fresh client id.

use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The kind of a client operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// Read a key; `value` is what was read.
    Get,
    /// Write `value` to a key.
    Put,
    /// Remove a key; `existed` says whether it was there.
    Delete,
    /// Compare-and-set: if the key holds `expected`, write `value`.
    Cas,
}

/// One client operation, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// The (sequential) client that issued it.
    pub client: u64,
    /// What it did.
    pub op: OpKind,
    /// The key.
    pub key: String,
    /// For get: the value read; for put and cas: the value written. `None`: absent.
    #[serde(default)]
    pub value: Option<String>,
    /// For cas: the value expected. `None`: the key expected absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// For delete: whether the key existed, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existed: Option<bool>,
    /// `Some(true)`: done; `Some(false)`: certainly not applied (for cas: compare failed);
    /// `None`: unknown.
    pub ok: Option<bool>,
    /// When the request was sent.
    pub call_ns: u64,
    /// When the reply arrived (for unknown outcomes: when the client gave up).
    pub return_ns: u64,
}

/// Why a history file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file could not be opened, read or written.
    #[error("history file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not a valid operation.
    #[error("history file {path}, line {line}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The 1-based line number.
        line: usize,
        /// What was wrong.
        source: serde_json::Error,
    },
}

/// Writes `history` to `path`, one JSON object per line.
pub fn write_history(path: &Path, history: &[Operation]) -> Result<(), HistoryError> {
    let io = |source| HistoryError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    for operation in history {
        let line = serde_json::to_string(operation).expect("an operation always serializes");
        writeln!(file, "{line}").map_err(io)?;
    }
    file.flush().map_err(io)
}

/// Reads a history written by [`write_history`] (or by any client following the format).
pub fn read_history(path: &Path) -> Result<Vec<Operation>, HistoryError> {
    let io = |source| HistoryError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
    let mut history = Vec::new();
    for (k, line) in file.lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let operation = serde_json::from_str(&line).map_err(|source| HistoryError::Parse {
            path: path.display().to_string(),
            line: k + 1,
            source,
        })?;
        history.push(operation);
    }
    Ok(history)
}
