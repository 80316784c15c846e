//! Docker Swarm clusters on the local engine (driver `swarm_docker_v1`).
//!
//! [`SwarmDockerDriver::apply`] is a reconciliation taken one step at a time: it reads what
//! exists (by label), does what can be done now — create the network, volumes and
//! containers that are missing, start stopped ones, form or join the swarm, drain and
//! remove surplus workers, replace one node whose image or flavor is not its group's — and
//! answers "waiting" while nodes start or join, without ever sleeping. Run twice, or after a
//! crash at any point, it converges to the same result. Node plumbing is [`crate::nodes`].

use crate::layout::{node_address, plan_workers, ClusterLayout, NodeId, Role, API_PORT};
use crate::nodes::{address_of, permanent, retryable, NodeBlueprint, NodeContainer, NodeEngine};
use crate::{node_image, LocalEngine};
use async_trait::async_trait;
use bollard::models::{NodeSpecAvailabilityEnum, SwarmInitRequest};
use bollard::query_parameters::{DeleteNodeOptions, ListNodesOptions, UpdateNodeOptions};
use bollard::Docker;
use ipnet::Ipv4Net;
use magnum_core::cluster_template::ClusterTemplate;
use magnum_core::DomainError;
use magnum_driver::{
    ClusterDriver, ClusterRef, ClusterSpec, DriverError, HealthReport, NodeGroupSpec, Observed,
    Progress, ProgressSink, Removal, Waiting,
};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

/// The swarm node label naming a node's nodegroup.
const SWARM_NODEGROUP_LABEL: &str = "magnum.nodegroup";
/// The swarm node label on a node drained to be replaced (it is made active again once its
/// replacement is ready).
const SWARM_REPLACING_LABEL: &str = "magnum.replacing";

/// How soon to look again while nodes start, join or become ready.
const SOON: Duration = Duration::from_millis(250);
/// How long one call to the master's Docker API may take.
const MASTER_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A swarm node as the master lists it.
#[derive(Debug, Clone)]
struct SwarmNode {
    id: String,
    host: String,
    ready: bool,
    active: bool,
    version: i64,
    labels: HashMap<String, String>,
}

/// What a cluster should consist of, given what exists.
struct Plan<'a> {
    /// Every node that should exist, with its nodegroup.
    desired: Vec<(NodeId, &'a NodeGroupSpec)>,
    /// Workers to remove.
    surplus: Vec<u32>,
}

impl<'a> Plan<'a> {
    fn new(
        spec: &'a ClusterSpec,
        layout: &ClusterLayout,
        subnet: Ipv4Net,
        existing: &[NodeContainer],
    ) -> Result<Plan<'a>, DriverError> {
        let masters = spec
            .masters()
            .ok_or_else(|| DriverError::Permanent("the cluster has no masters".to_string()))?;
        let existing_workers: Vec<u32> = existing
            .iter()
            .filter(|container| container.node.role == Role::Worker)
            .map(|container| container.node.index)
            .collect();
        let remove = indices_to_remove(spec, layout, subnet, &existing_workers)?;
        let mut desired: Vec<(NodeId, &NodeGroupSpec)> = (0..u32::try_from(masters.node_count)
            .unwrap_or(1))
            .map(|index| {
                (
                    NodeId {
                        role: Role::Master,
                        index,
                    },
                    masters,
                )
            })
            .collect();
        // Each worker nodegroup is planned on its own; new workers take indices no other
        // group's worker (existing or just planned) has.
        let mut planned: Vec<u32> = Vec::new();
        let mut surplus: Vec<u32> = Vec::new();
        for group in spec.worker_groups() {
            let in_group: Vec<u32> = existing
                .iter()
                .filter(|c| c.node.role == Role::Worker && c.group == group.name)
                .map(|c| c.node.index)
                .collect();
            let reserved: Vec<u32> = existing_workers
                .iter()
                .copied()
                .filter(|index| !in_group.contains(index))
                .chain(planned.iter().copied())
                .collect();
            let group_remove: Vec<u32> = remove
                .iter()
                .copied()
                .filter(|index| in_group.contains(index))
                .collect();
            let count = usize::try_from(group.node_count).unwrap_or(0);
            let (kept, gone) = plan_workers(&in_group, count, &group_remove, &reserved);
            for index in kept {
                planned.push(index);
                desired.push((
                    NodeId {
                        role: Role::Worker,
                        index,
                    },
                    group,
                ));
            }
            surplus.extend(gone);
        }
        // Workers of a nodegroup that no longer exists go too.
        surplus.extend(
            existing
                .iter()
                .filter(|c| {
                    c.node.role == Role::Worker
                        && !spec.worker_groups().any(|group| group.name == c.group)
                })
                .map(|c| c.node.index),
        );
        surplus.sort_unstable();
        surplus.dedup();
        desired.sort_by_key(|(node, _)| *node);
        Ok(Plan { desired, surplus })
    }

    fn group_of(&self, node: NodeId) -> Option<&'a NodeGroupSpec> {
        self.desired
            .iter()
            .find(|(candidate, _)| *candidate == node)
            .map(|(_, group)| *group)
    }
}

