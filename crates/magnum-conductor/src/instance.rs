//! Who owns a lease: the conductor's host name plus an instance id, so that two conductors
//! that happen to share a host name never share a lease.
//!
//! The instance id lives in the state directory, in the first of a few slot files this
//! process can lock (an advisory lock held for the process's life). A conductor restarted
//! on the same state directory gets the same id back, so it releases the leases of its
//! previous run at once; a second conductor running beside it at the same time finds the
//! slot locked and takes the next one, with another id.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Slot files tried before an unpersisted id is used.
const SLOTS: usize = 16;

/// A claimed conductor identity; the slot stays locked while this value lives.
#[derive(Debug)]
pub struct ConductorInstance {
    /// `host/instance-id`: the owner name written into leases.
    pub lease_owner: String,
    /// Holds the slot's lock.
    _slot: Option<File>,
}

impl ConductorInstance {
    /// Claims the first free slot under `state_path` for a conductor on `host`.
    pub fn claim(state_path: &Path, host: &str) -> std::io::Result<ConductorInstance> {
        magnum_config::private_files::create_private_dir(state_path)?;
        for slot in 0..SLOTS {
            let path = state_path.join(format!("conductor-{slot}.id"));
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(error)) => return Err(error),
            }
            let mut id = String::new();
            file.read_to_string(&mut id)?;
            let id = id.trim().to_string();
            let id = if is_instance_id(&id) {
                id
            } else {
                let fresh = new_instance_id();
                file.set_len(0)?;
                file.rewind()?;
                file.write_all(fresh.as_bytes())?;
                file.sync_all()?;
                fresh
            };
            return Ok(ConductorInstance {
                lease_owner: format!("{host}/{id}"),
                _slot: Some(file),
            });
        }
        // Every slot is taken: run with an id of this process's own.
        Ok(Self::ephemeral(host))
    }

    /// An identity that is not kept anywhere (tests, or when every slot is taken).
    pub fn ephemeral(host: &str) -> ConductorInstance {
        ConductorInstance {
            lease_owner: format!("{host}/{}", new_instance_id()),
            _slot: None,
        }
    }
}

fn new_instance_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn is_instance_id(text: &str) -> bool {
    text.len() == 32 && text.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_keeps_its_id_and_a_neighbour_gets_another() {
        let state = tempfile::tempdir().unwrap();
        let first = ConductorInstance::claim(state.path(), "node-a").unwrap();
        assert!(first.lease_owner.starts_with("node-a/"));
        // Running at the same time on the same state directory and host name.
        let second = ConductorInstance::claim(state.path(), "node-a").unwrap();
        assert_ne!(first.lease_owner, second.lease_owner);
        // The first one restarts: it gets its id back.
        let owner = first.lease_owner.clone();
        drop(first);
        let restarted = ConductorInstance::claim(state.path(), "node-a").unwrap();
        assert_eq!(restarted.lease_owner, owner);
        assert_ne!(
            ConductorInstance::ephemeral("node-a").lease_owner,
            ConductorInstance::ephemeral("node-a").lease_owner
        );
    }
}
