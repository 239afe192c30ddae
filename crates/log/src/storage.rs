//! The storage layer the log is written through: a small file-and-directory
//! trait with a disk implementation ([`DiskStorage`]) and an in-memory one
//! that can simulate a power cut ([`crate::SimStorage`]).
//!
//! Files are append-only from the log's point of view: it writes at the end,
//! reads anywhere with positional reads (so readers never share a cursor
//! with the writer), and truncates only during recovery.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::shared_sync::SharedSync;

/// One open file. Thread-safe: positional reads may run concurrently with
/// an append; appends are serialized by the caller (the log's append lock).
pub trait StorageFile: Send + Sync {
    /// Reads up to `buf.len()` bytes at `position`; fewer only at end of file.
    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<usize>;
    /// Writes `parts`, one after the other, at the end of the file in one
    /// write; returns the position the first starts at. On failure nothing
    /// is appended: a partial write is cut off again, so the next append
    /// starts where this one did. A failure to cut it off is reported as an
    /// error of kind `Other`, never as a full disk.
    fn append_parts(&self, parts: &[&[u8]]) -> io::Result<u64>;
    /// Makes every byte written so far durable (fdatasync). A failure is
    /// never of a full disk's kind (see `fsync_failed`).
    fn sync(&self) -> io::Result<()>;
    /// Truncates (or extends with zeros) to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The current length in bytes.
    fn len(&self) -> u64;

    /// Starts writing the bytes in `from..to` to the disk without waiting
    /// for it, so that a later sync finds less to write. Durability still
    /// comes only from `sync`.
    fn start_write_back(&self, _from: u64, _to: u64) {}

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`append_parts`](StorageFile::append_parts) of one buffer.
    fn append(&self, data: &[u8]) -> io::Result<u64> {
        self.append_parts(&[data])
    }

    /// Fills `buf` from `position`, failing with UnexpectedEof past the end.
    fn read_exact_at(&self, mut buf: &mut [u8], mut position: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, position) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past end of file")),
                Ok(n) => {
                    buf = &mut buf[n..];
                    position += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A file system namespace: the directory operations the log needs.
pub trait Storage: Send + Sync {
    /// Opens a file for reading and appending, creating it when `create`.
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>>;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names (not paths) of the entries in `dir`.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn exists(&self, path: &Path) -> bool;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes creations, renames and removals in `dir` durable. A failure is
    /// never of a full disk's kind (see `fsync_failed`).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// On a storage that shares syncs, syncs the whole file system and
    /// returns true if that made everything written before the call
    /// durable. Elsewhere (or when it failed) false: each file must sync
    /// itself, and reports its own errors.
    fn sync_whole(&self) -> bool {
        false
    }
}

/// The real file system.
#[derive(Default, Clone)]
pub struct DiskStorage {
    /// Set by [`DiskStorage::sharing_syncs`].
    file_system: Option<Arc<FileSystem>>,
}

/// A file system on which logs synced together share one `syncfs`.
struct FileSystem {
    /// An open directory on it, for `syncfs`; opened once, so that a
    /// write-back error anywhere on the file system since is reported to it.
    handle: File,
    shared: SharedSync,
}

impl FileSystem {
    fn sync_whole(&self) -> io::Result<()> {
        sync_file_system(&self.handle)
    }
}

impl DiskStorage {
    /// The real file system, on which logs under `dir` synced together
    /// (`sync_logs`) share one `syncfs` (see `shared_sync`). Kernels before
    /// Linux 5.8 do not report write-back errors to `syncfs`; there each
    /// log syncs its own files.
    pub fn sharing_syncs(dir: &Path) -> io::Result<DiskStorage> {
        if !syncfs_reports_errors() {
            tracing::info!("this kernel's syncfs does not report write-back errors: every log syncs its own files");
            return Ok(DiskStorage::default());
        }
        Ok(DiskStorage {
            file_system: Some(Arc::new(FileSystem {
                handle: File::open(dir)?,
                shared: SharedSync::default(),
            })),
        })
    }
}

/// `syncfs` of the file system holding `handle`: every write and directory
/// change on it made durable.
pub fn sync_file_system(handle: &File) -> io::Result<()> {
    // SAFETY: the descriptor stays open for the call.
    if unsafe { libc::syncfs(handle.as_raw_fd()) } != 0 {
        return Err(fsync_failed(io::Error::last_os_error()));
    }
    Ok(())
}

/// Linux reports write-back errors to `syncfs` from 5.8 on.
fn syncfs_reports_errors() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    version >= (5, 8)
}

struct DiskFile {
    file: File,
    /// The end of the file, where the next append goes. A mutex rather than
    /// an atomic so that a failed append can roll the length back before the
    /// next one starts.
    len: Mutex<u64>,
}