/// Resolves `nodes_to_remove` (host names, container names, addresses or indices) to
/// worker indices.
fn indices_to_remove(
    spec: &ClusterSpec,
    layout: &ClusterLayout,
    subnet: Ipv4Net,
    workers: &[u32],
) -> Result<Vec<u32>, DriverError> {
    let mut indices = Vec::new();
    for wanted in &spec.nodes_to_remove {
        let found = workers.iter().copied().find(|index| {
            let node = NodeId {
                role: Role::Worker,
                index: *index,
            };
            wanted == &layout.host_name(node)
                || wanted == &layout.container_name(node)
                || node_address(subnet, node).is_some_and(|address| wanted == &address.to_string())
        });
        match found {
            Some(index) => indices.push(index),
            None => {
                return Err(DriverError::Permanent(format!(
                    "{wanted} is not a worker node of this cluster (give a node's host name, container name or address)"
                )))
            }
        }
    }
    Ok(indices)
}

/// The Swarm driver of the Docker provider.
#[derive(Debug, Clone)]
pub struct SwarmDockerDriver {
    engine: Arc<LocalEngine>,
    nodes: NodeEngine,
}

impl SwarmDockerDriver {
    pub fn new(engine: Arc<LocalEngine>) -> Self {
        Self {
            nodes: NodeEngine::new(engine.clone()),
            engine,
        }
    }

    fn node_environment(spec: &ClusterSpec, node: NodeId) -> Vec<String> {
        let mut environment = vec![
            format!("MAGNUM_NODE_ROLE={}", node.role.as_str()),
            format!("MAGNUM_TLS={}", if spec.tls_disabled { 0 } else { 1 }),
        ];
        if let Some(dns) = &spec.network.dns_nameserver {
            environment.push(format!("MAGNUM_DNS={dns}"));
        }
        for (names, value) in [
            (["HTTP_PROXY", "http_proxy"], &spec.network.http_proxy),
            (["HTTPS_PROXY", "https_proxy"], &spec.network.https_proxy),
            (["NO_PROXY", "no_proxy"], &spec.network.no_proxy),
        ] {
            if let Some(value) = value {
                for name in names {
                    environment.push(format!("{name}={value}"));
                }
            }
        }
        environment
    }

    /// The flavor a group's nodes get (the default flavor when the group names none).
    fn flavor_of<'a>(&'a self, group: &'a NodeGroupSpec) -> &'a str {
        group
            .flavor
            .as_deref()
            .unwrap_or(self.engine.settings.default_flavor.as_str())
    }

    /// The master's TLS material for `/etc/docker/tls` (path, content, mode); none when the
    /// template disables TLS.
    fn master_certificate_files(
        spec: &ClusterSpec,
        layout: &ClusterLayout,
        node: NodeId,
        address: Ipv4Addr,
    ) -> Result<Vec<(&'static str, String, u32)>, DriverError> {
        let Some(certificates) = &spec.certificates else {
            return Ok(Vec::new());
        };
        let host_name = layout.host_name(node);
        let issued = certificates
            .issue_server(
                "swarm.invalid",
                &[IpAddr::V4(address), IpAddr::V4(Ipv4Addr::LOCALHOST)],
                &[host_name, "localhost".to_string()],
            )
            .map_err(|error| permanent("cannot issue the master's server certificate", error))?;
        Ok(vec![
            ("etc/docker/tls/ca.pem", certificates.ca_pem(), 0o644),
            ("etc/docker/tls/server.pem", issued.certificate_pem, 0o644),
            (
                "etc/docker/tls/server-key.pem",
                issued.private_key_pem,
                0o600,
            ),
        ])
    }

    /// Copies the node's files into its container and starts it. Run again for a container
    /// an interrupted attempt created but did not start: the copy is idempotent.
    async fn provision_and_start(
        &self,
        spec: &ClusterSpec,
        layout: &ClusterLayout,
        subnet: Ipv4Net,
        node: NodeId,
    ) -> Result<(), DriverError> {
        // The entrypoint travels with each node rather than in the image, so a changed
        // entrypoint never forces an image rebuild.
        let mut files = vec![(
            "usr/local/bin/magnum-node-init",
            node_image::NODE_INIT.to_string(),
            0o755,
        )];
        if node.role == Role::Master {
            files.extend(Self::master_certificate_files(
                spec,
                layout,
                node,
                address_of(subnet, node)?,
            )?);
        }
        let container = layout.container_name(node);
        self.nodes
            .upload(&container, &files, "the node's files")
            .await?;
        self.nodes.start(&container).await
    }

