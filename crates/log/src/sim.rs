//! An in-memory [`Storage`] for tests and simulation: every file keeps the
//! bytes written so far and, separately, the bytes a power cut would leave
//! (those covered by the last `sync`). [`SimStorage::power_cut`] drops every
//! unsynced write, as the machine losing power would.
//! [`SimStorage::set_free_bytes`] models a disk that fills up: an append
//! that does not fit fails with `StorageFull` (ENOSPC) and writes nothing,
//! as a real file's append does once it has cut its partial write off.
//!
//! Directory entries are durable only once their directory is synced, as
//! on Linux: a power cut takes every directory back to its listing at its
//! last `sync_dir`, so a file created, renamed or removed since comes back
//! as it was (a new file is gone, a rename undone, a removed file back with
//! its synced bytes). A directory made by `create_dir_all` is likewise an
//! entry of its parent; the ancestors it creates on the way stand for the
//! data directory itself and are durable at once. [`SimStorage::sync_all`]
//! makes everything durable, as `syncfs` does.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::shared_sync::SharedSync;
use crate::storage::{Storage, StorageFile};

#[derive(Default)]
struct SimFileState {
    data: Vec<u8>,
    /// What survives a power cut: the contents as of the last sync.
    durable: Vec<u8>,
    /// The lowest position changed since the last sync; a sync copies
    /// `data[dirty_from..]` into `durable` instead of the whole file.
    dirty_from: usize,
    /// Bytes read from this file since it was created (or the power came back).
    bytes_read: u64,
    /// The end of the last range whose write-back was started.
    written_back_to: u64,
}

struct SimFile {
    state: Mutex<SimFileState>,
    faults: Arc<Faults>,
}

#[derive(Default)]
struct Faults {
    fail_writes: AtomicBool,
    fail_syncs: AtomicBool,
    /// How many more syncs (of files, directories or the whole file
    /// system) succeed, when limited; every one after fails.
    syncs_left: Mutex<Option<u64>>,
    /// The bytes the disk has left, when limited. Appends use them up; only
    /// `set_free_bytes` gives space back (the model needs no more to test
    /// what a full disk does to the log).
    free_bytes: Mutex<Option<u64>>,
}

impl Faults {
    /// Fails a sync when syncs are set to fail or the allowance is spent.
    fn take_sync(&self, what: &str) -> io::Result<()> {
        let mut left = self.syncs_left.lock().unwrap_or_else(|e| e.into_inner());
        if self.fail_syncs.load(Ordering::Relaxed) || *left == Some(0) {
            return Err(injected(what));
        }
        if let Some(left) = left.as_mut() {
            *left -= 1;
        }
        Ok(())
    }

