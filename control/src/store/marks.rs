//! High-water marks of the numbers the store hands out (job ids, revisions, fencing
//! tokens), kept in `DIR/rustci.marks`, a file of its own beside the database.
//!
//! Why outside the database: when WAL frames are damaged, SQLite drops them (and every
//! frame after them) at recovery without an error, so the last commits vanish, rows and
//! any counter stored with them alike, and the next job would get a lost job's name. A
//! separate file, replaced atomically and fsynced before any number past its marks is
//! committed, does not go back with the WAL. Numbers are reserved in blocks (one small
//! fsynced write per [`JOB_BLOCK`] job ids), so a crash skips at most a block; a clean
//! close writes the exact marks, so a clean restart skips nothing.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::StoreError;
use crate::perms;

/// The marks file inside the data directory.
pub const MARKS_FILE: &str = "rustci.marks";
/// Job ids reserved at once.
pub const JOB_BLOCK: u64 = 1_000;
/// Revisions (several per job) and fencing tokens reserved at once.
pub const CHANGE_BLOCK: u64 = 10_000;

/// The highest job id, revision and fencing token ever used (or reserved).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks {
    pub job_id: u64,
    pub revision: u64,
    pub fencing_token: u64,
}

impl Marks {
    fn max(self, o: Marks) -> Marks {
        Marks {
            job_id: self.job_id.max(o.job_id),
            revision: self.revision.max(o.revision),
            fencing_token: self.fencing_token.max(o.fencing_token),
        }
    }

    fn covers(self, o: Marks) -> bool {
        self.job_id >= o.job_id
            && self.revision >= o.revision
            && self.fencing_token >= o.fencing_token
    }
}

/// The marks file of one store.
#[derive(Debug)]
pub struct MarksFile {
    path: PathBuf,
    /// What the file holds (reserved).
    reserved: Marks,
    /// What the file held at open (numbers a crashed predecessor may have used).
    opened: Marks,
    /// The highest numbers committed through this handle.
    used: Marks,
}

impl MarksFile {
    /// Reads `dir`'s marks (all 0 when there is no file yet: a new store, or one from
    /// before marks existed).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(MARKS_FILE);
        let reserved = read(&path)?;
        Ok(Self {
            path,
            reserved,
            opened: reserved,
            used: Marks::default(),
        })
    }

    /// What no number handed out may be at or below: the file's marks at open (numbers a
    /// crashed predecessor may have committed) and what this handle covered since. Not
    /// the block reserved since open: a reload in the same process would skip it.
    pub fn floor(&self) -> Marks {
        self.opened.max(self.used)
    }

    /// Makes sure the file covers `next` before it is committed: reserves a block beyond
    /// it when it does not (one fsynced write).
    pub fn cover(&mut self, next: Marks) -> Result<(), StoreError> {
        if self.reserved.covers(next) {
            return Ok(());
        }
        let want = self.reserved.max(Marks {
            job_id: next.job_id.saturating_add(JOB_BLOCK),
            revision: next.revision.saturating_add(CHANGE_BLOCK),
            fencing_token: next.fencing_token.saturating_add(CHANGE_BLOCK),
        });
        self.reserved = self.write(want)?;
        Ok(())
    }

    /// Records that `used` was committed (a failed commit used nothing).
    pub fn committed(&mut self, used: Marks) {
        self.used = self.used.max(used);
    }

    /// Replaces the file with `marks`, never lowering what it holds (another replica
    /// sharing the directory may have reserved more); returns what it now holds.
    fn write(&self, marks: Marks) -> Result<Marks, StoreError> {
        let marks = read(&self.path)?.max(marks);
        store(&self.path, marks).map_err(|source| StoreError::DataDir {
            path: self.path.display().to_string(),
            source,
        })?;
        Ok(marks)
    }
}

impl Drop for MarksFile {
    /// A clean close gives back the unused rest of the block, unless someone reserved
    /// past it meanwhile: the next start continues right after the last number committed.
    fn drop(&mut self) {
        if self.used == Marks::default() || self.used == self.reserved {
            return;
        }
        if read(&self.path).is_ok_and(|m| m == self.reserved) {
            // Never below what the file held at open: a crashed predecessor may have
            // used those numbers.
            let _ = store(&self.path, self.used.max(self.opened));
        }
    }
}

/// Writes `marks` to `path` atomically and durably (temp file, fsync, rename, fsync of
/// the directory).
fn store(path: &Path, marks: Marks) -> std::io::Result<()> {
    let tmp = path.with_extension("marks.tmp");
    let _ = fs::remove_file(&tmp);
    perms::create_private(&tmp)?;
    let mut f = fs::OpenOptions::new().write(true).open(&tmp)?;
    write!(
        f,
        "job_id {}\nrevision {}\nfencing_token {}\n",
        marks.job_id, marks.revision, marks.fencing_token
    )?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<Marks, StoreError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Marks::default()),
        Err(source) => {
            return Err(StoreError::DataDir {
                path: path.display().to_string(),
                source,
            })
        }
    };
    let mut m = Marks::default();
    for (i, line) in text.lines().enumerate() {
        let bad = |reason: String| StoreError::Corrupt {
            what: format!("{} line {}", path.display(), i + 1),
            reason,
        };
        let (key, value) = line
            .split_once(' ')
            .ok_or_else(|| bad(format!("expected `KEY NUMBER`, got {line:?}")))?;
        let n: u64 = value
            .parse()
            .map_err(|_| bad(format!("{key}: not a number: {value:?}")))?;
        match key {
            "job_id" => m.job_id = n,
            "revision" => m.revision = n,
            "fencing_token" => m.fencing_token = n,
            other => return Err(bad(format!("unknown key {other:?}"))),
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_reserved_before_use_and_a_clean_close_gives_back_the_rest() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut f = MarksFile::open(tmp.path()).expect("open");
        assert_eq!(f.floor(), Marks::default());
        let next = Marks {
            job_id: 1,
            revision: 2,
            fencing_token: 0,
        };
        f.cover(next).expect("cover");
        f.committed(next);
        // A crash now: the next start skips the reserved block.
        let after_crash = MarksFile::open(tmp.path()).expect("reopen").floor();
        assert_eq!(after_crash.job_id, 1 + JOB_BLOCK);
        assert_eq!(after_crash.revision, 2 + CHANGE_BLOCK);
        drop(f);
        assert_eq!(MarksFile::open(tmp.path()).expect("reopen").floor(), next);
    }

    #[test]
    fn a_garbled_marks_file_is_refused_naming_the_line() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(tmp.path().join(MARKS_FILE), "job_id 7\nrevision x\n").expect("write");
        let e = MarksFile::open(tmp.path())
            .expect_err("refused")
            .to_string();
        assert!(e.contains("line 2") && e.contains("revision"), "{e}");
    }
}