    /// Creates (or recreates) a node from its group and starts it.
    async fn build_node(
        &self,
        spec: &ClusterSpec,
        layout: &ClusterLayout,
        subnet: Ipv4Net,
        node: NodeId,
        group: &NodeGroupSpec,
    ) -> Result<(), DriverError> {
        let blueprint = NodeBlueprint {
            node,
            group: group.name.clone(),
            image: group.image.clone(),
            flavor: Some(self.flavor_of(group).to_string()),
            host_name: layout.host_name(node),
            environment: Self::node_environment(spec, node),
            dns_nameserver: spec.network.dns_nameserver.clone(),
        };
        self.nodes.create(layout, subnet, &blueprint).await?;
        self.provision_and_start(spec, layout, subnet, node).await
    }

    /// Gives a master certificates of the cluster's CA when it holds another CA's (after
    /// a rotation) and restarts its dockerd; returns whether it did.
    async fn refresh_master_certificates(
        &self,
        spec: &ClusterSpec,
        layout: &ClusterLayout,
        subnet: Ipv4Net,
        node: NodeId,
    ) -> Result<bool, DriverError> {
        let Some(certificates) = &spec.certificates else {
            return Ok(false);
        };
        let container = layout.container_name(node);
        let (code, current) = self
            .nodes
            .exec(&container, &["cat", "/etc/docker/tls/ca.pem"])
            .await?;
        if code == 0 && current.trim() == certificates.ca_pem().trim() {
            return Ok(false);
        }
        let files = Self::master_certificate_files(spec, layout, node, address_of(subnet, node)?)?;
        self.nodes
            .upload(&container, &files, "the master's new certificates")
            .await?;
        self.nodes.restart(&container).await?;
        Ok(true)
    }

    /// A client of the master's Docker API (over TLS with the conductor's certificate), or
    /// None when it does not answer yet.
    async fn master_client(
        &self,
        spec: &ClusterSpec,
        address: Ipv4Addr,
    ) -> Result<Option<Docker>, DriverError> {
        let endpoint = format!("tcp://{address}:{API_PORT}");
        let timeout_secs = MASTER_CALL_TIMEOUT.as_secs();
        let docker = match &spec.certificates {
            None => {
                Docker::connect_with_http(&endpoint, timeout_secs, bollard::API_DEFAULT_VERSION)
                    .map_err(|error| retryable("cannot reach the master", error))?
            }
            Some(certificates) => {
                let client = certificates.conductor_client();
                let directory = self.nodes.write_private_files(
                    &spec.uuid,
                    &[
                        ("ca.pem", certificates.ca_pem()),
                        ("cert.pem", client.certificate_pem),
                        ("key.pem", client.private_key_pem),
                    ],
                )?;
                Docker::connect_with_ssl(
                    &endpoint,
                    &directory.join("key.pem"),
                    &directory.join("cert.pem"),
                    &directory.join("ca.pem"),
                    timeout_secs,
                    bollard::API_DEFAULT_VERSION,
                )
                .map_err(|error| retryable("cannot reach the master over TLS", error))?
            }
        };
        match tokio::time::timeout(Duration::from_secs(3), docker.ping()).await {
            Ok(Ok(_)) => {}
            _ => return Ok(None),
        }
        match tokio::time::timeout(MASTER_CALL_TIMEOUT, docker.negotiate_version()).await {
            Ok(Ok(docker)) => Ok(Some(docker)),
            _ => Ok(None),
        }
    }

    /// Initialises the swarm on the first master if needed; returns (worker, manager) tokens.
    async fn ensure_swarm(
        &self,
        master: &Docker,
        address: Ipv4Addr,
    ) -> Result<(String, String), DriverError> {
        if master.inspect_swarm().await.is_err() {
            master
                .init_swarm(SwarmInitRequest {
                    listen_addr: Some("0.0.0.0:2377".to_string()),
                    advertise_addr: Some(address.to_string()),
                    default_addr_pool: Some(vec![self.engine.settings.swarm_address_pool.clone()]),
                    // Without a subnet size the engine's allocator stops ("invalid pools
                    // size: 0") and no task is ever scheduled.
                    subnet_size: Some(24),
                    ..SwarmInitRequest::default()
                })
                .await
                .map_err(|error| retryable("cannot initialise the swarm", error))?;
        }
        let swarm = master
            .inspect_swarm()
            .await
            .map_err(|error| retryable("cannot read the swarm", error))?;
        let tokens = swarm.join_tokens.ok_or_else(|| {
            DriverError::Retryable("the swarm has no join tokens yet".to_string())
        })?;
        Ok((
            tokens.worker.unwrap_or_default(),
            tokens.manager.unwrap_or_default(),
        ))
    }

