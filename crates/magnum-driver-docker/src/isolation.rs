//! What a node container may do on the host: its privileges and its resource limits.
//!
//! A node runs its own dockerd, so anyone holding the cluster's client certificate can run
//! anything inside it; the node's settings are the boundary between a cluster's users and
//! the host. A node gets Docker's default capabilities (which its dockerd hands on to the
//! containers it runs) plus the two its dockerd needs itself, Docker's default seccomp
//! profile, and Docker's default masked and read-only system paths. Every capability below
//! was kept because a measurement (Docker 20.10, kernel 6.18, cgroup v1) showed what fails
//! without it.
//!
//! Without user namespaces this does not make a node a boundary: root in a node is root on
//! the host, and through the kernel's global state (for example a `/proc` an inner
//! container mounts writable) a cluster user can still reach the host. The hardened set-up
//! is an outer engine in user-namespace-remap mode (`dockerd --userns-remap=default`),
//! where the node's root is an unprivileged user of the host; [`delegate_cgroups`] gives
//! such a node its own cgroup directories, which the engine does not do on cgroup v1.

use crate::Flavor;
use bollard::models::{HostConfig, HostConfigCgroupnsModeEnum};
use std::collections::HashMap;
use std::path::Path;

/// The capabilities a node keeps, with what fails without each.
pub const NODE_CAPABILITIES: &[(&str, &str)] = &[
    // Docker's default set: the node's dockerd gives it to every container it runs, and a
    // container cannot get a capability the node lacks ("unable to apply caps").
    (
        "AUDIT_WRITE",
        "inner containers cannot be given Docker's default capabilities",
    ),
    (
        "CHOWN",
        "the node's dockerd cannot hand its API socket to the docker group",
    ),
    (
        "DAC_OVERRIDE",
        "the node's dockerd finds overlay2 unsupported and stops",
    ),
    (
        "FOWNER",
        "inner containers cannot be given Docker's default capabilities",
    ),
    (
        "FSETID",
        "inner containers cannot be given Docker's default capabilities",
    ),
    (
        "KILL",
        "inner containers cannot be given Docker's default capabilities",
    ),
    (
        "MKNOD",
        "inner containers cannot be given Docker's default capabilities",
    ),
    (
        "NET_BIND_SERVICE",
        "inner containers cannot be given Docker's default capabilities",
    ),
    (
        "NET_RAW",
        "inner containers cannot be given Docker's default capabilities",
    ),
    (
        "SETFCAP",
        "inner containers cannot be given Docker's default capabilities",
    ),
    (
        "SETGID",
        "inner containers cannot start (setgroups is refused)",
    ),
    (
        "SETPCAP",
        "inner containers cannot be given Docker's default capabilities",
    ),
    (
        "SETUID",
        "inner containers cannot be given Docker's default capabilities",
    ),
    (
        "SYS_CHROOT",
        "inner containers cannot be given Docker's default capabilities",
    ),
    // What the node's dockerd needs for itself.
    (
        "NET_ADMIN",
        "the node's dockerd cannot make its iptables chains and bridges, and stops",
    ),
    (
        "SYS_ADMIN",
        "the node cannot mount its cgroup hierarchies or overlay filesystems",
    ),
];

/// Capabilities that belong to the host's kernel and are never given to a node, whatever
/// else changes.
pub const FORBIDDEN_CAPABILITIES: &[&str] = &[
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_BOOT",
    "SYS_TIME",
    "MAC_ADMIN",
];

/// The devices a node may use at all: Docker's default device rules (create any device
/// node, use only the harmless character devices). On cgroup v1 nodes live under a parent
/// cgroup with exactly these rules, because a node (which has SYS_ADMIN) can widen its own
/// device rules up to its parent's: under the engine's own parent, which allows every
/// device, an inner container could read the host's disks.
pub const NODE_DEVICE_RULES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
    "c 10:200 rwm",
];

/// Makes (once) the parent cgroup of node containers in the cgroup v1 devices hierarchy
/// under `cgroup_root`, allowing only [`NODE_DEVICE_RULES`]. Returns whether the parent's
/// rules are those (false when an existing parent, made by someone else and holding
/// containers, allows more: nodes are then not started under it).
pub fn prepare_cgroup_parent(cgroup_root: &Path, parent: &str) -> std::io::Result<bool> {
    let directory = cgroup_root
        .join("devices")
        .join(parent.trim_start_matches('/'));
    if !directory.is_dir() {
        std::fs::create_dir_all(&directory)?;
    }
    let wanted: std::collections::BTreeSet<&str> = NODE_DEVICE_RULES.iter().copied().collect();
    let current = std::fs::read_to_string(directory.join("devices.list"))?;
    let current: std::collections::BTreeSet<&str> = current.lines().map(str::trim).collect();
    if current == wanted {
        return Ok(true);
    }
    // Rules can only be narrowed while the cgroup has no children.
    let has_children = std::fs::read_dir(&directory)?
        .flatten()
        .any(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()));
    if has_children {
        return Ok(false);
    }
    std::fs::write(directory.join("devices.deny"), "a")?;
    for rule in NODE_DEVICE_RULES {
        std::fs::write(directory.join("devices.allow"), rule)?;
    }
    Ok(true)
}

