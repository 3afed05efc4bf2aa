//! `skiff admin backup`: a consistent snapshot of the store, streamed from any node as one
//! backup file ([`skiff_node::backup`]), and written by the CLI only once it checks whole.
//!
//! Which point in time: the node first answers a linearizable read (ReadIndex, thesis §6.4)
//! through its driver. Once that read is answered, the node has applied every entry committed
//! before the backup began — so every write acknowledged before then. The driver then forces
//! a snapshot at its applied index (or finds the current snapshot already there) and opens
//! that file ([`Pending`]). A snapshot file is never changed once it has its name, and an open
//! file outlives its removal, so it is streamed as it is while the node goes on serving; the
//! store is not held in memory a second time.
//!
//! The endpoint is `GET /admin/backup`: it changes nothing, but it exposes every key and
//! value, so it needs the admin token whenever one is configured, and is refused when clients
//! need a password but no token is configured (see `http.rs`). One backup runs at a time on a
//! node; a second is answered 409. A client that takes nothing for [`SEND_TIMEOUT`] is
//! abandoned, freeing the node for the next backup.
//!
//! The CLI trusts nothing the node sends: the body must begin with a backup header whose length
//! is the Content-Length, nothing past it is read, and the whole body has a deadline (a slowest
//! rate, [`MIN_BYTES_PER_SEC`]) as well as a wait for each piece.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};
use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use skiff_kv::{Command, Reply};
use skiff_node::backup::{self as format, BackupHeader, Checksum};
use skiff_raft::{LogIndex, LogStorage, SnapshotMeta};
use skiff_wal::{Disk, Wal};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot};

use crate::driver::{Input, ToDriver};
use crate::httpc::{self, Access};

/// The HTTP path of the backup endpoint.
pub const PATH: &str = "/admin/backup";

/// How long the read and the snapshot may each take before the request gives up.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long one piece may wait for the connection to take it: a client that stops reading is
/// abandoned, and the one backup slot freed.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The piece size in which the snapshot is read and sent.
const CHUNK_BYTES: usize = 256 * 1024;

/// Pieces read ahead of the connection.
const CHUNKS_AHEAD: usize = 4;

/// How long the CLI waits for the next bytes of the body.
const READ_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the CLI waits for the response head: longer than the node's worst case, the read
/// and then the snapshot each taking their whole [`PREPARE_TIMEOUT`].
const HEAD_TIMEOUT: Duration = Duration::from_secs(2 * PREPARE_TIMEOUT.as_secs() + 30);

/// The slowest body the CLI waits for: it gives up on the whole download after
/// [`READ_IDLE_TIMEOUT`] plus the time the body takes at this rate.
const MIN_BYTES_PER_SEC: u64 = 64 * 1024;

/// The longest response head the CLI reads.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The snapshot file the driver opened for a backup, with what it pictures.
#[derive(Debug)]
pub struct Source {
    /// The current snapshot file (`header | data`), open.
    file: File,
    /// Its index, term and configuration.
    meta: SnapshotMeta,
    /// The length of its data.
    data_len: u64,
    /// The cluster the node belongs to.
    cluster_id: u64,
}

/// Where the driver answers a backup request.
pub type SourceReply = oneshot::Sender<Result<Source, String>>;

/// Backups waiting in the driver for a snapshot that covers the index each must include.
#[derive(Debug, Default)]
pub struct Pending {
    waiting: Vec<(LogIndex, SourceReply)>,
}

impl Pending {
    /// A backup that must include every entry up to `covers` (the applied index after its
    /// linearizable read).
    pub fn push(&mut self, covers: LogIndex, reply: SourceReply) {
        self.waiting.retain(|(_, reply)| !reply.is_closed());
        self.waiting.push((covers, reply));
    }

    /// Whether a backup is waiting for a snapshot.
    pub fn is_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Answers every waiting backup with `why`.
    pub fn fail(&mut self, why: &str) {
        for (_, reply) in self.waiting.drain(..) {
            let _ = reply.send(Err(why.to_string()));
        }
    }