    async fn swarm_nodes(&self, master: &Docker) -> Result<Vec<SwarmNode>, DriverError> {
        let nodes = master
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(|error| retryable("cannot list the swarm's nodes", error))?;
        Ok(nodes
            .into_iter()
            .map(|node| {
                let host = node
                    .description
                    .as_ref()
                    .and_then(|description| description.hostname.clone())
                    .unwrap_or_default();
                let ready = node
                    .status
                    .as_ref()
                    .and_then(|status| status.state)
                    .is_some_and(|state| state.to_string() == "ready");
                let availability = node.spec.as_ref().and_then(|spec| spec.availability);
                SwarmNode {
                    id: node.id.unwrap_or_default(),
                    host,
                    ready,
                    active: availability == Some(NodeSpecAvailabilityEnum::ACTIVE),
                    version: node
                        .version
                        .as_ref()
                        .and_then(|version| version.index)
                        .map(|index| index as i64)
                        .unwrap_or_default(),
                    labels: node.spec.and_then(|spec| spec.labels).unwrap_or_default(),
                }
            })
            .collect())
    }

    /// Changes a swarm node's availability and labels (the rest of its spec stays).
    async fn update_swarm_node(
        &self,
        master: &Docker,
        node: &SwarmNode,
        availability: NodeSpecAvailabilityEnum,
        labels: HashMap<String, String>,
    ) -> Result<(), DriverError> {
        let current = master.inspect_node(&node.id).await.map_err(|error| {
            retryable(&format!("cannot read the swarm node {}", node.host), error)
        })?;
        let mut node_spec = current.spec.unwrap_or_default();
        node_spec.availability = Some(availability);
        node_spec.labels = Some(labels);
        let version = current
            .version
            .and_then(|version| version.index)
            .map(|index| index as i64)
            .unwrap_or(node.version);
        master
            .update_node(&node.id, node_spec, UpdateNodeOptions { version })
            .await
            .map_err(|error| {
                retryable(
                    &format!("cannot update the swarm node {}", node.host),
                    error,
                )
            })
    }

    /// Gives every swarm node the label `magnum.nodegroup=<its nodegroup>` and its
    /// nodegroup's `node_labels` (usable in placement constraints). Labels added to the
    /// swarm by hand stay.
    async fn label_swarm_nodes(
        &self,
        master: &Docker,
        nodes: &[SwarmNode],
        groups: &[(String, &NodeGroupSpec)],
    ) -> Result<(), DriverError> {
        for node in nodes {
            let Some((_, group)) = groups.iter().find(|(host, _)| *host == node.host) else {
                continue;
            };
            let mut wanted: HashMap<String, String> =
                group.node_labels.clone().into_iter().collect();
            wanted.insert(SWARM_NODEGROUP_LABEL.to_string(), group.name.clone());
            if wanted
                .iter()
                .all(|(key, value)| node.labels.get(key) == Some(value))
            {
                continue;
            }
            let mut labels = node.labels.clone();
            labels.extend(wanted);
            let availability = if node.active {
                NodeSpecAvailabilityEnum::ACTIVE
            } else {
                NodeSpecAvailabilityEnum::DRAIN
            };
            self.update_swarm_node(master, node, availability, labels)
                .await?;
        }
        Ok(())
    }

    /// Drains a worker, makes it leave and removes it from the swarm, then removes its
    /// container and volume.
    async fn remove_worker(
        &self,
        master: &Docker,
        layout: &ClusterLayout,
        node: NodeId,
    ) -> Result<(), DriverError> {
        let host = layout.host_name(node);
        let container = layout.container_name(node);
        for entry in self
            .swarm_nodes(master)
            .await?
            .into_iter()
            .filter(|entry| entry.host == host)
        {
            let _ = self
                .update_swarm_node(
                    master,
                    &entry,
                    NodeSpecAvailabilityEnum::DRAIN,
                    entry.labels.clone(),
                )
                .await;
        }
        // Leaving makes the manager see the node gone; a forced removal does not wait for it.
        let _ = self
            .nodes
            .exec(&container, &["docker", "swarm", "leave", "--force"])
            .await;
        for entry in self
            .swarm_nodes(master)
            .await?
            .into_iter()
            .filter(|entry| entry.host == host)
        {
            master
                .delete_node(&entry.id, Some(DeleteNodeOptions { force: true }))
                .await
                .map_err(|error| {
                    retryable(&format!("cannot remove {host} from the swarm"), error)
                })?;
        }
        self.nodes.remove_node(layout, node, false).await
    }

