//! How a cluster is laid out on the engine: names, labels and addresses of its network,
//! nodes and volumes. Everything is derived from the cluster uuid and node index, so a
//! restarted conductor finds what an earlier one made.

use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// Label carrying the cluster uuid on every container, volume and network of a cluster.
pub const CLUSTER_LABEL: &str = "org.openstack.magnum.cluster";
/// Label carrying a node's role (`master` or `worker`).
pub const ROLE_LABEL: &str = "org.openstack.magnum.role";
/// Label carrying a worker's nodegroup name (absent on nodes made before nodegroups: those
/// belong to `default-worker`).
pub const NODEGROUP_LABEL: &str = "org.openstack.magnum.nodegroup";
/// Label carrying a node's index within its role.
pub const INDEX_LABEL: &str = "org.openstack.magnum.index";
/// Label carrying the image a node was made from, as its nodegroup named it.
pub const IMAGE_LABEL: &str = "org.openstack.magnum.image";
/// Label carrying the flavor a node was made with.
pub const FLAVOR_LABEL: &str = "org.openstack.magnum.flavor";
/// Label on node images telling their distribution (the `os_distro` of a Glance image).
pub const OS_DISTRO_LABEL: &str = "org.openstack.magnum.os_distro";

/// Masters take host numbers from here in the cluster subnet, workers from [`FIRST_WORKER_HOST`].
pub const FIRST_MASTER_HOST: u32 = 10;
pub const FIRST_WORKER_HOST: u32 = 20;
/// The port the master's dockerd serves the Docker API on.
pub const API_PORT: u16 = 2376;

/// A node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Master,
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Worker => "worker",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "master" => Some(Role::Master),
            "worker" => Some(Role::Worker),
            _ => None,
        }
    }
}

/// One node of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub role: Role,
    pub index: u32,
}

/// The per-cluster names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterLayout {
    pub uuid: String,
    /// A DNS-safe form of the cluster name, for node host names.
    pub host_prefix: String,
}

/// A DNS label from a cluster name: lower case, `[a-z0-9-]`, at most 40 characters.
pub fn host_prefix(name: &str) -> String {
    let mut prefix: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    prefix.truncate(40);
    let trimmed = prefix.trim_matches('-').to_string();
    if trimmed.is_empty() {
        "cluster".to_string()
    } else {
        trimmed
    }
}

impl ClusterLayout {
    pub fn new(uuid: &str, name: &str) -> Self {
        Self {
            uuid: uuid.to_string(),
            host_prefix: host_prefix(name),
        }
    }

    pub fn network_name(&self) -> String {
        format!("magnum-{}", self.uuid)
    }

    pub fn container_name(&self, node: NodeId) -> String {
        format!("magnum-{}-{}-{}", self.uuid, node.role.as_str(), node.index)
    }

    pub fn volume_name(&self, node: NodeId) -> String {
        format!(
            "magnum-{}-{}-{}-docker",
            self.uuid,
            node.role.as_str(),
            node.index
        )
    }

    /// The node's host name (what `docker node ls` shows).
    pub fn host_name(&self, node: NodeId) -> String {
        let role = match node.role {
            Role::Master => "master",
            Role::Worker => "node",
        };
        format!("{}-{role}-{}", self.host_prefix, node.index)
    }
}

/// The node's address in the cluster subnet.
pub fn node_address(subnet: Ipv4Net, node: NodeId) -> Option<Ipv4Addr> {
    let first = match node.role {
        Role::Master => FIRST_MASTER_HOST,
        Role::Worker => FIRST_WORKER_HOST,
    };
    let host = first.checked_add(node.index)?;
    let limit = match node.role {
        Role::Master => FIRST_WORKER_HOST,
        Role::Worker => (1u32 << (32 - subnet.prefix_len())).saturating_sub(1),
    };
    if host >= limit {
        return None;
    }
    Some(Ipv4Addr::from(u32::from(subnet.network()) + host))
}