    /// Takes `len` bytes of the space left, or fails as a full disk does.
    fn take_space(&self, len: usize) -> io::Result<()> {
        let mut free = self.free_bytes.lock().unwrap_or_else(|e| e.into_inner());
        match *free {
            Some(left) if (len as u64) > left => Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("no space left on the simulated disk ({left} bytes free, {len} wanted)"),
            )),
            Some(left) => {
                *free = Some(left - len as u64);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl SimFile {
    fn state(&self) -> MutexGuard<'_, SimFileState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure"))
}

impl StorageFile for SimFile {
    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<usize> {
        let mut state = self.state();
        let start = (position as usize).min(state.data.len());
        let n = buf.len().min(state.data.len() - start);
        buf[..n].copy_from_slice(&state.data[start..start + n]);
        state.bytes_read += n as u64;
        Ok(n)
    }

    fn append_parts(&self, parts: &[&[u8]]) -> io::Result<u64> {
        if self.faults.fail_writes.load(Ordering::Relaxed) {
            return Err(injected("write"));
        }
        self.faults.take_space(parts.iter().map(|part| part.len()).sum())?;
        let mut state = self.state();
        let position = state.data.len();
        state.dirty_from = state.dirty_from.min(position);
        for part in parts {
            state.data.extend_from_slice(part);
        }
        Ok(position as u64)
    }

    fn sync(&self) -> io::Result<()> {
        self.faults.take_sync("fsync")?;
        let mut state = self.state();
        let SimFileState {
            data,
            durable,
            dirty_from,
            ..
        } = &mut *state;
        durable.truncate(*dirty_from);
        durable.extend_from_slice(&data[*dirty_from..]);
        *dirty_from = data.len();
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.state();
        let len = len as usize;
        state.dirty_from = state.dirty_from.min(len);
        state.data.resize(len, 0);
        Ok(())
    }

    fn len(&self) -> u64 {
        self.state().data.len() as u64
    }

    fn start_write_back(&self, _from: u64, to: u64) {
        self.state().written_back_to = to;
    }
}

#[derive(Default)]
struct Namespace {
    files: BTreeMap<PathBuf, Arc<SimFile>>,
    dirs: BTreeSet<PathBuf>,
    /// What a power cut leaves of the entries above: each directory's
    /// entries as of its last sync.
    durable_files: BTreeMap<PathBuf, Arc<SimFile>>,
    durable_dirs: BTreeSet<PathBuf>,
}

impl Namespace {
    /// Makes the entries of `dir` as they are now the ones a power cut keeps.
    fn sync_entries(&mut self, dir: &Path) {
        let in_dir = |path: &Path| path.parent() == Some(dir);
        self.durable_files.retain(|path, _| !in_dir(path));
        let files: Vec<_> = self.files.iter().filter(|(path, _)| in_dir(path)).collect();
        let files: Vec<_> = files
            .into_iter()
            .map(|(path, file)| (path.clone(), file.clone()))
            .collect();
        self.durable_files.extend(files);
        self.durable_dirs.retain(|path| !in_dir(path));
        let dirs: Vec<PathBuf> = self.dirs.iter().filter(|path| in_dir(path)).cloned().collect();
        self.durable_dirs.extend(dirs);
    }
}

/// In-memory storage with power-cut and fault injection.
#[derive(Default)]
pub struct SimStorage {
    namespace: Mutex<Namespace>,
    faults: Arc<Faults>,
    /// Set by [`SimStorage::sharing_syncs`].
    shared_sync: Option<SharedSync>,
    /// Whole-file-system syncs that `sync_whole` ran.
    whole_syncs: AtomicU64,
}

impl SimStorage {
    pub fn new() -> Arc<SimStorage> {
        Arc::new(SimStorage::default())
    }

    /// Storage on which logs synced together (`sync_logs`) share one
    /// `sync_all`, as on [`crate::DiskStorage::sharing_syncs`] one `syncfs`.
    pub fn sharing_syncs() -> Arc<SimStorage> {
        Arc::new(SimStorage {
            shared_sync: Some(SharedSync::default()),
            ..SimStorage::default()
        })
    }

    fn new_file(&self, state: SimFileState) -> Arc<SimFile> {
        Arc::new(SimFile {
            state: Mutex::new(state),
            faults: self.faults.clone(),
        })
    }

    /// `sync_all` as `sync_whole` runs it: failing with the other syncs,
    /// and counted.
    fn sync_whole_counted(&self) -> io::Result<()> {
        self.faults.take_sync("syncfs")?;
        self.sync_all();
        self.whole_syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// How many times `sync_whole` synced the whole file system.
    pub fn whole_syncs(&self) -> u64 {
        self.whole_syncs.load(Ordering::Relaxed)
    }

    fn namespace(&self) -> MutexGuard<'_, Namespace> {
        self.namespace.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loses every write and directory change not yet synced. Files
    /// already open (by a log that is about to be dropped) are detached:
    /// nothing they do afterwards reaches the surviving state.
    pub fn power_cut(&self) {
        let mut namespace = self.namespace();
        let durable_dirs = &namespace.durable_dirs;
        // An entry survives only where every directory above it did.
        let reachable = |path: &Path| {
            path.ancestors()
                .skip(1)
                .all(|dir| dir.parent().is_none() || durable_dirs.contains(dir))
        };
        let dirs: BTreeSet<PathBuf> = durable_dirs.iter().filter(|dir| reachable(dir)).cloned().collect();
        let files: BTreeMap<PathBuf, Arc<SimFile>> = (namespace.durable_files.iter())
            .filter(|(path, _)| reachable(path))
            .map(|(path, file)| {
                let durable = file.state().durable.clone();
                let state = SimFileState {
                    dirty_from: durable.len(),
                    data: durable.clone(),
                    durable,
                    bytes_read: 0,
                    written_back_to: 0,
                };
                (path.clone(), self.new_file(state))
            })
            .collect();
        namespace.durable_dirs = dirs.clone();
        namespace.durable_files = files.clone();
        namespace.dirs = dirs;
        namespace.files = files;
    }

    /// Makes every write and directory change durable (`syncfs`).
    pub fn sync_all(&self) {
        let mut namespace = self.namespace();
        for file in namespace.files.values() {
            let mut state = file.state();
            state.durable = state.data.clone();
            state.dirty_from = state.data.len();
        }
        namespace.durable_files = namespace.files.clone();
        namespace.durable_dirs = namespace.dirs.clone();
    }

    /// Makes every append fail (a full or failing disk) until cleared.
    pub fn set_fail_writes(&self, fail: bool) {
        self.faults.fail_writes.store(fail, Ordering::Relaxed);
    }

    /// Limits the space left on the disk to `free` bytes (`None`: no limit).
    pub fn set_free_bytes(&self, free: Option<u64>) {
        *self.faults.free_bytes.lock().unwrap_or_else(|e| e.into_inner()) = free;
    }

    /// The space left on the disk, when limited.
    pub fn free_bytes(&self) -> Option<u64> {
        *self.faults.free_bytes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes every sync (of a file, a directory or the whole file system)
    /// fail until cleared.
    pub fn set_fail_syncs(&self, fail: bool) {
        self.faults.fail_syncs.store(fail, Ordering::Relaxed);
    }

    /// Lets `left` more syncs succeed and fails every one after, as a disk
    /// that breaks at that point would (`None`: no limit). With a power
    /// cut afterwards, a crash at any point of a sequence of syncs.
    pub fn set_syncs_left(&self, left: Option<u64>) {
        *self.faults.syncs_left.lock().unwrap_or_else(|e| e.into_inner()) = left;
    }

    /// The bytes read from a file so far (for tests of what recovery reads).
    pub fn bytes_read(&self, path: &Path) -> u64 {
        self.namespace().files.get(path).map_or(0, |f| f.state().bytes_read)
    }

    /// Where the last write-back started on a file ends (for tests).
    pub fn written_back_to(&self, path: &Path) -> u64 {
        self.namespace()
            .files
            .get(path)
            .map_or(0, |f| f.state().written_back_to)
    }

    /// A copy of a file's current contents (for tests).
    pub fn file_contents(&self, path: &Path) -> Option<Vec<u8>> {
        self.namespace().files.get(path).map(|f| f.state().data.clone())
    }

    /// Replaces a file's contents and entry, durably (for tests that corrupt files).
    pub fn set_file_contents(&self, path: &Path, contents: Vec<u8>) {
        let state = SimFileState {
            dirty_from: contents.len(),
            data: contents.clone(),
            durable: contents,
            bytes_read: 0,
            written_back_to: 0,
        };
        let file = self.new_file(state);
        let mut namespace = self.namespace();
        namespace.files.insert(path.to_path_buf(), file.clone());
        namespace.durable_files.insert(path.to_path_buf(), file);
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} not found", path.display()))
}

impl Storage for SimStorage {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let mut namespace = self.namespace();
        if let Some(file) = namespace.files.get(path) {
            return Ok(file.clone());
        }
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if !create || !namespace.dirs.contains(&parent) {
            return Err(not_found(path));
        }
        let file = self.new_file(SimFileState::default());
        namespace.files.insert(path.to_path_buf(), file.clone());
        Ok(file)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut namespace = self.namespace();
        for ancestor in dir.ancestors().skip(1) {
            if namespace.dirs.insert(ancestor.to_path_buf()) {
                namespace.durable_dirs.insert(ancestor.to_path_buf());
            }
        }
        namespace.dirs.insert(dir.to_path_buf());
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let namespace = self.namespace();
        if !namespace.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let files = namespace.files.keys().filter(|p| p.parent() == Some(dir));
        let subdirs = namespace.dirs.iter().filter(|p| p.parent() == Some(dir));
        Ok(files
            .chain(subdirs)
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }

    fn exists(&self, path: &Path) -> bool {
        let namespace = self.namespace();
        namespace.files.contains_key(path) || namespace.dirs.contains(path)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.namespace()
            .files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut namespace = self.namespace();
        namespace.files.retain(|p, _| !p.starts_with(dir));
        namespace.dirs.retain(|p| !p.starts_with(dir));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut namespace = self.namespace();
        let file = namespace.files.remove(from).ok_or_else(|| not_found(from))?;
        namespace.files.insert(to.to_path_buf(), file);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.faults.take_sync("directory fsync")?;
        let mut namespace = self.namespace();
        if !namespace.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        namespace.sync_entries(dir);
        Ok(())
    }

    fn sync_whole(&self) -> bool {
        (self.shared_sync.as_ref()).is_some_and(|shared_sync| shared_sync.sync_whole(|| self.sync_whole_counted()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/p` and an empty file `/p/a`, both entries durable.
    fn storage_with_file() -> (Arc<SimStorage>, Arc<dyn StorageFile>) {
        let storage = SimStorage::new();
        storage.create_dir_all(Path::new("/p")).unwrap();
        let file = storage.open(Path::new("/p/a"), true).unwrap();
        storage.sync_dir(Path::new("/")).unwrap();
        storage.sync_dir(Path::new("/p")).unwrap();
        (storage, file)
    }

    #[test]
    fn power_cut_drops_unsynced_writes() {
        let (storage, file) = storage_with_file();
        let dir = Path::new("/p");
        file.append(b"synced").unwrap();
        file.sync().unwrap();
        file.append(b"-lost").unwrap();
        storage.power_cut();
        // The old handle is detached; the surviving file holds the synced bytes.
        file.append(b"-ghost").unwrap();
        let reopened = storage.open(&dir.join("a"), false).unwrap();
        assert_eq!(crate::storage::read_all(reopened.as_ref()).unwrap(), b"synced");
    }

    #[test]
    fn truncation_below_the_synced_length_is_undone_by_a_power_cut() {
        let (storage, file) = storage_with_file();
        file.append(b"0123456789").unwrap();
        file.sync().unwrap();
        file.set_len(4).unwrap();
        file.append(b"xy").unwrap();
        assert_eq!(crate::storage::read_all(file.as_ref()).unwrap(), b"0123xy");
        file.sync().unwrap();
        file.append(b"zz").unwrap();
        storage.power_cut();
        let reopened = storage.open(Path::new("/p/a"), false).unwrap();
        assert_eq!(crate::storage::read_all(reopened.as_ref()).unwrap(), b"0123xy");
    }

    #[test]
    fn power_cut_undoes_directory_changes_made_since_the_last_sync_dir() {
        let (storage, file) = storage_with_file();
        let dir = Path::new("/p");
        file.append(b"a's bytes").unwrap();
        file.sync().unwrap();
        storage.open(&dir.join("b"), true).unwrap().append(b"b").unwrap();
        storage.rename(&dir.join("a"), &dir.join("renamed")).unwrap();
        storage.create_dir_all(&dir.join("sub")).unwrap();
        storage.power_cut();
        assert_eq!(
            storage.list_dir(dir).unwrap(),
            ["a"],
            "new entries gone, the rename undone"
        );
        assert_eq!(storage.file_contents(&dir.join("a")).unwrap(), b"a's bytes");

        storage.rename(&dir.join("a"), &dir.join("renamed")).unwrap();
        storage.sync_dir(dir).unwrap();
        storage.remove_file(&dir.join("renamed")).unwrap();
        storage.power_cut();
        assert_eq!(
            storage.list_dir(dir).unwrap(),
            ["renamed"],
            "the synced rename stays, the removal is undone"
        );

        storage.create_dir_all(&dir.join("sub")).unwrap();
        storage.open(&dir.join("sub/c"), true).unwrap().append(b"c").unwrap();
        storage.sync_all();
        storage.power_cut();
        assert_eq!(
            storage.file_contents(&dir.join("sub/c")).unwrap(),
            b"c",
            "sync_all keeps everything"
        );
    }

    #[test]
    fn a_full_disk_refuses_appends_that_do_not_fit_until_space_returns() {
        let (storage, file) = storage_with_file();
        storage.set_free_bytes(Some(5));
        file.append(b"abc").unwrap();
        let full = file.append(b"def").unwrap_err();
        assert_eq!(full.kind(), io::ErrorKind::StorageFull);
        assert!(crate::storage::is_out_of_space(&full));
        file.append(b"de").unwrap();
        storage.set_free_bytes(None);
        file.append(b"f").unwrap();
        assert_eq!(crate::storage::read_all(file.as_ref()).unwrap(), b"abcdef");
    }

    #[test]
    fn injected_faults_fail_writes_and_syncs() {
        let (storage, file) = storage_with_file();
        storage.set_fail_writes(true);
        assert!(file.append(b"x").is_err());
        storage.set_fail_writes(false);
        storage.set_fail_syncs(true);
        file.append(b"x").unwrap();
        assert!(file.sync().is_err());
        assert_eq!(storage.list_dir(Path::new("/p")).unwrap(), vec!["a".to_string()]);
    }
}