    /// The current snapshot changed or was found current: each backup it covers gets the
    /// file. With `last`, no other snapshot is coming, and the rest are refused.
    pub fn settle<D: Disk>(&mut self, wal: &Wal<D>, cluster_id: u64, last: bool) {
        if self.waiting.is_empty() {
            return;
        }
        let meta = wal.snapshot_meta();
        let (covered, rest): (Vec<_>, Vec<_>) = self
            .waiting
            .drain(..)
            .partition(|(covers, _)| *covers <= meta.index);
        self.waiting = rest;
        for (_, reply) in covered {
            let opened = wal
                .snapshot_path()
                .ok_or_else(|| "the node has no snapshot file".to_string())
                .and_then(|path| {
                    skiff_wal::fs_disk::open_regular(
                        path,
                        std::fs::OpenOptions::new().read(true),
                        "open",
                    )
                    .map_err(|e| e.to_string())
                });
            let _ = reply.send(opened.map(|file| Source {
                file,
                meta: meta.clone(),
                data_len: wal.snapshot_len(),
                cluster_id,
            }));
        }
        if last {
            self.fail("the node is installing a snapshot from the leader; retry in a moment");
        }
    }
}

/// Whether a backup is being sent from this node.
static SENDING: AtomicBool = AtomicBool::new(false);

/// The one backup being sent; released when dropped.
struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        SENDING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        SENDING.store(false, Ordering::Release);
    }
}

/// `GET /admin/backup`: a linearizable read, then the snapshot that covers it, streamed as a
/// backup file.
pub async fn serve(driver: &ToDriver) -> Response {
    let Some(slot) = Slot::take() else {
        return refusal(
            StatusCode::CONFLICT,
            "a backup is already being taken from this node; retry when it ends",
        );
    };
    match prepare(driver).await {
        Ok(source) => stream(source, slot, SEND_TIMEOUT).await,
        Err((code, why)) => refusal(code, &why),
    }
}

fn refusal(code: StatusCode, why: &str) -> Response {
    (code, format!("{why}\n")).into_response()
}

/// The read that fixes the backup's point, then the snapshot file that covers it.
async fn prepare(driver: &ToDriver) -> Result<Source, (StatusCode, String)> {
    let busy = || {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the node is too busy; retry".to_string(),
        )
    };
    let unavailable = |why: String| (StatusCode::SERVICE_UNAVAILABLE, why);
    // §6.4: answered only once the node has applied what the leader had committed when the
    // read began, so the snapshot taken after it holds every write acknowledged before.
    let (reply, read) = oneshot::channel();
    let command = Command::DbSize;
    driver
        .try_send(Input::Client {
            command,
            reply,
            session: None,
        })
        .map_err(|_| busy())?;
    match tokio::time::timeout(PREPARE_TIMEOUT, read).await {
        Ok(Ok(Reply::Error(error))) => {
            return Err(unavailable(format!(
                "cannot fix a consistent point for the backup: {error}"
            )))
        }
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return Err(unavailable("the node is shutting down".into())),
        Err(_) => {
            return Err(unavailable(
                "the read that fixes the backup's point timed out".into(),
            ))
        }
    }
    let (reply, source) = oneshot::channel();
    driver.try_send(Input::Backup(reply)).map_err(|_| busy())?;
    match tokio::time::timeout(PREPARE_TIMEOUT, source).await {
        Ok(Ok(Ok(source))) => Ok(source),
        Ok(Ok(Err(why))) => Err(unavailable(format!("no snapshot for the backup: {why}"))),
        Ok(Err(_)) => Err(unavailable("the node is shutting down".into())),
        Err(_) => Err(unavailable("taking the snapshot timed out".into())),
    }
}

/// What the reading thread sends the connection.
type Piece = Result<Bytes, std::io::Error>;

/// Sends the backup file: the header, the snapshot's data read on a thread of its own, and
/// the checksum over both. A piece the connection has not taken within `send_timeout` ends
/// the backup, and frees the slot.
async fn stream(source: Source, slot: Slot, send_timeout: Duration) -> Response {
    let header = BackupHeader {
        cluster_id: source.cluster_id,
        meta: source.meta.clone(),
        data_len: source.data_len,
    };
    let head = header.encode();
    let Ok(total) = header.file_len(head.len() as u64) else {
        return refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the snapshot is too large",
        );
    };
    let (index, term) = (source.meta.index.0, source.meta.term.0);
    let (pieces, received) = mpsc::channel::<Piece>(CHUNKS_AHEAD);
    let outlet = Outlet {
        pieces,
        runtime: tokio::runtime::Handle::current(),
        send_timeout,
    };
    let spawned = std::thread::Builder::new()
        .name("skiff-backup".into())
        .spawn(move || {
            let _slot = slot;
            if let Err(error) = send_file(source, head, &outlet) {
                tracing::warn!(%error, index, "a backup stopped before its end");
                // Ends the body early if the connection still reads; never waits for it.
                let _ = outlet.pieces.try_send(Err(error));
            }
        });
    if let Err(error) = spawned {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("cannot start reading the snapshot: {error}"),
        );
    }
    tracing::info!(index, term, bytes = total, "sending a backup");
    let body = futures_util::stream::unfold(received, |mut received| async move {
        received.recv().await.map(|piece| (piece, received))
    });
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, total.to_string()),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// Where the reading thread hands pieces to the connection.
struct Outlet {
    pieces: mpsc::Sender<Piece>,
    runtime: tokio::runtime::Handle,
    send_timeout: Duration,
}

