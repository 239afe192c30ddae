//! What the tests look at on disk: a partition directory's file names, and
//! the wall clock that deferred deletions are due by.

use std::path::Path;

/// Milliseconds since the epoch, as the log stamps a retired file's due time.
pub fn wall_clock_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since_epoch.unwrap().as_millis() as i64
}

/// The names in the partition directory `t-0` under `dir` ending with `suffix`, sorted.
pub fn names_ending(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("t-0"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}
