//! Files and directories that hold personal data or keys: created readable by their owner only
//! (files `0600`, directories `0700`), whatever the process's umask. Every such file the vault
//! writes — the key file, the bucket keys, the audit head marker, unlock keys, exports, backups
//! and their temporary copies, uploaded backups — is created through here.
//!
//! The binary also sets its umask to `077` at start-up, so that what other libraries write
//! (sled's store files) is private too; these helpers do not rely on it, so the library is safe
//! when embedded in a process with a looser umask.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The mode of a private file.
pub const FILE_MODE: u32 = 0o600;
/// The mode of a private directory.
pub const DIR_MODE: u32 = 0o700;

/// Creates `path` (or truncates it) for writing, readable and writable by its owner only. An
/// existing regular file has its mode narrowed as well, before anything is written to it; a
/// device such as `/dev/stdout` is left as it is.
pub fn create(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    let file = options.open(path)?;
    narrow(&file)?;
    Ok(file)
}

/// Narrows an open regular file's mode to [`FILE_MODE`] (a file that existed keeps its old mode
/// when opened, whatever mode the open asked for).
fn narrow(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = file.metadata()?;
        if meta.is_file() && meta.permissions().mode() & 0o777 != FILE_MODE {
            file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// The temporary file [`write_atomically`] writes `path` to first.
pub fn temporary_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "keyfile".into());
    dir.join(format!(".{file_name}.tmp"))
}

/// Replaces `path` with `bytes`: a private temporary file in the same directory, fsync, rename,
/// fsync of the directory so the rename itself is durable.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let tmp = temporary_path(path);
    {
        let mut file = create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Creates `dir` and its missing parents, each readable by its owner only. An existing
/// directory is left as it is (it may be one the self-hoster shares on purpose).
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(dir)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    #[cfg(unix)]
    use std::os::unix::fs::PermissionsExt;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn an_existing_readable_file_is_narrowed_before_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export.json");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        create(&path).unwrap().write_all(b"new").unwrap();
        assert_eq!(mode(&path), FILE_MODE);
        assert_eq!(fs::read(&path).unwrap(), b"new");

        // A stale temporary file left readable by a crash does not make the result readable.
        let target = dir.path().join("keys.json");
        fs::write(temporary_path(&target), b"stale").unwrap();
        fs::set_permissions(temporary_path(&target), fs::Permissions::from_mode(0o644)).unwrap();
        write_atomically(&target, b"{}").unwrap();
        assert_eq!(mode(&target), FILE_MODE);
    }

    #[cfg(unix)]
    #[test]
    fn new_directories_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a").join("b");
        create_dir(&nested).unwrap();
        assert_eq!(mode(&nested), DIR_MODE);
        assert_eq!(mode(&dir.path().join("a")), DIR_MODE);
    }
}