    /// Joins a node that is not (or no longer) part of the swarm; true when it is part of
    /// it already (and only needs time to become ready).
    async fn join(
        &self,
        container: &str,
        token: &str,
        master_address: &str,
        known_ids: &[String],
    ) -> Result<bool, DriverError> {
        let (code, state) = self
            .nodes
            .exec(
                container,
                &[
                    "docker",
                    "info",
                    "--format",
                    "{{.Swarm.LocalNodeState}} {{.Swarm.NodeID}}",
                ],
            )
            .await?;
        if code != 0 {
            // The node's dockerd is not up yet.
            return Ok(false);
        }
        let mut words = state.split_whitespace();
        let local_state = words.next().unwrap_or_default();
        let node_id = words.next().unwrap_or_default();
        match local_state {
            "active" if known_ids.iter().any(|id| id == node_id) => return Ok(true),
            "pending" => return Ok(false),
            "inactive" => {}
            // In a swarm this one does not know (its volume outlived it), or in error.
            _ => {
                self.nodes
                    .exec(container, &["docker", "swarm", "leave", "--force"])
                    .await?;
            }
        }
        self.nodes
            .exec(
                container,
                &["docker", "swarm", "join", "--token", token, master_address],
            )
            .await?;
        Ok(false)
    }

    fn observed(
        spec: &ClusterSpec,
        layout: &ClusterLayout,
        subnet: Ipv4Net,
        workers: &[(u32, String)],
        server_version: Option<String>,
    ) -> Observed {
        let masters: Vec<String> = (0..u32::try_from(spec.master_count()).unwrap_or(0))
            .filter_map(|index| {
                node_address(
                    subnet,
                    NodeId {
                        role: Role::Master,
                        index,
                    },
                )
            })
            .map(|address| address.to_string())
            .collect();
        let mut nodegroup_addresses: BTreeMap<String, Vec<String>> = spec
            .nodegroups
            .iter()
            .map(|group| (group.name.clone(), Vec::new()))
            .collect();
        if let Some(group) = spec.masters() {
            nodegroup_addresses.insert(group.name.clone(), masters.clone());
        }
        let mut nodes = Vec::new();
        for (index, group) in workers {
            let node = NodeId {
                role: Role::Worker,
                index: *index,
            };
            if let Some(address) = node_address(subnet, node) {
                nodes.push(address.to_string());
                nodegroup_addresses
                    .entry(group.clone())
                    .or_default()
                    .push(address.to_string());
            }
        }
        let _ = layout;
        Observed {
            stack_id: Some(layout.network_name()),
            api_address: masters
                .first()
                .map(|address| format!("tcp://{address}:{API_PORT}")),
            master_addresses: masters,
            node_addresses: nodes,
            nodegroup_addresses,
            nodegroup_stack_ids: BTreeMap::new(),
            coe_version: server_version.clone(),
            container_version: server_version,
            health: HealthReport::default(),
        }
    }

    /// Starts the node image build when the spec needs it and it is missing; refuses
    /// images the engine does not have. Some(waiting) while the build runs.
    async fn ensure_images(
        &self,
        spec: &ClusterSpec,
        progress: &dyn ProgressSink,
    ) -> Result<Option<Waiting>, DriverError> {
        let mut images: Vec<&String> = spec.nodegroups.iter().map(|group| &group.image).collect();
        images.sort();
        images.dedup();
        for image in images {
            if image == &self.engine.settings.node_image {
                if !node_image::poll_node_image(&self.engine).await? {
                    progress.report("preparing the node image");
                    return Ok(Some(Waiting::new(
                        Duration::from_secs(2),
                        "preparing the node image (the first build takes a minute or two)",
                    )));
                }
            } else if self
                .nodes
                .docker()
                .await?
                .inspect_image(image)
                .await
                .is_err()
            {
                return Err(DriverError::Permanent(format!(
                    "the image {image} is not in the local engine"
                )));
            }
        }
        Ok(None)
    }