impl Outlet {
    /// Hands `piece` over, waiting at most `send_timeout` for room.
    fn send(&self, piece: Vec<u8>) -> std::io::Result<()> {
        // The timer is made inside the runtime: this thread is not one of its own.
        let sent = self.runtime.block_on(async {
            let send = self.pieces.send(Ok(Bytes::from(piece)));
            tokio::time::timeout(self.send_timeout, send).await
        });
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(std::io::Error::other("the client went away")),
            Err(_) => Err(std::io::Error::other(format!(
                "the client took nothing for {:?}; abandoned",
                self.send_timeout
            ))),
        }
    }
}

/// Reads the snapshot file piece by piece onto `outlet`, checking its data against the
/// checksum its own header holds; a mismatch ends the body early, so the client refuses it.
fn send_file(mut source: Source, head: Vec<u8>, outlet: &Outlet) -> std::io::Result<()> {
    let file_len = source.file.metadata()?.len();
    let data_offset = file_len
        .checked_sub(source.data_len)
        .ok_or_else(|| std::io::Error::other("the snapshot file is shorter than its data"))?;
    let expected_crc = snapshot_data_crc(&mut source.file, data_offset)?;
    let mut crc = Checksum::default();
    crc.update(&head);
    outlet.send(head)?;
    let mut data_crc = Checksum::default();
    let mut left = source.data_len;
    while left > 0 {
        let mut piece = vec![0; left.min(CHUNK_BYTES as u64) as usize];
        source.file.read_exact(&mut piece)?;
        left -= piece.len() as u64;
        crc.update(&piece);
        data_crc.update(&piece);
        outlet.send(piece)?;
    }
    if data_crc.value() != expected_crc {
        return Err(std::io::Error::other(
            "the snapshot file's data does not match its checksum",
        ));
    }
    outlet.send(crc.value().to_le_bytes().to_vec())
}

/// The data checksum in a snapshot file's header, whose header ends at `data_offset` with
/// `data length: u64 | data crc: u32 | header crc: u32` (see [`skiff_wal::snapshot`]); the
/// header's own checksum is checked first. Leaves the file at the data.
fn snapshot_data_crc(file: &mut File, data_offset: u64) -> std::io::Result<u32> {
    let bad = || std::io::Error::other("the snapshot file's header is damaged");
    let len = usize::try_from(data_offset)
        .ok()
        .filter(|&len| (16..=1 << 20).contains(&len))
        .ok_or_else(bad)?;
    let mut header = vec![0; len];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut header)?;
    let (body, stored) = header.split_at(len - 4);
    if crc32_le(stored) != Some(crc32c_of(body)) {
        return Err(bad());
    }
    crc32_le(&body[body.len() - 4..]).ok_or_else(bad)
}

fn crc32c_of(bytes: &[u8]) -> u32 {
    let mut crc = Checksum::default();
    crc.update(bytes);
    crc.value()
}