impl StorageFile for DiskFile {
    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<usize> {
        self.file.read_at(buf, position)
    }

    fn append_parts(&self, parts: &[&[u8]]) -> io::Result<u64> {
        let mut len = self.len.lock().unwrap_or_else(|e| e.into_inner());
        let position = *len;
        if let Err(error) = write_all_vectored_at(&self.file, parts, position) {
            // Leave no partial batch behind for the next append to follow.
            // Shrinking needs no space, so this works on a full disk; if it
            // fails anyway, the file's end is unknown and the error must not
            // pass for a full disk the log could recover from.
            if let Err(cut) = self.file.set_len(position) {
                return Err(io::Error::other(format!(
                    "{error}; cutting the partial write back to {position} bytes failed: {cut}"
                )));
            }
            return Err(error);
        }
        *len = position + parts.iter().map(|part| part.len() as u64).sum::<u64>();
        Ok(position)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data().map_err(fsync_failed)
    }

    fn set_len(&self, new_len: u64) -> io::Result<()> {
        let mut len = self.len.lock().unwrap_or_else(|e| e.into_inner());
        self.file.set_len(new_len)?;
        *len = new_len;
        Ok(())
    }

    fn len(&self) -> u64 {
        *self.len.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start_write_back(&self, from: u64, to: u64) {
        let (Ok(offset), Ok(len)) = (i64::try_from(from), i64::try_from(to.saturating_sub(from))) else {
            return;
        };
        // SAFETY: the descriptor is open for the call. A failure changes
        // nothing that matters: the data is written back later, and a
        // write-back error is reported by the next sync.
        unsafe { libc::sync_file_range(self.file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
    }
}

/// Writes `parts` contiguously from `position` with as few `writev` calls
/// as the kernel allows. The file's cursor is only used here, under the
/// append lock; readers use positional reads.
fn write_all_vectored_at(mut file: &File, parts: &[&[u8]], position: u64) -> io::Result<()> {
    file.seek(SeekFrom::Start(position))?;
    let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|part| IoSlice::new(part)).collect();
    let mut remaining = &mut slices[..];
    IoSlice::advance_slices(&mut remaining, 0);
    while !remaining.is_empty() {
        match file.write_vectored(remaining) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut remaining, written),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

impl Storage for DiskStorage {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len();
        Ok(Arc::new(DiskFile {
            file,
            len: Mutex::new(len),
        }))
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all().map_err(fsync_failed)
    }

    fn sync_whole(&self) -> bool {
        (self.file_system.as_ref())
            .is_some_and(|file_system| file_system.shared.sync_whole(|| file_system.sync_whole()))
    }
}

/// A failed fsync passes for anything but a full disk, whatever its errno
/// (some file systems answer ENOSPC for writes the page cache had taken):
/// the kernel may have dropped the pages it could not write, so what
/// reached the disk is unknown and the log must go offline, as Kafka's log
/// directory does, rather than wait for space and retry.
fn fsync_failed(error: io::Error) -> io::Error {
    if is_out_of_space(&error) {
        io::Error::other(format!("fsync failed: {error}"))
    } else {
        error
    }
}

/// The file system ran out of space (ENOSPC) or quota (EDQUOT): a write
/// failed for want of room, not because the device or the files are broken.
pub(crate) fn is_out_of_space(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}

/// Writes `contents` to `path` so that a crash leaves either the old or the
/// new file: write a temporary file, fsync it, rename it over, fsync the dir.
pub(crate) fn write_atomically(storage: &dyn Storage, path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = temporary_path(path);
    if storage.exists(&tmp) {
        storage.remove_file(&tmp)?;
    }
    let file = storage.open(&tmp, true)?;
    file.append(contents)?;
    file.sync()?;
    drop(file);
    storage.rename(&tmp, path)?;
    match path.parent() {
        Some(dir) => storage.sync_dir(dir),
        None => Ok(()),
    }
}

pub(crate) fn temporary_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Replaces `path` with `contents` through a temporary file and a rename,
/// without fsyncs: the caller makes it durable later (fsync the file, then
/// its directory) when it needs to.
pub(crate) fn replace_file(storage: &dyn Storage, path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = temporary_path(path);
    if storage.exists(&tmp) {
        storage.remove_file(&tmp)?;
    }
    storage.open(&tmp, true)?.append(contents)?;
    storage.rename(&tmp, path)
}

/// A segment's index file, which the log writes only when it flushes the
/// index: it is opened for each write and read and closed again, so an
/// index holds no file descriptor in between. Thousands of partitions would
/// otherwise hold three descriptors each (Kafka maps its indexes and keeps
/// only the segment file open).
#[derive(Clone)]
pub(crate) struct IndexFile {
    storage: Arc<dyn Storage>,
    path: PathBuf,
}

impl IndexFile {
    pub fn new(storage: &Arc<dyn Storage>, path: PathBuf) -> IndexFile {
        IndexFile {
            storage: storage.clone(),
            path,
        }
    }

    /// Empties the file, creating it if missing.
    pub fn truncate(&self) -> io::Result<()> {
        self.storage.open(&self.path, true)?.set_len(0)
    }

    /// The file's bytes, creating it empty if missing.
    pub fn read(&self) -> io::Result<Vec<u8>> {
        read_all(self.storage.open(&self.path, true)?.as_ref())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// An index kept in memory and written to its file lazily (`.index`,
/// `.timeindex`): on flush, and on a close that syncs many logs at once.
pub(crate) trait LazyIndex {
    fn file(&self) -> &IndexFile;
    fn persisted(&self) -> &Mutex<Persisted>;
    /// How many entries the index has, and the file bytes of those from
    /// `from` on.
    fn encode_from(&self, from: usize) -> (usize, Vec<u8>);

    /// Writes the entries the file lacks and fsyncs it.
    fn flush(&self) -> io::Result<()> {
        self.persist(true).map(|_| ())
    }

    /// Writes the entries the file lacks without an fsync; returns whether
    /// some are not yet durable.
    fn write(&self) -> io::Result<bool> {
        self.persist(false)
    }

    /// Appends the entries the file lacks and, with `sync`, fsyncs
    /// whatever is written; returns whether written entries are left
    /// unsynced. A file no longer at its path takes nothing: its segment
    /// was retired or replaced meanwhile, and the log no longer reads it.
    fn persist(&self, sync: bool) -> io::Result<bool> {
        let mut progress = self.persisted().lock().unwrap_or_else(|e| e.into_inner());
        let (entries, bytes) = self.encode_from(progress.written);
        let write = progress.written < entries;
        let sync = sync && (write || progress.synced < progress.written);
        if !write && !sync {
            return Ok(progress.synced < progress.written);
        }
        let file = match self.file().storage.open(&self.file().path, false) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                *progress = Persisted::loaded(entries);
                return Ok(false);
            }
            Err(error) => return Err(error),
        };
        if write {
            file.append(&bytes)?;
            progress.written = entries;
        }
        if sync {
            file.sync()?;
            progress.synced = progress.written;
        }
        Ok(progress.synced < progress.written)
    }
}

/// How many of an index's entries its file holds, and how many of those
/// are durable. Both only grow: an index whose file is cut is made anew.
/// A flush that finds entries written but not synced (by a close writing
/// many logs' files before one sync of them all) syncs them itself.
#[derive(Default)]
pub(crate) struct Persisted {
    written: usize,
    synced: usize,
}

impl Persisted {
    /// Entries read from the file: already on disk.
    pub fn loaded(entries: usize) -> Persisted {
        Persisted {
            written: entries,
            synced: entries,
        }
    }
}

#[cfg(test)]
impl IndexFile {
    /// An index file on the real file system, for unit tests.
    pub fn on_disk(path: &Path) -> IndexFile {
        IndexFile::new(
            &(Arc::new(DiskStorage::default()) as Arc<dyn Storage>),
            path.to_path_buf(),
        )
    }
}

/// Reads a whole (small) file.
pub(crate) fn read_all(file: &dyn StorageFile) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; file.len() as usize];
    file.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_file_appends_reads_and_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let storage = DiskStorage::default();
        let path = dir.path().join("f");
        let file = storage.open(&path, true).unwrap();
        assert_eq!(file.append(b"hello").unwrap(), 0);
        assert_eq!(file.append(b" world").unwrap(), 5);
        file.sync().unwrap();
        let mut buf = [0u8; 5];
        file.read_exact_at(&mut buf, 6).unwrap();
        assert_eq!(&buf, b"world");
        file.set_len(5).unwrap();
        assert_eq!(file.len(), 5);
        assert!(file.read_exact_at(&mut buf, 3).is_err());
        drop(file);
        let reopened = storage.open(&path, false).unwrap();
        assert_eq!(read_all(reopened.as_ref()).unwrap(), b"hello");
        assert_eq!(storage.list_dir(dir.path()).unwrap(), vec!["f".to_string()]);
    }

    #[test]
    fn atomic_write_replaces_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint");
        write_atomically(&DiskStorage::default(), &path, b"one").unwrap();
        write_atomically(&DiskStorage::default(), &path, b"two!").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two!");
        assert!(!dir.path().join("checkpoint.tmp").exists());
    }

    #[test]
    fn only_a_storage_sharing_syncs_syncs_the_whole_file_system() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!DiskStorage::default().sync_whole());
        let sharing = DiskStorage::sharing_syncs(dir.path()).unwrap();
        assert_eq!(sharing.sync_whole(), syncfs_reports_errors());
    }
}