/// The host settings of a node container (network, volume and DNS are added by the
/// caller): its privileges, and the limits of its flavor.
pub fn node_host_config(flavor: &Flavor) -> HostConfig {
    HostConfig {
        cap_drop: Some(vec!["ALL".to_string()]),
        cap_add: Some(
            NODE_CAPABILITIES
                .iter()
                .map(|(capability, _)| capability.to_string())
                .collect(),
        ),
        // Docker's default seccomp profile and masked/read-only paths apply (nothing sent).
        // Its own cgroup namespace roots the cgroup hierarchies the node mounts at its own
        // cgroup, so the containers it runs nest under it.
        cgroupns_mode: Some(HostConfigCgroupnsModeEnum::PRIVATE),
        tmpfs: Some(HashMap::from([
            ("/run".to_string(), String::new()),
            ("/tmp".to_string(), String::new()),
        ])),
        memory: Some(
            i64::try_from(flavor.memory_mib)
                .unwrap_or(i64::MAX / (1024 * 1024))
                .saturating_mul(1024 * 1024),
        ),
        // The swap limit equals the memory limit: no swap beyond the flavor.
        memory_swap: Some(
            i64::try_from(flavor.memory_mib)
                .unwrap_or(i64::MAX / (1024 * 1024))
                .saturating_mul(1024 * 1024),
        ),
        nano_cpus: Some((flavor.cpus * 1e9) as i64),
        pids_limit: Some(flavor.pids),
        ..HostConfig::default()
    }
}

/// Hands a node on a user-namespace-remapped engine its own cgroup directories: the node's
/// root is the host user `root_uid`/`root_gid`, and its dockerd makes the cgroups of the
/// containers it runs inside them. Only the directories change owner (and on cgroup v2 the
/// files that delegate them); the node's own limit files stay the host's. `pid` is the
/// node's first process; `cgroup_root` is normally `/sys/fs/cgroup`.
pub fn delegate_cgroups(
    cgroup_root: &Path,
    pid: i64,
    root_uid: u32,
    root_gid: u32,
) -> std::io::Result<usize> {
    let memberships = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let mut changed = 0;
    for line in memberships.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let relative = path.trim_start_matches('/');
        let mut targets = Vec::new();
        if controllers.is_empty() {
            // cgroup v2: the directory and the files that delegate it.
            let directory = cgroup_root.join(relative);
            for file in ["cgroup.procs", "cgroup.subtree_control", "cgroup.threads"] {
                targets.push(directory.join(file));
            }
            targets.push(directory);
        } else {
            let hierarchy = controllers.strip_prefix("name=").unwrap_or(controllers);
            targets.push(cgroup_root.join(hierarchy).join(relative));
        }
        for target in targets {
            if target.exists() {
                std::os::unix::fs::chown(&target, Some(root_uid), Some(root_gid))?;
                changed += 1;
            }
        }
    }
    Ok(changed)
}

/// The host id that id 0 maps to in a `uid_map`/`gid_map` text (`0 100000 65536` maps
/// root to 100000).
fn mapped_root(map: &str) -> Option<u32> {
    map.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let inside: u32 = fields.next()?.parse().ok()?;
        let outside: u32 = fields.next()?.parse().ok()?;
        (inside == 0).then_some(outside)
    })
}

/// The host uid and gid of a process's root, from its user namespace's maps; None when its
/// root is the host's root (no user namespace remapping).
pub fn remapped_root(pid: i64) -> std::io::Result<Option<(u32, u32)>> {
    let uid = mapped_root(&std::fs::read_to_string(format!("/proc/{pid}/uid_map"))?);
    let gid = mapped_root(&std::fs::read_to_string(format!("/proc/{pid}/gid_map"))?);
    Ok(match (uid, gid) {
        (Some(uid), Some(gid)) if uid != 0 => Some((uid, gid)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_never_get_the_hosts_kernel_capabilities() {
        let config = node_host_config(&Flavor {
            name: "t".to_string(),
            cpus: 1.5,
            memory_mib: 512,
            pids: 300,
        });
        assert_eq!(config.cap_drop, Some(vec!["ALL".to_string()]));
        let kept = config.cap_add.unwrap_or_default();
        for forbidden in FORBIDDEN_CAPABILITIES {
            assert!(!kept.iter().any(|kept| kept == forbidden), "{forbidden}");
        }
        assert!(!kept.iter().any(|kept| kept == "ALL"));
        assert_eq!(kept.len(), 16);
        // Docker's defaults stay on.
        assert_eq!(config.security_opt, None);
        assert_eq!(config.masked_paths, None);
        assert_eq!(config.readonly_paths, None);
        assert_eq!(config.memory, Some(512 * 1024 * 1024));
        assert_eq!(config.nano_cpus, Some(1_500_000_000));
        assert_eq!(config.pids_limit, Some(300));
    }

    #[test]
    fn the_remapped_root_is_read_from_the_id_map() {
        assert_eq!(
            mapped_root("         0     100000      65536\n"),
            Some(100000)
        );
        assert_eq!(mapped_root("0 0 4294967295"), Some(0));
        assert_eq!(mapped_root("1000 1000 1\n"), None);
        assert_eq!(mapped_root(""), None);
    }
}
