//! What a node container may do on the host: its privileges and its resource limits.
//!
//! A node runs its own dockerd, so anyone holding the cluster's client certificate can run
//! anything inside it; the node's settings are the boundary between a cluster's users and
//! the host.

use crate::Flavor;
use bollard::models::{HostConfig, HostConfigCgroupnsModeEnum};
use std::collections::HashMap;

/// The host settings of a node container (network, volume and DNS are added by the
/// caller): privileges, and the limits of its flavor.
pub fn node_host_config(flavor: &Flavor) -> HostConfig {
    HostConfig {
        cap_add: Some(vec!["ALL".to_string()]),
        cap_drop: Some(vec!["SYS_RESOURCE".to_string()]),
        // The Engine API has no "systempaths=unconfined"; the CLI translates it to
        // empty masked and read-only path lists, which is what we send.
        security_opt: Some(vec!["seccomp=unconfined".to_string()]),
        masked_paths: Some(Vec::new()),
        readonly_paths: Some(Vec::new()),
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
        nano_cpus: Some((flavor.cpus * 1e9) as i64),
        pids_limit: Some(flavor.pids),
        ..HostConfig::default()
    }
}
