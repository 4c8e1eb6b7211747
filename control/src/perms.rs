//! Who may read the server's files. The data directory holds every tenant's job
//! commands, so it is private to the user who runs the server: the directory 0700, its
//! files 0600, created so before anything is written into them. A file that holds secrets
//! and that the server only reads (the `--auth` file) is refused when group or others may
//! read or change it, as ssh refuses such a private key: narrowing it behind the
//! operator's back would hide that the secrets were already exposed.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of a directory only its owner may enter.
pub const PRIVATE_DIR: u32 = 0o700;
/// Mode of a file only its owner may read and write.
pub const PRIVATE_FILE: u32 = 0o600;

/// The permission bits (`0o777` part) of `meta`.
pub fn mode_bits(meta: &Metadata) -> u32 {
    meta.mode() & 0o777
}

/// Whether group or others have any permission on `meta`'s file.
pub fn open_to_others(meta: &Metadata) -> bool {
    meta.mode() & 0o077 != 0
}

/// Creates `dir` (and missing parents) with mode 0700. An existing directory that group
/// or others may enter is narrowed to 0700 and a warning says so; when that is not
/// allowed (another user owns it), only the warning is given: the server then runs with
/// what the directory's owner chose.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(dir)?;
    narrow(dir, PRIVATE_DIR)
}

/// Opens (creating it 0600 if missing) `path` for reading and writing, without
/// truncating it. An existing file open to group or others is narrowed to 0600, with a
/// warning.
pub fn private_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(PRIVATE_FILE)
        .open(path)?;
    narrow(path, PRIVATE_FILE)?;
    Ok(file)
}

/// Creates `path` empty with mode 0600 if it does not exist (without opening an existing
/// one, which its owner may have made read-only); an existing one open to group or others
/// is narrowed, with a warning.
pub fn create_private(path: &Path) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => narrow(path, PRIVATE_FILE),
        Err(e) => Err(e),
    }
}

/// Takes away the permission bits `mode` lacks from `path` if group or others have any
/// permission on it (warning when it does, or when it cannot); a missing file is left
/// alone.
pub fn narrow(path: &Path, mode: u32) -> io::Result<()> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !open_to_others(&meta) {
        return Ok(());
    }
    let was = mode_bits(&meta);
    // Only takes bits away: a read-only directory stays read-only.
    let mode = was & mode;
    match fs::set_permissions(path, fs::Permissions::from_mode(mode)) {
        Ok(()) => tracing::warn!(
            path = %path.display(),
            "permissions were {was:04o}, which let other local users read job data; narrowed to {mode:04o}"
        ),
        Err(e) => tracing::warn!(
            path = %path.display(),
            error = %e,
            "permissions are {was:04o}, which let other local users read job data, and cannot be narrowed to {mode:04o}"
        ),
    }
    Ok(())
}

/// Refuses a file holding secrets (`what`) that group or others may read or change,
/// with the command that fixes it; `Ok` when only its owner may.
pub fn check_secret_file(path: &Path, meta: &Metadata, what: &str) -> Result<(), String> {
    if !open_to_others(meta) {
        return Ok(());
    }
    Err(format!(
        "permissions {:04o} let other local users read or change {what}; \
         it must be readable by its owner only: run `chmod 600 {}`",
        mode_bits(meta),
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_data_dir_and_file_are_private_and_an_open_one_is_narrowed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("a/b");
        private_dir(&dir).expect("create");
        let meta = fs::metadata(&dir).expect("stat");
        assert_eq!(mode_bits(&meta), 0o700);
        let f = dir.join("x");
        drop(private_file(&f).expect("file"));
        assert_eq!(mode_bits(&fs::metadata(&f).expect("stat")), 0o600);

        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).expect("chmod");
        private_dir(&dir).expect("again");
        drop(private_file(&f).expect("file"));
        assert_eq!(mode_bits(&fs::metadata(&dir).expect("stat")), 0o700);
        assert_eq!(mode_bits(&fs::metadata(&f).expect("stat")), 0o600);
    }

    #[test]
    fn a_secret_file_others_may_read_is_refused_with_the_fix() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let f = tmp.path().join("auth.toml");
        fs::write(&f, "x").expect("write");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).expect("chmod");
        let err = check_secret_file(&f, &fs::metadata(&f).expect("stat"), "the keys")
            .expect_err("0640 refused");
        assert!(err.contains("0640") && err.contains("chmod 600"), "{err}");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).expect("chmod");
        check_secret_file(&f, &fs::metadata(&f).expect("stat"), "the keys").expect("0600 ok");
    }
}
