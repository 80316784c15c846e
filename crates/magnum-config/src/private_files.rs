//! Directories and files that hold secrets or the database: created readable by the
//! service's user only, whatever the process umask is.

use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `path` (and missing parents) with mode 0700. An existing directory is left as
/// it is: an operator may have chosen its mode on purpose.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    if path.as_os_str().is_empty() || path.is_dir() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(0o700).create(path)
}

/// Makes sure the file at `path` exists with mode 0600: creates it empty when missing, and
/// takes group and other permissions away from an existing one.
pub fn ensure_private_file(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            let mut permissions = std::fs::metadata(path)?.permissions();
            if permissions.mode() & 0o077 != 0 {
                permissions.set_mode(permissions.mode() & 0o700);
                std::fs::set_permissions(path, permissions)?;
            }
            Ok(())
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_and_files_are_private() {
        let base = tempfile::tempdir().unwrap();
        let state = base.path().join("a/state");
        create_private_dir(&state).unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        let database = state.join("magnum.sqlite");
        ensure_private_file(&database).unwrap();
        assert_eq!(mode(&database), 0o600);
        std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o644)).unwrap();
        ensure_private_file(&database).unwrap();
        assert_eq!(mode(&database), 0o600);
    }
}