fn crc32_le(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// How long `skiff admin backup` waits, at each step.
#[derive(Clone, Copy, Debug)]
struct Patience {
    /// For the response head.
    head: Duration,
    /// For the next bytes of the body.
    idle: Duration,
    /// The slowest body, in bytes a second, waited for.
    min_bytes_per_sec: u64,
}

impl Patience {
    const CLI: Patience = Patience {
        head: HEAD_TIMEOUT,
        idle: READ_IDLE_TIMEOUT,
        min_bytes_per_sec: MIN_BYTES_PER_SEC,
    };

    /// The whole body's deadline: one idle wait, plus `total` bytes at the slowest rate.
    fn body(&self, total: u64) -> Duration {
        self.idle + Duration::from_secs(total / self.min_bytes_per_sec.max(1))
    }
}

/// `skiff admin backup --out FILE`: fetches the backup from the node at `addr` into
/// `FILE.tmp`, syncs it, checks it whole, and only then names it `FILE`.
pub async fn fetch(access: &Access, addr: &str, out: &Path) -> anyhow::Result<()> {
    fetch_within(access, addr, out, Patience::CLI).await
}

async fn fetch_within(
    access: &Access,
    addr: &str,
    out: &Path,
    patience: Patience,
) -> anyhow::Result<()> {
    let mut temp_name = out.as_os_str().to_owned();
    temp_name.push(".tmp");
    let temp = std::path::PathBuf::from(temp_name);
    let mut connection =
        tokio::time::timeout(patience.idle, httpc::open(access, addr, "GET", PATH))
            .await
            .with_context(|| format!("no answer from {addr}"))??;
    let (code, head, early) = tokio::time::timeout(patience.head, read_head(&mut connection))
        .await
        .with_context(|| format!("no answer from {addr} within {:?}", patience.head))??;
    if code != 200 {
        let mut body = early;
        let _ = tokio::time::timeout(
            patience.idle,
            (&mut connection).take(64 * 1024).read_to_end(&mut body),
        )
        .await;
        bail!("{addr} refused: {}", String::from_utf8_lossy(&body).trim());
    }
    let total: u64 = content_length(&head)
        .with_context(|| format!("{addr} sent a backup without a Content-Length"))?;
    let received = tokio::time::timeout(patience.body(total), async {
        let first = read_header(&mut connection, early, total, patience.idle).await?;
        write_temp(&mut connection, &first, total, &temp, patience.idle).await
    })
    .await
    .unwrap_or_else(|_| {
        Err(anyhow::anyhow!(
            "{addr} sent its {total} bytes too slowly (under {} bytes a second)",
            patience.min_bytes_per_sec
        ))
    });
    let verified = received.and_then(|()| {
        let file = File::open(&temp).with_context(|| format!("reading {}", temp.display()))?;
        format::verify(std::io::BufReader::new(file), total)
            .with_context(|| format!("the backup received from {addr} does not check"))
    });
    let header = match verified {
        Ok(header) => header,
        Err(error) => {
            let _ = std::fs::remove_file(&temp);
            return Err(error);
        }
    };
    std::fs::rename(&temp, out).with_context(|| format!("naming {}", out.display()))?;
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty());
    File::open(dir.unwrap_or(Path::new(".")))?.sync_all()?;
    println!(
        "backup written to {}: index {}, term {}, {} bytes",
        out.display(),
        header.meta.index.0,
        header.meta.term.0,
        total
    );
    Ok(())
}

/// Reads the body's first bytes (`early` and more), up to the longest header or the whole
/// body, and checks that the backup header they begin with gives the body's length `total`:
/// nothing more than the node declared in both is read or written.
async fn read_header(
    connection: &mut (impl AsyncRead + Unpin),
    mut first: Vec<u8>,
    total: u64,
    idle: Duration,
) -> anyhow::Result<Vec<u8>> {
    let want = total.min(format::MAX_HEADER_BYTES) as usize;
    if first.len() as u64 > total {
        bail!("the node sent more than its Content-Length");
    }
    while first.len() < want {
        let mut piece = vec![0; want - first.len()];
        let read = tokio::time::timeout(idle, connection.read(&mut piece))
            .await
            .context("the node stopped sending")??;
        if read == 0 {
            bail!(
                "the node stopped sending after {} of {total} bytes",
                first.len()
            );
        }
        first.extend_from_slice(&piece[..read]);
    }
    let (header, header_len) =
        BackupHeader::decode(&first).context("the node sent no backup header")?;
    let declared = header.file_len(header_len as u64)?;
    if declared != total {
        bail!(
            "the backup header gives a file of {declared} bytes, but the Content-Length is {total}"
        );
    }
    Ok(first)
}

