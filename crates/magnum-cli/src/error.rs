//! Why a `magnum` command failed.
//!
//! [`ClientError`] says what went wrong talking to the API or the identity service; the CLI
//! also fails for reasons of its own (a bad command line, a local file, a cluster that ended
//! FAILED while the command waited). Each reason has its variant here, and `main` prints any
//! of them as `ERROR: <message>`: the messages are python-magnumclient's where it has one and
//! are compared by the end-to-end tests, so a variant displays exactly its text.

use magnum_client::ClientError;
use std::fmt;
use std::path::PathBuf;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The API, the identity service or the connection to them failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The command line is incomplete or inconsistent: a missing name or credential, a
    /// label or attribute that is not KEY=VALUE, a field that does not exist.
    #[error("{0}")]
    Usage(String),
    /// A local file or directory could not be read, written or created.
    #[error("{operation} {}: {source}", path.display())]
    File {
        operation: FileOperation,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file the command would write exists and `--force` was not given.
    #[error("File {} exists, aborting.", .0.display())]
    FileExists(PathBuf),
    /// The client key or certificate signing request could not be made.
    #[error(transparent)]
    Certificate(#[from] magnum_x509::X509Error),
    /// `cluster-config` cannot configure a client for the cluster: it is not created yet, has
    /// no API address, runs a COE the command does not know, or the service sent no
    /// certificate.
    #[error("{0}")]
    NotConfigurable(String),
    /// An operation the command waited for ended in a failed (or rolled-back) status.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// A [`CliError::File`] for `operation` on `path`.
    pub fn file(
        operation: FileOperation,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        CliError::File {
            operation,
            path: path.into(),
            source,
        }
    }
}

/// What was being done to a local file when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOperation {
    /// Reading it (the CSR of `ca-sign`).
    Read,
    /// Writing it (the certificates and kubeconfig of `cluster-config`).
    Write,
    /// Creating it as a directory (the `--dir` of `cluster-config`).
    CreateDirectory,
    /// Making its path absolute (the `--dir` of `cluster-config`).
    Resolve,
}

impl fmt::Display for FileOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileOperation::Read => "cannot read",
            FileOperation::Write => "cannot write",
            FileOperation::CreateDirectory => "cannot create",
            FileOperation::Resolve => "bad directory",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_displays_its_message_unchanged() {
        let client = CliError::from(ClientError::Http {
            status: 404,
            message: "Cluster k1 could not be found.".to_string(),
            request_id: Some("req-1".to_string()),
        });
        assert_eq!(
            client.to_string(),
            "Cluster k1 could not be found. (HTTP 404) (Request-ID: req-1)"
        );
        let auth = CliError::from(ClientError::Auth("the token expired".to_string()));
        assert_eq!(auth.to_string(), "the token expired");
        let usage = CliError::Usage("You must provide a password via --os-password".to_string());
        assert_eq!(
            usage.to_string(),
            "You must provide a password via --os-password"
        );
        let denied = || std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        for (operation, text) in [
            (FileOperation::Read, "cannot read /tmp/x.csr: denied"),
            (FileOperation::Write, "cannot write /tmp/x.csr: denied"),
            (
                FileOperation::CreateDirectory,
                "cannot create /tmp/x.csr: denied",
            ),
            (FileOperation::Resolve, "bad directory /tmp/x.csr: denied"),
        ] {
            assert_eq!(
                CliError::file(operation, "/tmp/x.csr", denied()).to_string(),
                text
            );
        }
        let exists = CliError::FileExists(PathBuf::from("/tmp/key.pem"));
        assert_eq!(exists.to_string(), "File /tmp/key.pem exists, aborting.");
        let certificate = CliError::from(magnum_x509::X509Error::Crypto("no entropy".to_string()));
        assert_eq!(
            certificate.to_string(),
            "certificate operation failed: no entropy"
        );
        let unconfigurable = CliError::NotConfigurable("cluster k1 has no API address yet".into());
        assert_eq!(
            unconfigurable.to_string(),
            "cluster k1 has no API address yet"
        );
        let failed = CliError::Failed("cluster u1 ended in CREATE_FAILED: no quota".to_string());
        assert_eq!(
            failed.to_string(),
            "cluster u1 ended in CREATE_FAILED: no quota"
        );
    }
}