/// The gateway (the host's side of the bridge): the first address of the subnet.
pub fn gateway(subnet: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// The /24 subnets of a pool, in order, for allocating cluster networks.
pub fn candidate_subnets(pool: Ipv4Net) -> impl Iterator<Item = Ipv4Net> {
    pool.subnets(24.max(pool.prefix_len()))
        .into_iter()
        .flatten()
}

/// Which workers of one nodegroup to keep when it should have `count` of them: the ones
/// named in `remove` go first, then the highest indices; missing ones get the lowest indices
/// neither the group nor `reserved` (other groups' workers) use.
pub fn plan_workers(
    existing: &[u32],
    count: usize,
    remove: &[u32],
    reserved: &[u32],
) -> (Vec<u32>, Vec<u32>) {
    let mut kept: Vec<u32> = existing
        .iter()
        .copied()
        .filter(|index| !remove.contains(index))
        .collect();
    kept.sort_unstable();
    let mut removed: Vec<u32> = existing
        .iter()
        .copied()
        .filter(|index| remove.contains(index))
        .collect();
    while kept.len() > count {
        if let Some(last) = kept.pop() {
            removed.push(last);
        }
    }
    let mut next = 0;
    while kept.len() < count {
        if !kept.contains(&next) && !existing.contains(&next) && !reserved.contains(&next) {
            kept.push(next);
        }
        next += 1;
    }
    kept.sort_unstable();
    removed.sort_unstable();
    (kept, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derive_from_the_uuid_and_index() {
        let layout = ClusterLayout::new("4d3c", "My Cluster!");
        let node = NodeId {
            role: Role::Worker,
            index: 2,
        };
        assert_eq!(layout.container_name(node), "magnum-4d3c-worker-2");
        assert_eq!(layout.volume_name(node), "magnum-4d3c-worker-2-docker");
        assert_eq!(layout.host_name(node), "my-cluster-node-2");
        assert_eq!(
            layout.host_name(NodeId {
                role: Role::Master,
                index: 0
            }),
            "my-cluster-master-0"
        );
        assert_eq!(host_prefix("---"), "cluster");
        assert!(host_prefix(&"x".repeat(80)).len() <= 40);
    }

    #[test]
    fn addresses_keep_masters_and_workers_apart() {
        let subnet: Ipv4Net = "10.200.7.0/24".parse().unwrap();
        assert_eq!(
            node_address(
                subnet,
                NodeId {
                    role: Role::Master,
                    index: 0
                }
            ),
            Some("10.200.7.10".parse().unwrap())
        );
        assert_eq!(
            node_address(
                subnet,
                NodeId {
                    role: Role::Worker,
                    index: 3
                }
            ),
            Some("10.200.7.23".parse().unwrap())
        );
        assert_eq!(
            node_address(
                subnet,
                NodeId {
                    role: Role::Master,
                    index: 10
                }
            ),
            None
        );
        assert_eq!(
            node_address(
                subnet,
                NodeId {
                    role: Role::Worker,
                    index: 234
                }
            ),
            Some("10.200.7.254".parse().unwrap())
        );
        assert_eq!(
            node_address(
                subnet,
                NodeId {
                    role: Role::Worker,
                    index: 235
                }
            ),
            None
        );
        assert_eq!(gateway(subnet).to_string(), "10.200.7.1");
        let pool: Ipv4Net = "10.200.0.0/22".parse().unwrap();
        assert_eq!(candidate_subnets(pool).count(), 4);
    }

    #[test]
    fn worker_plans_remove_named_then_highest_and_fill_lowest() {
        assert_eq!(
            plan_workers(&[0, 1, 2], 4, &[], &[]),
            (vec![0, 1, 2, 3], vec![])
        );
        assert_eq!(
            plan_workers(&[0, 1, 2, 3], 1, &[], &[]),
            (vec![0], vec![1, 2, 3])
        );
        assert_eq!(
            plan_workers(&[0, 1, 2], 2, &[0], &[]),
            (vec![1, 2], vec![0])
        );
        assert_eq!(plan_workers(&[1, 2], 3, &[], &[]), (vec![0, 1, 2], vec![]));
        assert_eq!(plan_workers(&[0, 1], 2, &[1], &[]), (vec![0, 2], vec![1]));
        assert_eq!(plan_workers(&[], 0, &[], &[]), (vec![], vec![]));
        // Another group's workers 0 and 2 keep their indices.
        assert_eq!(plan_workers(&[1], 3, &[], &[0, 2]), (vec![1, 3, 4], vec![]));
    }
}
