//! Secrets kept in files under the state directory: created once with mode 0600, never
//! overwritten, and safe when several processes start at the same moment (the first
//! writer wins and everyone reads its value).

use rand::RngCore;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Reads the secret at `path`, or creates it with `generate()` if it does not exist yet.
/// Refuses a file that group or others can read.
pub fn read_or_create(path: &Path, generate: impl FnOnce() -> String) -> std::io::Result<String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        magnum_config::private_files::create_private_dir(parent)?;
    }
    match fs::symlink_metadata(path) {
        Ok(_) => return read_private(path),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(generate().as_bytes())?;
        file.sync_all()?;
    }
    // hard_link fails if the final name exists, so a concurrent creator keeps its value.
    let linked = fs::hard_link(&temporary, path);
    let _ = fs::remove_file(&temporary);
    match linked {
        Ok(()) => read_private(path),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => read_private(path),
        Err(error) => Err(error),
    }
}

/// Reads a secret file, refusing one that group or others can read.
pub fn read_private(path: &Path) -> std::io::Result<String> {
    let metadata = fs::metadata(path)?;
    if metadata.permissions().mode() & 0o077 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} is readable by group or others; run chmod 600 on it",
                path.display()
            ),
        ));
    }
    Ok(fs::read_to_string(path)?.trim().to_string())
}

/// `n_bytes` random bytes as lower-case hex.
pub fn random_hex(n_bytes: usize) -> String {
    let mut bytes = vec![0u8; n_bytes];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A random password of URL-safe characters.
pub fn random_password() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_with_mode_0600_and_keeps_the_value() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("sub/secret");
        let first = read_or_create(&path, || "one".to_string()).unwrap();
        let second = read_or_create(&path, || "two".to_string()).unwrap();
        assert_eq!((first.as_str(), second.as_str()), ("one", "one"));
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn refuses_a_readable_secret() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("secret");
        fs::write(&path, "x").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_or_create(&path, || "y".to_string()).is_err());
    }

    #[test]
    fn random_values_differ() {
        assert_ne!(random_hex(16), random_hex(16));
        assert_eq!(random_hex(16).len(), 32);
        assert!(random_password().len() >= 24);
    }
}
