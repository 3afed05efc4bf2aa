//! Starting a segment: a new file, or a spare written over (a recycled segment).

use std::path::Path;

use skiff_raft::LogIndex;

use super::{allocation, write_sealed, write_zeros, Wal};
use crate::disk::Disk;
use crate::error::WalError;
use crate::record::{self, encode_small, Record, SegmentHeader};
use crate::segment::{self, Segment};

/// The longest a segment header's frame can be (versions 2 and 3).
const SEGMENT_HEADER_FRAME_MAX_BYTES: u64 = 128;

impl<D: Disk> Wal<D> {
    /// The header of a segment created now for the entry at `first_index`, in the file's
    /// life `life` with `mask` (0 and 0 for a new file).
    fn new_header(&self, first_index: LogIndex, life: u32, mask: u64) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(SEGMENT_HEADER_FRAME_MAX_BYTES as usize);
        encode_small(
            &Record::SegmentHeader(SegmentHeader {
                cluster_id: self.options.cluster_id,
                first_index,
                log_start: self.index.start,
                hard_state: self.hard_state,
                life,
                mask,
                max_segment_bytes: if life == 0 {
                    0
                } else {
                    self.options.max_segment_bytes
                },
                sealed: life != 0,
            }),
            &mut bytes,
        );
        bytes
    }

    /// Writes a new segment file at `path`: its header, `records`, and zeros ahead of the
    /// next batches; synced, and its directory too.
    pub(super) fn create_segment(
        &mut self,
        path: &Path,
        first_index: LogIndex,
        records: &[u8],
    ) -> Result<Segment, WalError> {
        let mut bytes = self.new_header(first_index, 0, 0);
        bytes.extend_from_slice(records);
        let len_bytes = bytes.len() as u64;
        let allocated_bytes = allocation(len_bytes, 0, &self.options);
        bytes.resize(allocated_bytes as usize, 0);
        self.disk.create(path)?;
        self.disk.append(path, &bytes)?;
        self.disk.sync(path)?;
        self.disk.sync_dir(&self.dir)?;
        Ok(Segment {
            path: path.to_path_buf(),
            len_bytes,
            allocated_bytes,
            mask: 0,
            max_segment_bytes: 0,
            sealed: false,
        })
    }

    /// Writes the segment for `first_index` over the spare file `spare`, `file_len` bytes
    /// long: its header with the file's next life and that life's mask, then `records` masked
    /// with it, over the bytes of the file's earlier lives (no zeros, no new blocks, up to the
    /// file's length). The header is synced before the records are written, so that a crash
    /// can never keep records of a life whose header it lost (a retry would take the same
    /// life, and the records would verify). The file is then renamed to `path` and the
    /// directory synced: until that rename is durable it is a spare, never a segment whose
    /// header is not yet written.
    pub(super) fn recycle(
        &mut self,
        spare: &Path,
        mut file_len: u64,
        path: &Path,
        first_index: LogIndex,
        records: &mut Vec<u8>,
    ) -> Result<Segment, WalError> {
        let last_life = self
            .disk
            .read(spare, 0, file_len.min(SEGMENT_HEADER_FRAME_MAX_BYTES))
            .ok()
            .and_then(|bytes| match record::decode(&bytes, 0).ok()?.record {
                Record::SegmentHeader(header) => Some((header.life, header.mask)),
                _ => None,
            });
        let (last_life, secret) = match last_life {
            // A file written new: its records are unmasked; its masks start now.
            Some((0, _)) => (0, self.draw_secret()),
            Some((life, mask)) if life < u32::MAX - 1 => (life, record::mask_secret(life, mask)),
            _ => {
                // No header to count on (damage, or the file ran out of lives): its earlier
                // lives' masks are unknown, so its bytes go, durably, before it starts again
                // as a file written new.
                self.disk.truncate(spare, 0)?;
                self.disk.sync(spare)?;
                file_len = 0;
                (0, self.draw_secret())
            }
        };
        // One life in 2^32 has a checksum mask of 0 (unmasked): then the one after it is taken.
        let mut life = last_life + 1;
        if record::crc_mask(record::life_mask(secret, life)) == 0 {
            life += 1;
        }
        let mask = record::life_mask(secret, life);
        // The header is a batch of its own, sealed like every batch of the life.
        let mut header = self.new_header(first_index, life, mask);
        header.extend_from_slice(&record::batch_seal(mask));
        self.disk.write_at(spare, 0, &header)?;
        self.disk.sync(spare)?;
        let mut allocated_bytes = file_len;
        let written_end = write_sealed(
            &mut self.disk,
            spare,
            header.len() as u64,
            records,
            mask,
            true,
        )?;
        let len_bytes = written_end;
        if written_end > file_len {
            // Past the file's end: zeros ahead, as in a new file.
            allocated_bytes = allocation(written_end, 0, &self.options);
            write_zeros(
                &mut self.disk,
                &mut self.zeros,
                spare,
                written_end,
                allocated_bytes,
            )?;
        }
        self.disk.sync(spare)?;
        self.disk.rename(spare, path)?;
        self.disk.sync_dir(&self.dir)?;
        Ok(Segment {
            path: path.to_path_buf(),
            len_bytes,
            allocated_bytes,
            mask,
            max_segment_bytes: self.options.max_segment_bytes,
            sealed: true,
        })
    }

    /// A secret for a file's masks, from the caller's seed, the directory's incarnation and
    /// where the log stands (which moves between two opens of a log with the same seed).
    fn draw_secret(&mut self) -> u64 {
        self.masks_drawn += 1;
        let seed = splitmix64(self.options.mask_seed ^ self.incarnation);
        let seed = splitmix64(seed ^ self.index.last_index().0);
        splitmix64(seed ^ self.masks_drawn)
    }

    /// Takes the spare segment files in the directory (up to `options.spare_segments`) and
    /// removes any others: a spare left from before the last stop, or one a crash left
    /// half-written into (its bytes are never read: the next life overwrites them and masks
    /// its own).
    pub(super) fn keep_spares(&mut self) -> Result<(), WalError> {
        let mut names: Vec<String> = self
            .disk
            .list(&self.dir)?
            .into_iter()
            .filter(|name| segment::is_spare_file_name(name))
            .collect();
        names.sort();
        let extra = names.len().saturating_sub(self.options.spare_segments);
        for name in names.drain(..extra) {
            self.disk.remove(&self.dir.join(name))?;
        }
        // (`Wal::open` syncs the directory next.)
        self.spares = names.into_iter().map(|name| self.dir.join(name)).collect();
        Ok(())
    }
}

/// SplitMix64's output function: spreads a counter's bits over the whole word.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
