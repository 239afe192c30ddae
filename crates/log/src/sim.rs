//! An in-memory [`Storage`] for tests and simulation: every file keeps the
//! bytes written so far and, separately, the bytes a power cut would leave
//! (those covered by the last `sync`). [`SimStorage::power_cut`] drops every
//! unsynced write, as the machine losing power would.
//! [`SimStorage::set_free_bytes`] models a disk that fills up: an append
//! that does not fit fails with `StorageFull` (ENOSPC) and writes nothing,
//! as a real file's append does once it has cut its partial write off.
//!
//! Directory operations (create, rename, remove) are durable at once: the
//! log fsyncs its directory after each of them, so modelling a lost rename
//! would only test the model.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::storage::{Storage, StorageFile};

#[derive(Default)]
struct SimFileState {
    data: Vec<u8>,
    /// What survives a power cut: the contents as of the last sync.
    durable: Vec<u8>,
    /// The lowest position changed since the last sync; a sync copies
    /// `data[dirty_from..]` into `durable` instead of the whole file.
    dirty_from: usize,
}

struct SimFile {
    state: Mutex<SimFileState>,
    faults: Arc<Faults>,
}

#[derive(Default)]
struct Faults {
    fail_writes: AtomicBool,
    fail_syncs: AtomicBool,
    /// The bytes the disk has left, when limited. Appends use them up; only
    /// `set_free_bytes` gives space back (the model needs no more to test
    /// what a full disk does to the log).
    free_bytes: Mutex<Option<u64>>,
}

impl Faults {
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
        let state = self.state();
        let start = (position as usize).min(state.data.len());
        let n = buf.len().min(state.data.len() - start);
        buf[..n].copy_from_slice(&state.data[start..start + n]);
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
        if self.faults.fail_syncs.load(Ordering::Relaxed) {
            return Err(injected("fsync"));
        }
        let mut state = self.state();
        let SimFileState {
            data,
            durable,
            dirty_from,
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
}

#[derive(Default)]
struct Namespace {
    files: BTreeMap<PathBuf, Arc<SimFile>>,
    dirs: BTreeSet<PathBuf>,
}

/// In-memory storage with power-cut and fault injection.
#[derive(Default)]
pub struct SimStorage {
    namespace: Mutex<Namespace>,
    faults: Arc<Faults>,
}

impl SimStorage {
    pub fn new() -> Arc<SimStorage> {
        Arc::new(SimStorage::default())
    }

    fn namespace(&self) -> MutexGuard<'_, Namespace> {
        self.namespace.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loses every write not yet synced. Files already open (by a log that
    /// is about to be dropped) are detached: nothing they do afterwards
    /// reaches the surviving state.
    pub fn power_cut(&self) {
        let mut namespace = self.namespace();
        for file in namespace.files.values_mut() {
            let durable = file.state().durable.clone();
            let state = SimFileState {
                dirty_from: durable.len(),
                data: durable.clone(),
                durable,
            };
            *file = Arc::new(SimFile {
                state: Mutex::new(state),
                faults: self.faults.clone(),
            });
        }
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

    /// Makes every fsync fail until cleared.
    pub fn set_fail_syncs(&self, fail: bool) {
        self.faults.fail_syncs.store(fail, Ordering::Relaxed);
    }

    /// A copy of a file's current contents (for tests).
    pub fn file_contents(&self, path: &Path) -> Option<Vec<u8>> {
        self.namespace().files.get(path).map(|f| f.state().data.clone())
    }

    /// Replaces a file's contents, durably (for tests that corrupt files).
    pub fn set_file_contents(&self, path: &Path, contents: Vec<u8>) {
        let state = SimFileState {
            dirty_from: contents.len(),
            data: contents.clone(),
            durable: contents,
        };
        let file = Arc::new(SimFile {
            state: Mutex::new(state),
            faults: self.faults.clone(),
        });
        self.namespace().files.insert(path.to_path_buf(), file);
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
        let file = Arc::new(SimFile {
            state: Mutex::default(),
            faults: self.faults.clone(),
        });
        namespace.files.insert(path.to_path_buf(), file.clone());
        Ok(file)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut namespace = self.namespace();
        for ancestor in dir.ancestors() {
            namespace.dirs.insert(ancestor.to_path_buf());
        }
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

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_cut_drops_unsynced_writes() {
        let storage = SimStorage::new();
        let dir = Path::new("/p");
        storage.create_dir_all(dir).unwrap();
        let file = storage.open(&dir.join("a"), true).unwrap();
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
        let storage = SimStorage::new();
        storage.create_dir_all(Path::new("/p")).unwrap();
        let file = storage.open(Path::new("/p/a"), true).unwrap();
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
    fn a_full_disk_refuses_appends_that_do_not_fit_until_space_returns() {
        let storage = SimStorage::new();
        storage.create_dir_all(Path::new("/p")).unwrap();
        let file = storage.open(Path::new("/p/a"), true).unwrap();
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
        let storage = SimStorage::new();
        storage.create_dir_all(Path::new("/p")).unwrap();
        let file = storage.open(Path::new("/p/a"), true).unwrap();
        storage.set_fail_writes(true);
        assert!(file.append(b"x").is_err());
        storage.set_fail_writes(false);
        storage.set_fail_syncs(true);
        file.append(b"x").unwrap();
        assert!(file.sync().is_err());
        assert_eq!(storage.list_dir(Path::new("/p")).unwrap(), vec!["a".to_string()]);
    }
}