/// Copies exactly `total` bytes of body (`first` first) into a new `temp`, and syncs it.
async fn write_temp(
    connection: &mut (impl AsyncRead + Unpin),
    first: &[u8],
    total: u64,
    temp: &Path,
    idle: Duration,
) -> anyhow::Result<()> {
    let mut file = File::create(temp).with_context(|| format!("creating {}", temp.display()))?;
    file.write_all(first)?;
    let mut written = first.len() as u64;
    let mut piece = vec![0; CHUNK_BYTES];
    while written < total {
        let want = (total - written).min(CHUNK_BYTES as u64) as usize;
        let read = tokio::time::timeout(idle, connection.read(&mut piece[..want]))
            .await
            .context("the node stopped sending")??;
        if read == 0 {
            bail!("the node stopped sending after {written} of {total} bytes");
        }
        file.write_all(&piece[..read])?;
        written += read as u64;
    }
    file.sync_all()
        .with_context(|| format!("syncing {}", temp.display()))
}

/// Reads a response head: the status code, the head's text, and body bytes read past it.
async fn read_head(
    connection: &mut (impl AsyncRead + Unpin),
) -> anyhow::Result<(u16, String, Vec<u8>)> {
    let mut bytes = Vec::new();
    let mut piece = [0; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
            let body = bytes[end + 4..].to_vec();
            let code = head
                .split_whitespace()
                .nth(1)
                .and_then(|code| code.parse().ok())
                .context("malformed HTTP status line")?;
            return Ok((code, head, body));
        }
        if bytes.len() > MAX_HEAD_BYTES {
            bail!("the response head is over {MAX_HEAD_BYTES} bytes");
        }
        let read = connection.read(&mut piece).await?;
        if read == 0 {
            bail!("the connection closed before a response");
        }
        bytes.extend_from_slice(&piece[..read]);
    }
}