    /// Fails when a node has been running for longer than `[docker] ready_timeout` without
    /// becoming ready (a broken image: an upgrade to it rolls back).
    async fn check_not_stuck(
        &self,
        layout: &ClusterLayout,
        node: NodeId,
        image: &str,
    ) -> Result<(), DriverError> {
        let limit = self.engine.settings.ready_timeout;
        let running_for = self.nodes.running_for(&layout.container_name(node)).await?;
        if running_for.is_some_and(|running| running >= limit) {
            return Err(DriverError::Permanent(format!(
                "node {} (image {image}) did not become ready within {} s",
                layout.host_name(node),
                limit.as_secs()
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl ClusterDriver for SwarmDockerDriver {
    fn name(&self) -> &'static str {
        "swarm_docker_v1"
    }

    fn check_shape(
        &self,
        master_count: i64,
        worker_count: i64,
        _master_lb_enabled: bool,
    ) -> Result<(), DomainError> {
        if master_count % 2 == 0 {
            return Err(DomainError::invalid(format!(
                "master nodegroup size of {master_count} is invalid, size cannot be an even number."
            )));
        }
        if master_count > 9 {
            return Err(DomainError::invalid(
                "A swarm on the docker provider has at most 9 masters.",
            ));
        }
        if worker_count > 230 {
            return Err(DomainError::invalid(
                "A swarm on the docker provider has at most 230 worker nodes.",
            ));
        }
        Ok(())
    }

    fn check_upgrade(
        &self,
        from: &ClusterTemplate,
        to: &ClusterTemplate,
    ) -> Result<(), DomainError> {
        // Only what nodes are made from may change: the image (through its template) and
        // flavors. What the running swarm and its clients depend on must stay.
        let mut differences = Vec::new();
        if from.coe != to.coe {
            differences.push("coe");
        }
        if from.tls_disabled != to.tls_disabled {
            differences.push("tls_disabled");
        }
        if from.network_driver != to.network_driver {
            differences.push("network_driver");
        }
        if from.fixed_network != to.fixed_network {
            differences.push("fixed_network");
        }
        if from.driver != to.driver {
            differences.push("driver");
        }
        if differences.is_empty() {
            Ok(())
        } else {
            Err(DomainError::invalid(format!(
                "A swarm on the docker provider can be upgraded only to a template that differs in its image and flavors, not in {}.",
                differences.join(", ")
            )))
        }
    }

    async fn apply(
        &self,
        spec: &ClusterSpec,
        progress: &dyn ProgressSink,
    ) -> Result<Progress, DriverError> {
        // The API checked the shape; a spec from elsewhere (an older row, a hand edit) is
        // checked again so that planning never works on counts it cannot build.
        let workers_wanted = spec
            .worker_count()
            .ok_or_else(|| DriverError::Permanent("too many worker nodes".to_string()))?;
        self.check_shape(spec.master_count(), workers_wanted, spec.master_lb_enabled)
            .map_err(|error| DriverError::Permanent(error.message))?;
        if let Some(waiting) = self.ensure_images(spec, progress).await? {
            return Ok(Progress::Waiting(waiting));
        }
        let layout = ClusterLayout::new(&spec.uuid, &spec.name);
        let subnet = self
            .nodes
            .ensure_network(&layout, spec.network.fixed_network.as_deref())
            .await?;
        let existing = self.nodes.containers(&spec.uuid).await?;
        let plan = Plan::new(spec, &layout, subnet, &existing)?;

        // Missing nodes are made; stopped ones started.
        let missing: Vec<(NodeId, &NodeGroupSpec)> = plan
            .desired
            .iter()
            .copied()
            .filter(|(node, _)| !existing.iter().any(|container| container.node == *node))
            .collect();
        if !missing.is_empty() {
            progress.report(&format!("creating {} node container(s)", missing.len()));
        }
        let creations = missing
            .iter()
            .map(|(node, group)| self.build_node(spec, &layout, subnet, *node, group));
        for result in futures::future::join_all(creations).await {
            result?;
        }
        let wanted = |node: NodeId| plan.desired.iter().any(|(candidate, _)| *candidate == node);
        for container in existing
            .iter()
            .filter(|container| !container.running && wanted(container.node))
        {
            self.provision_and_start(spec, &layout, subnet, container.node)
                .await?;
        }
        if spec.reissue_certificates {
            let mut refreshed = false;
            for container in existing
                .iter()
                .filter(|container| container.node.role == Role::Master && container.running)
            {
                refreshed |= self
                    .refresh_master_certificates(spec, &layout, subnet, container.node)
                    .await?;
            }
            if refreshed {
                progress.report("distributing the new certificates");
                return Ok(Progress::Waiting(Waiting::new(
                    SOON,
                    "restarting the masters with certificates of the new CA",
                )));
            }
        }

        let first_master_node = NodeId {
            role: Role::Master,
            index: 0,
        };
        let first_master = address_of(subnet, first_master_node)?;
        let Some(master) = self.master_client(spec, first_master).await? else {
            self.check_not_stuck(
                &layout,
                first_master_node,
                &plan
                    .group_of(first_master_node)
                    .map(|group| group.image.clone())
                    .unwrap_or_default(),
            )
            .await?;
            return Ok(Progress::Waiting(Waiting::new(
                SOON,
                "waiting for the master's Docker API",
            )));
        };
        let (worker_token, manager_token) = self.ensure_swarm(&master, first_master).await?;
        let swarm = self.swarm_nodes(&master).await?;
        let known_ids: Vec<String> = swarm.iter().map(|node| node.id.clone()).collect();
        let ready_host = |host: &str| swarm.iter().any(|entry| entry.host == host && entry.ready);
        let master_address = format!("{first_master}:2377");
        let joins = plan
            .desired
            .iter()
            .filter(|(node, _)| *node != first_master_node)
            .filter(|(node, _)| !ready_host(&layout.host_name(*node)))
            .map(|(node, _)| {
                let token = if node.role == Role::Master {
                    &manager_token
                } else {
                    &worker_token
                };
                let container = layout.container_name(*node);
                let known_ids = &known_ids;
                let master_address = &master_address;
                async move {
                    self.join(&container, token, master_address, known_ids)
                        .await
                }
            });
        for result in futures::future::join_all(joins).await {
            // A node whose dockerd is still starting is looked at again next step.
            if let Err(error) = result {
                tracing::debug!(%error, "a node could not join yet");
            }
        }

        if !plan.surplus.is_empty() {
            progress.report(&format!("removing {} worker node(s)", plan.surplus.len()));
        }
        for index in &plan.surplus {
            self.remove_worker(
                &master,
                &layout,
                NodeId {
                    role: Role::Worker,
                    index: *index,
                },
            )
            .await?;
        }

        // Swarm entries of nodes that are not wanted (gone containers) or duplicated go.
        let swarm = self.swarm_nodes(&master).await?;
        let wanted_hosts: Vec<(String, NodeId)> = plan
            .desired
            .iter()
            .map(|(node, _)| (layout.host_name(*node), *node))
            .collect();
        for entry in &swarm {
            let duplicate_down = !entry.ready
                && swarm
                    .iter()
                    .any(|other| other.host == entry.host && other.ready);
            if !wanted_hosts.iter().any(|(host, _)| *host == entry.host) || duplicate_down {
                let _ = master
                    .delete_node(&entry.id, Some(DeleteNodeOptions { force: true }))
                    .await;
            }
        }
        // Nodes whose image or flavor is not their group's are replaced below, one at a
        // time, whether they work or not (a rollback replaces nodes that never worked).
        let mut outdated: Vec<(NodeId, &NodeGroupSpec)> = plan
            .desired
            .iter()
            .copied()
            .filter(|(node, group)| {
                existing.iter().any(|container| {
                    container.node == *node
                        && (container.image != group.image
                            || container
                                .flavor
                                .as_deref()
                                .is_some_and(|flavor| flavor != self.flavor_of(group)))
                })
            })
            .collect();
        outdated
            .sort_by_key(|(node, _)| (node.role == Role::Master, std::cmp::Reverse(node.index)));
        let not_ready: Vec<&(String, NodeId)> = wanted_hosts
            .iter()
            .filter(|(_, node)| !outdated.iter().any(|(candidate, _)| candidate == node))
            .filter(|(host, _)| !swarm.iter().any(|entry| entry.host == *host && entry.ready))
            .collect();
        if !not_ready.is_empty() {
            for (_, node) in &not_ready {
                let image = plan
                    .group_of(*node)
                    .map(|group| group.image.clone())
                    .unwrap_or_default();
                self.check_not_stuck(&layout, *node, &image).await?;
            }
            let status = format!(
                "{} of {} node(s) ready; waiting for {}",
                wanted_hosts.len() - not_ready.len(),
                wanted_hosts.len(),
                not_ready
                    .iter()
                    .map(|(host, _)| host.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            progress.report(&status);
            return Ok(Progress::Waiting(Waiting::new(SOON, status)));
        }

        // Replaced nodes that are ready go back to work.
        for entry in swarm
            .iter()
            .filter(|entry| entry.labels.contains_key(SWARM_REPLACING_LABEL))
        {
            let node = wanted_hosts
                .iter()
                .find(|(host, _)| *host == entry.host)
                .map(|(_, node)| *node);
            let replaced = node.is_some_and(|node| {
                existing.iter().all(|container| {
                    container.node != node
                        || plan.group_of(node).is_some_and(|group| {
                            container.image == group.image
                                && container
                                    .flavor
                                    .as_deref()
                                    .is_none_or(|flavor| flavor == self.flavor_of(group))
                        })
                })
            });
            if !replaced {
                continue;
            }
            // The manager may still show the old container's heartbeat: the new one must
            // say itself that it is back in the swarm.
            let (code, state) = self
                .nodes
                .exec(
                    &layout.container_name(node.unwrap_or(first_master_node)),
                    &["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"],
                )
                .await
                .unwrap_or((1, String::new()));
            if code != 0 || state.trim() != "active" {
                if let Some(node) = node {
                    let image = plan
                        .group_of(node)
                        .map(|group| group.image.clone())
                        .unwrap_or_default();
                    self.check_not_stuck(&layout, node, &image).await?;
                }
                return Ok(Progress::Waiting(Waiting::new(
                    SOON,
                    format!("waiting for the replaced node {} to rejoin", entry.host),
                )));
            }
            let mut labels = entry.labels.clone();
            labels.remove(SWARM_REPLACING_LABEL);
            self.update_swarm_node(&master, entry, NodeSpecAvailabilityEnum::ACTIVE, labels)
                .await?;
        }

        // One node at a time whose image or flavor is not its group's is replaced, keeping
        // its volume (and so its place in the swarm): workers first, the first master last.
        if let Some((node, group)) = outdated.first().copied() {
            let host = layout.host_name(node);
            let entry = swarm.iter().find(|entry| entry.host == host);
            match entry {
                Some(entry) if entry.ready && !entry.labels.contains_key(SWARM_REPLACING_LABEL) => {
                    progress.report(&format!("draining {host} to replace it"));
                    let mut labels = entry.labels.clone();
                    labels.insert(SWARM_REPLACING_LABEL.to_string(), "true".to_string());
                    self.update_swarm_node(&master, entry, NodeSpecAvailabilityEnum::DRAIN, labels)
                        .await?;
                    return Ok(Progress::Waiting(Waiting::new(
                        Duration::from_secs(1),
                        format!("draining {host} to replace it with image {}", group.image),
                    )));
                }
                _ => {
                    progress.report(&format!("replacing {host}"));
                    self.nodes.remove_node(&layout, node, true).await?;
                    self.build_node(spec, &layout, subnet, node, group).await?;
                    return Ok(Progress::Waiting(Waiting::new(
                        SOON,
                        format!(
                            "replacing {host} ({} of {} node(s) to replace)",
                            1,
                            outdated.len()
                        ),
                    )));
                }
            }
        }

        let hosts: Vec<(String, &NodeGroupSpec)> = plan
            .desired
            .iter()
            .map(|(node, group)| (layout.host_name(*node), *group))
            .collect();
        self.label_swarm_nodes(&master, &swarm, &hosts).await?;
        let version = master
            .version()
            .await
            .ok()
            .and_then(|version| version.version);
        let workers: Vec<(u32, String)> = plan
            .desired
            .iter()
            .filter(|(node, _)| node.role == Role::Worker)
            .map(|(node, group)| (node.index, group.name.clone()))
            .collect();
        let mut observed = Self::observed(spec, &layout, subnet, &workers, version);
        observed.health = HealthReport {
            healthy: true,
            reason: wanted_hosts
                .iter()
                .map(|(host, _)| (format!("{host}.Ready"), "True".to_string()))
                .chain([("api".to_string(), "ok".to_string())])
                .collect(),
        };
        Ok(Progress::Done(observed))
    }

    async fn delete(&self, cluster: &ClusterRef) -> Result<Removal, DriverError> {
        self.nodes.delete_cluster(&cluster.uuid).await
    }

    async fn observe(&self, spec: &ClusterSpec) -> Result<Observed, DriverError> {
        let layout = ClusterLayout::new(&spec.uuid, &spec.name);
        let containers = self.nodes.containers(&spec.uuid).await?;
        let mut reason = BTreeMap::new();
        let mut healthy = true;
        for container in &containers {
            if !container.running {
                healthy = false;
                reason.insert(
                    layout.host_name(container.node),
                    format!("container is {}", container.state),
                );
            }
        }
        let expected_masters = usize::try_from(spec.master_count()).unwrap_or(0);
        let expected_workers = usize::try_from(spec.worker_count().unwrap_or(0)).unwrap_or(0);
        let n_masters = containers
            .iter()
            .filter(|c| c.node.role == Role::Master)
            .count();
        let n_workers = containers
            .iter()
            .filter(|c| c.node.role == Role::Worker)
            .count();
        if n_masters < expected_masters || n_workers < expected_workers {
            healthy = false;
            reason.insert(
                "nodes".to_string(),
                format!("{n_masters} of {expected_masters} master and {n_workers} of {expected_workers} worker containers exist"),
            );
        }
        let workers: Vec<(u32, String)> = containers
            .iter()
            .filter(|c| c.node.role == Role::Worker)
            .map(|c| (c.node.index, c.group.clone()))
            .collect();
        let Some(subnet) = self.nodes.subnet(&layout).await? else {
            reason.insert(
                "network".to_string(),
                format!("network {} is missing", layout.network_name()),
            );
            return Ok(Observed {
                health: HealthReport {
                    healthy: false,
                    reason,
                },
                ..Observed::default()
            });
        };
        let first_master = NodeId {
            role: Role::Master,
            index: 0,
        };
        let mut version = None;
        let master_running = containers
            .iter()
            .any(|c| c.node == first_master && c.running);
        if master_running {
            let address = address_of(subnet, first_master)?;
            match self.master_client(spec, address).await? {
                Some(master) => {
                    reason.insert("api".to_string(), "ok".to_string());
                    version = master
                        .version()
                        .await
                        .ok()
                        .and_then(|version| version.version);
                    if let Ok(nodes) = self.swarm_nodes(&master).await {
                        for node in nodes {
                            healthy &= node.ready;
                            reason.insert(
                                format!("{}.Ready", node.host),
                                if node.ready { "True" } else { "False" }.to_string(),
                            );
                        }
                    }
                }
                None => {
                    healthy = false;
                    reason.insert(
                        "api".to_string(),
                        format!("the master's Docker API at {address}:{API_PORT} does not answer"),
                    );
                }
            }
        } else {
            healthy = false;
            reason.insert("api".to_string(), "the master is not running".to_string());
        }
        let mut observed = Self::observed(spec, &layout, subnet, &workers, version);
        observed.health = HealthReport { healthy, reason };
        Ok(observed)
    }
}