fn content_length(head: &str) -> Option<u64> {
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slot is one per process: the tests that take it take turns.
    static SLOT_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn only_one_backup_holds_the_slot_at_a_time() {
        let _turn = SLOT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let first = Slot::take().expect("a free slot");
        assert!(Slot::take().is_none());
        drop(first);
        assert!(Slot::take().is_some());
    }

    #[test]
    fn a_response_head_gives_its_code_length_and_early_body() {
        let runtime = crate::cli::runtime().unwrap();
        let mut bytes: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\nSKIFF";
        let (code, head, early) = runtime.block_on(read_head(&mut bytes)).unwrap();
        assert_eq!((code, early.as_slice()), (200, &b"SKIFF"[..]));
        assert_eq!(content_length(&head), Some(12));
        for bad in [&b""[..], b"HTTP/1.1 200", b"garbage\r\n\r\n"] {
            let mut bytes = bad;
            assert!(runtime.block_on(read_head(&mut bytes)).is_err(), "{bad:?}");
        }
        assert_eq!(
            content_length("HTTP/1.1 200 OK\r\ncontent-length: lots"),
            None
        );
        let mut endless: &[u8] = &[b'x'; 2 * MAX_HEAD_BYTES];
        assert!(runtime.block_on(read_head(&mut endless)).is_err());
    }

    /// Runs `serve` on the first connection to a loopback port (after reading the request),
    /// and `skiff admin backup` against it with `patience`.
    fn fetch_served<F, Fut>(serve: F, out: &Path, patience: Patience) -> anyhow::Result<()>
    where
        F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let runtime = crate::cli::runtime().unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let server = tokio::spawn(async move {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = [0; 1024];
                let _ = socket.read(&mut request).await;
                serve(socket).await;
            });
            let fetched = fetch_within(&Access::default(), &addr, out, patience).await;
            server.abort();
            fetched
        })
    }

    /// Serves `response` once, then runs `skiff admin backup` against it.
    fn fetch_from(response: Vec<u8>, out: &Path) -> anyhow::Result<()> {
        fetch_served(
            |mut socket| async move {
                use tokio::io::AsyncWriteExt;
                let _ = socket.write_all(&response).await;
            },
            out,
            Patience::CLI,
        )
    }

    /// A response head declaring `content_length`, then `body`.
    fn response(content_length: usize, body: &[u8]) -> Vec<u8> {
        let mut bytes =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {content_length}\r\n\r\n").into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn the_cli_waits_longer_than_the_node_may_take_to_answer() {
        // The node's read and snapshot may each take PREPARE_TIMEOUT before the head is sent.
        assert!(Patience::CLI.head > 2 * PREPARE_TIMEOUT);
    }

    #[test]
    fn a_body_longer_than_its_header_says_or_trickled_is_refused_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.backup");
        let temp = dir.path().join("out.backup.tmp");
        let file = format::encode(1, SnapshotMeta::default(), &[7; 100]);
        let mut padded = file.clone();
        padded.extend_from_slice(&[0; 1000]);
        let cases: [(Vec<u8>, &str); 2] = [
            // A Content-Length beyond what the backup's header gives is never read.
            (
                response(padded.len(), &padded),
                "the Content-Length is 1162",
            ),
            // More bytes than the Content-Length.
            (
                response(file.len(), &padded),
                "more than its Content-Length",
            ),
        ];
        for (response, says) in cases {
            let error = format!("{:#}", fetch_from(response, &out).unwrap_err());
            assert!(error.contains(says), "{error}");
            assert!(!out.exists() && !temp.exists(), "{error}");
        }

        // A byte every 20 ms never trips the idle wait, but the whole body has a deadline.
        let patience = Patience {
            head: Duration::from_secs(5),
            idle: Duration::from_millis(500),
            min_bytes_per_sec: 1 << 20,
        };
        let trickled = file.clone();
        let started = std::time::Instant::now();
        let error = fetch_served(
            move |mut socket| async move {
                use tokio::io::AsyncWriteExt;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                    trickled.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                for byte in trickled {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if socket.write_all(&[byte]).await.is_err() {
                        return;
                    }
                }
            },
            &out,
            patience,
        )
        .unwrap_err();
        let error = format!("{error:#}");
        assert!(error.contains("too slowly"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(2), "{error}");
        assert!(!out.exists() && !temp.exists(), "{error}");
    }

    #[test]
    fn a_backup_whose_client_stops_reading_is_abandoned_and_frees_the_slot() {
        let _turn = SLOT_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        // A node snapshot file of a dozen pieces, as the log writes it.
        let options = skiff_wal::WalOptions::new(1);
        let (mut wal, _) =
            skiff_wal::Wal::open(skiff_wal::FsDisk::new(), dir.path(), options).unwrap();
        let meta = SnapshotMeta {
            index: LogIndex(5),
            ..SnapshotMeta::default()
        };
        let data: Vec<u8> = (0..12 * CHUNK_BYTES).map(|i| i as u8).collect();
        wal.save_snapshot(meta.clone(), data).unwrap();
        let source = Source {
            file: File::open(wal.snapshot_path().unwrap()).unwrap(),
            meta,
            data_len: wal.snapshot_len(),
            cluster_id: 1,
        };
        let runtime = crate::cli::runtime().unwrap();
        runtime.block_on(async {
            let slot = Slot::take().expect("a free slot");
            let response = stream(source, slot, Duration::from_millis(200)).await;
            assert_eq!(response.status(), StatusCode::OK);
            // The client reads nothing more: the pieces ahead fill, and the next one waits.
            assert!(Slot::take().is_none(), "the slot is held while sending");
            let freed = async {
                loop {
                    if let Some(slot) = Slot::take() {
                        return slot;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            let slot = tokio::time::timeout(Duration::from_secs(5), freed)
                .await
                .expect("the slot is freed once the send times out");
            drop(slot);
            // What the client reads later ends early: it is never taken for a whole backup.
            // (HTTP then sees fewer bytes than the Content-Length.)
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await;
            if let Ok(body) = body {
                assert!(body.len() < 12 * CHUNK_BYTES, "{} bytes", body.len());
            }
        });
    }

    #[test]
    fn a_node_that_sends_nonsense_or_stops_early_leaves_no_backup_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.backup");
        let temp = dir.path().join("out.backup.tmp");
        let mut garbage = b"HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n".to_vec();
        garbage.extend_from_slice(&[0xAB; 64]);
        let mut short = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
        short.extend_from_slice(b"SKIFFBAK");
        let cases: [(Vec<u8>, &str); 4] = [
            (garbage, "no backup header"),
            (short, "stopped sending after 8 of 100000 bytes"),
            (
                b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
                "without a Content-Length",
            ),
            (
                b"HTTP/1.1 409 Conflict\r\n\r\na backup is already being taken\n".to_vec(),
                "refused: a backup is already being taken",
            ),
        ];
        for (response, says) in cases {
            let error = format!("{:#}", fetch_from(response, &out).unwrap_err());
            assert!(error.contains(says), "{error}");
            assert!(!out.exists() && !temp.exists(), "{error}");
        }
        // A good file is written whole.
        let file = format::encode(1, SnapshotMeta::default(), b"data");
        let mut good =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", file.len()).into_bytes();
        good.extend_from_slice(&file);
        fetch_from(good, &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), file);
        assert!(!temp.exists());
    }
}
