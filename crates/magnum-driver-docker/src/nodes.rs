//! Node plumbing that knows no COE: a cluster's network, its node containers (each with a
//! volume for its own `/var/lib/docker`), files copied into them, commands run in them, and
//! removing it all. A COE driver on the local engine ([`crate::swarm`] today) decides what
//! the nodes run and how they form a cluster; everything it makes goes through here, so
//! every resource carries the cluster's labels and every call into a node is bounded.

use crate::layout::{
    candidate_subnets, gateway, node_address, ClusterLayout, NodeId, Role, CLUSTER_LABEL,
    FLAVOR_LABEL, IMAGE_LABEL, INDEX_LABEL, NODEGROUP_LABEL, ROLE_LABEL,
};
use crate::{Flavor, LocalEngine};
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig,
    NetworkCreateRequest, NetworkingConfig, VolumeCreateOptions,
};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, ListNetworksOptions, ListVolumesOptions,
    RemoveContainerOptions, RemoveVolumeOptions, UploadToContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;
use ipnet::Ipv4Net;
use magnum_core::cluster::{DEFAULT_MASTER_NODEGROUP, DEFAULT_WORKER_NODEGROUP};
use magnum_driver::{DriverError, Removal, Waiting};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

/// How long one command in a node may run.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a command's output is kept.
pub const EXEC_OUTPUT_CAP: usize = 64 * 1024;

pub(crate) fn retryable(context: &str, error: impl std::fmt::Display) -> DriverError {
    DriverError::Retryable(format!("{context}: {error}"))
}

pub(crate) fn permanent(context: &str, error: impl std::fmt::Display) -> DriverError {
    DriverError::Permanent(format!("{context}: {error}"))
}

pub(crate) fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// A node container as the engine reports it.
#[derive(Debug, Clone)]
pub struct NodeContainer {
    pub node: NodeId,
    /// The node's nodegroup name.
    pub group: String,
    pub id: String,
    pub running: bool,
    pub state: String,
    /// The image the node was made from, as its nodegroup named it.
    pub image: String,
    /// The flavor the node was made with (none for nodes of older versions).
    pub flavor: Option<String>,
}

/// Everything one node container is made from.
#[derive(Debug, Clone)]
pub struct NodeBlueprint {
    pub node: NodeId,
    pub group: String,
    pub image: String,
    pub flavor: Option<String>,
    pub host_name: String,
    pub environment: Vec<String>,
    /// DNS servers for the node itself (comma-separated, as templates give them).
    pub dns_nameserver: Option<String>,
}

/// The node plumbing of one engine.
#[derive(Debug, Clone)]
pub struct NodeEngine {
    pub(crate) engine: Arc<LocalEngine>,
}

impl NodeEngine {
    pub fn new(engine: Arc<LocalEngine>) -> Self {
        Self { engine }
    }

    pub async fn docker(&self) -> Result<&Docker, DriverError> {
        self.engine.docker().await
    }

    pub fn cluster_filter(uuid: &str) -> HashMap<String, Vec<String>> {
        HashMap::from([("label".to_string(), vec![format!("{CLUSTER_LABEL}={uuid}")])])
    }

    /// Every node container of a cluster, in node order.
    pub async fn containers(&self, uuid: &str) -> Result<Vec<NodeContainer>, DriverError> {
        let listed = self
            .docker()
            .await?
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(Self::cluster_filter(uuid)),
                ..ListContainersOptions::default()
            }))
            .await
            .map_err(|error| retryable("cannot list the cluster's containers", error))?;
        let mut nodes = Vec::new();
        for summary in listed {
            let labels = summary.labels.unwrap_or_default();
            let role = labels.get(ROLE_LABEL).and_then(|role| Role::parse(role));
            let index = labels.get(INDEX_LABEL).and_then(|index| index.parse().ok());
            if let (Some(role), Some(index), Some(id)) = (role, index, summary.id) {
                let group = labels.get(NODEGROUP_LABEL).cloned().unwrap_or_else(|| {
                    match role {
                        Role::Master => DEFAULT_MASTER_NODEGROUP,
                        Role::Worker => DEFAULT_WORKER_NODEGROUP,
                    }
                    .to_string()
                });
                let state = summary
                    .state
                    .map(|state| state.to_string())
                    .unwrap_or_default();
                nodes.push(NodeContainer {
                    node: NodeId { role, index },
                    group,
                    id,
                    running: state == "running",
                    state,
                    image: labels
                        .get(IMAGE_LABEL)
                        .cloned()
                        .or(summary.image)
                        .unwrap_or_default(),
                    flavor: labels.get(FLAVOR_LABEL).cloned(),
                });
            }
        }
        nodes.sort_by_key(|container| container.node);
        Ok(nodes)
    }

    /// The subnet of the cluster's network, if it exists.
    pub async fn subnet(&self, layout: &ClusterLayout) -> Result<Option<Ipv4Net>, DriverError> {
        match self
            .docker()
            .await?
            .inspect_network(
                &layout.network_name(),
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
        {
            Ok(network) => Ok(network
                .ipam
                .and_then(|ipam| ipam.config)
                .and_then(|configs| configs.into_iter().next())
                .and_then(|config| config.subnet)
                .and_then(|subnet| subnet.parse::<Ipv4Net>().ok())),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(retryable("cannot read the cluster network", error)),
        }
    }

    /// The cluster's network and subnet, creating it in the first free /24 of the pool (or
    /// on `fixed`, a CIDR inside the pool) when missing.
    pub async fn ensure_network(
        &self,
        layout: &ClusterLayout,
        fixed: Option<&str>,
    ) -> Result<Ipv4Net, DriverError> {
        let name = layout.network_name();
        let pool = self.engine.settings.subnet_pool;
        for _attempt in 0..8 {
            let networks = self
                .docker()
                .await?
                .list_networks(Some(ListNetworksOptions {
                    filters: Some(HashMap::new()),
                }))
                .await
                .map_err(|error| retryable("cannot list networks", error))?;
            let mut used = Vec::new();
            for network in &networks {
                let subnets: Vec<Ipv4Net> = network
                    .ipam
                    .as_ref()
                    .and_then(|ipam| ipam.config.as_ref())
                    .into_iter()
                    .flatten()
                    .filter_map(|config| config.subnet.as_ref()?.parse().ok())
                    .collect();
                if network.name.as_deref() == Some(name.as_str()) {
                    return subnets.first().copied().ok_or_else(|| {
                        DriverError::Permanent(format!("network {name} has no IPv4 subnet"))
                    });
                }
                used.extend(subnets);
            }
            let candidates: Vec<Ipv4Net> = match fixed {
                Some(cidr) => {
                    let subnet: Ipv4Net = cidr.parse().map_err(|error| {
                        permanent(&format!("fixed network {cidr} is not a subnet"), error)
                    })?;
                    if !pool.contains(&subnet) {
                        return Err(DriverError::Permanent(format!(
                            "the fixed network {cidr} is outside [docker] subnet_pool {pool}"
                        )));
                    }
                    vec![subnet]
                }
                None => candidate_subnets(pool).collect(),
            };
            let free = candidates.into_iter().find(|subnet| {
                !used.iter().any(|taken| {
                    taken.contains(&subnet.network()) || subnet.contains(&taken.network())
                })
            });
            let Some(subnet) = free else {
                return Err(DriverError::Permanent(match fixed {
                    Some(cidr) => format!(
                        "the fixed network {cidr} overlaps a network that is already in use"
                    ),
                    None => format!("no free /24 subnet is left in {pool}"),
                }));
            };
            let request = NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".to_string()),
                internal: Some(true),
                ipam: Some(Ipam {
                    config: Some(vec![IpamConfig {
                        subnet: Some(subnet.to_string()),
                        gateway: Some(gateway(subnet).to_string()),
                        ..IpamConfig::default()
                    }]),
                    ..Ipam::default()
                }),
                labels: Some(HashMap::from([(
                    CLUSTER_LABEL.to_string(),
                    layout.uuid.clone(),
                )])),
                ..NetworkCreateRequest::default()
            };
            match self.docker().await?.create_network(request).await {
                Ok(_) => return Ok(subnet),
                // Taken meanwhile by another cluster (or made by another conductor for this
                // one): look again.
                Err(error)
                    if error.to_string().contains("overlap")
                        || error.to_string().contains("already exists") =>
                {
                    continue
                }
                Err(error) => {
                    return Err(retryable(&format!("cannot create network {name}"), error))
                }
            }
        }
        Err(DriverError::Retryable(format!(
            "the network {name} could not be made: other networks kept taking its subnet"
        )))
    }

    /// The limits of a node: its flavor, else the default flavor.
    fn flavor(&self, name: Option<&str>) -> Option<&Flavor> {
        let settings = &self.engine.settings;
        let wanted = name.unwrap_or(settings.default_flavor.as_str());
        settings.flavors.iter().find(|flavor| flavor.name == wanted)
    }

    /// Creates a node's volume and (stopped) container; an existing one is kept.
    pub async fn create(
        &self,
        layout: &ClusterLayout,
        subnet: Ipv4Net,
        blueprint: &NodeBlueprint,
    ) -> Result<(), DriverError> {
        let node = blueprint.node;
        let address = node_address(subnet, node).ok_or_else(|| {
            DriverError::Permanent(format!(
                "the subnet {subnet} has no address for {} {}",
                node.role.as_str(),
                node.index
            ))
        })?;
        let mut labels = HashMap::from([
            (CLUSTER_LABEL.to_string(), layout.uuid.clone()),
            (ROLE_LABEL.to_string(), node.role.as_str().to_string()),
            (INDEX_LABEL.to_string(), node.index.to_string()),
            (NODEGROUP_LABEL.to_string(), blueprint.group.clone()),
        ]);
        let volume = layout.volume_name(node);
        self.docker()
            .await?
            .create_volume(VolumeCreateOptions {
                name: Some(volume.clone()),
                labels: Some(labels.clone()),
                ..VolumeCreateOptions::default()
            })
            .await
            .map_err(|error| retryable(&format!("cannot create volume {volume}"), error))?;
        labels.insert(IMAGE_LABEL.to_string(), blueprint.image.clone());
        let flavor = self.flavor(blueprint.flavor.as_deref()).ok_or_else(|| {
            DriverError::Permanent(format!(
                "the flavor {} is not in [docker] flavors",
                blueprint
                    .flavor
                    .as_deref()
                    .unwrap_or(self.engine.settings.default_flavor.as_str())
            ))
        })?;
        labels.insert(FLAVOR_LABEL.to_string(), flavor.name.clone());
        let network = layout.network_name();
        let container_name = layout.container_name(node);
        let cgroup_parent = self.engine.node_cgroup_parent().await?;
        let body = ContainerCreateBody {
            image: Some(blueprint.image.clone()),
            hostname: Some(blueprint.host_name.clone()),
            env: Some(blueprint.environment.clone()),
            labels: Some(labels),
            host_config: Some(HostConfig {
                binds: Some(vec![format!("{volume}:/var/lib/docker")]),
                network_mode: Some(network.clone()),
                dns: blueprint.dns_nameserver.as_ref().map(|dns| {
                    dns.split(',')
                        .map(|server| server.trim().to_string())
                        .collect()
                }),
                cgroup_parent,
                ..crate::isolation::node_host_config(flavor)
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network,
                    EndpointSettings {
                        ipam_config: Some(EndpointIpamConfig {
                            ipv4_address: Some(address.to_string()),
                            ..EndpointIpamConfig::default()
                        }),
                        ..EndpointSettings::default()
                    },
                )])),
            }),
            ..ContainerCreateBody::default()
        };
        let created = self
            .docker()
            .await?
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(container_name.clone()),
                    ..CreateContainerOptions::default()
                }),
                body,
            )
            .await;
        match created {
            Ok(_) => Ok(()),
            // Made by an earlier, interrupted attempt.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(error) => Err(retryable(
                &format!("cannot create container {container_name}"),
                error,
            )),
        }
    }

    /// Files as a tar archive to unpack at `/` of a node.
    pub fn pack(files: &[(&str, String, u32)]) -> Result<Vec<u8>, DriverError> {
        let mut archive = tar::Builder::new(Vec::new());
        for (path, content, mode) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(*mode);
            header.set_cksum();
            archive
                .append_data(&mut header, path, content.as_bytes())
                .map_err(|error| permanent("cannot pack the node's files", error))?;
        }
        archive
            .into_inner()
            .map_err(|error| permanent("cannot pack the node's files", error))
    }

    /// Copies files into a node (running or not), unpacked at `/`.
    pub async fn upload(
        &self,
        container: &str,
        files: &[(&str, String, u32)],
        what: &str,
    ) -> Result<(), DriverError> {
        let archive = Self::pack(files)?;
        self.docker()
            .await?
            .upload_to_container(
                container,
                Some(UploadToContainerOptions {
                    path: "/".to_string(),
                    ..UploadToContainerOptions::default()
                }),
                bollard::body_full(archive.into()),
            )
            .await
            .map_err(|error| retryable(&format!("cannot copy {what}"), error))
    }

    pub async fn start(&self, container: &str) -> Result<(), DriverError> {
        match self
            .docker()
            .await?
            .start_container(
                container,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
        {
            Ok(()) => {}
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => {}
            Err(error) => return Err(retryable(&format!("cannot start {container}"), error)),
        }
        self.delegate_cgroups(container).await
    }

    pub async fn restart(&self, container: &str) -> Result<(), DriverError> {
        self.docker()
            .await?
            .restart_container(
                container,
                None::<bollard::query_parameters::RestartContainerOptions>,
            )
            .await
            .map_err(|error| retryable(&format!("cannot restart {container}"), error))?;
        self.delegate_cgroups(container).await
    }

    /// On an engine that remaps user namespaces, gives the (just started) node its cgroup
    /// directories (see [`crate::isolation::delegate_cgroups`]); nothing otherwise, or when
    /// this process cannot see the node's processes (the engine runs elsewhere).
    async fn delegate_cgroups(&self, container: &str) -> Result<(), DriverError> {
        let inspected = self
            .docker()
            .await?
            .inspect_container(
                container,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .map_err(|error| retryable(&format!("cannot inspect {container}"), error))?;
        let Some(pid) = inspected
            .state
            .and_then(|state| state.pid)
            .filter(|pid| *pid > 0)
        else {
            return Ok(());
        };
        let Ok(Some((uid, gid))) = crate::isolation::remapped_root(pid) else {
            return Ok(());
        };
        let delegated = crate::isolation::delegate_cgroups(
            std::path::Path::new("/sys/fs/cgroup"),
            pid,
            uid,
            gid,
        )
        .map_err(|error| {
            retryable(
                &format!("cannot hand {container} its cgroups (user namespace root {uid})"),
                error,
            )
        })?;
        tracing::debug!(container, uid, delegated, "delegated the node's cgroups");
        Ok(())
    }

    /// How long the container has been running (None when it is not running).
    pub async fn running_for(&self, container: &str) -> Result<Option<Duration>, DriverError> {
        let inspected = match self
            .docker()
            .await?
            .inspect_container(
                container,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(inspected) => inspected,
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(retryable(&format!("cannot inspect {container}"), error)),
        };
        let Some(state) = inspected.state else {
            return Ok(None);
        };
        if state.running != Some(true) {
            return Ok(None);
        }
        let started = state
            .started_at
            .and_then(|text| chrono::DateTime::parse_from_rfc3339(&text).ok())
            .map(|at| at.with_timezone(&chrono::Utc));
        Ok(started.map(|at| (chrono::Utc::now() - at).to_std().unwrap_or(Duration::ZERO)))
    }

    /// Runs a command in a node container for at most [`EXEC_TIMEOUT`], keeping at most
    /// [`EXEC_OUTPUT_CAP`] bytes of its output; returns its exit code and output. A command
    /// that does not end in time is reported as a retryable failure (it may go on in the
    /// node, which cannot hurt anyone but the node).
    pub async fn exec(
        &self,
        container: &str,
        command: &[&str],
    ) -> Result<(i64, String), DriverError> {
        match tokio::time::timeout(EXEC_TIMEOUT, self.exec_unbounded(container, command)).await {
            Ok(result) => result,
            Err(_) => Err(DriverError::Retryable(format!(
                "`{}` in {container} did not finish within {} s",
                command.join(" "),
                EXEC_TIMEOUT.as_secs()
            ))),
        }
    }

    async fn exec_unbounded(
        &self,
        container: &str,
        command: &[&str],
    ) -> Result<(i64, String), DriverError> {
        let exec = self
            .docker()
            .await?
            .create_exec(
                container,
                CreateExecOptions {
                    cmd: Some(command.iter().map(|part| part.to_string()).collect()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..CreateExecOptions::default()
                },
            )
            .await
            .map_err(|error| retryable(&format!("cannot run a command in {container}"), error))?;
        let mut text = String::new();
        if let StartExecResults::Attached { mut output, .. } = self
            .docker()
            .await?
            .start_exec(&exec.id, None)
            .await
            .map_err(|error| retryable(&format!("cannot run a command in {container}"), error))?
        {
            while let Some(chunk) = output.next().await {
                if let Ok(chunk) = chunk {
                    let piece = chunk.to_string();
                    let room = EXEC_OUTPUT_CAP.saturating_sub(text.len());
                    if room == 0 {
                        break;
                    }
                    let mut end = piece.len().min(room);
                    while !piece.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.push_str(&piece[..end]);
                }
            }
        }
        let inspected = self
            .docker()
            .await?
            .inspect_exec(&exec.id)
            .await
            .map_err(|error| retryable("cannot read a command's result", error))?;
        Ok((inspected.exit_code.unwrap_or(-1), text))
    }

    /// Removes a node's container; its volume too unless `keep_volume` (a node replaced
    /// with another image keeps its state).
    pub async fn remove_node(
        &self,
        layout: &ClusterLayout,
        node: NodeId,
        keep_volume: bool,
    ) -> Result<(), DriverError> {
        let container = layout.container_name(node);
        match self
            .docker()
            .await?
            .remove_container(
                &container,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..RemoveContainerOptions::default()
                }),
            )
            .await
        {
            Ok(()) => {}
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(retryable(&format!("cannot remove {container}"), error)),
        }
        if keep_volume {
            return Ok(());
        }
        let volume = layout.volume_name(node);
        match self
            .docker()
            .await?
            .remove_volume(&volume, Some(RemoveVolumeOptions { force: true }))
            .await
        {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(retryable(&format!("cannot remove volume {volume}"), error)),
        }
    }

    /// Takes one step toward removing everything of a cluster: containers, volumes, the
    /// network and the conductor's files for it.
    pub async fn delete_cluster(&self, uuid: &str) -> Result<Removal, DriverError> {
        let filter = Self::cluster_filter(uuid);
        // Every node at once: the engine stops and removes them in parallel.
        let removals = self
            .containers(uuid)
            .await?
            .into_iter()
            .map(|container| async move {
                match self
                    .docker()
                    .await?
                    .remove_container(
                        &container.id,
                        Some(RemoveContainerOptions {
                            force: true,
                            v: true,
                            ..RemoveContainerOptions::default()
                        }),
                    )
                    .await
                {
                    Ok(()) => Ok(true),
                    Err(error) if is_not_found(&error) => Ok(true),
                    // An earlier attempt (perhaps of a process that died) is removing it.
                    Err(error) if error.to_string().contains("already in progress") => Ok(false),
                    Err(error) => Err(retryable("cannot remove a node container", error)),
                }
            });
        let mut all_gone = true;
        for result in futures::future::join_all(removals).await {
            all_gone &= result?;
        }
        if !all_gone {
            return Ok(Removal::Waiting(Waiting::new(
                Duration::from_millis(250),
                "waiting for node containers to be removed",
            )));
        }
        let volumes = self
            .docker()
            .await?
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filter.clone()),
            }))
            .await
            .map_err(|error| retryable("cannot list the cluster's volumes", error))?;
        let removals = volumes
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|volume| async move {
                match self
                    .docker()
                    .await?
                    .remove_volume(&volume.name, Some(RemoveVolumeOptions { force: true }))
                    .await
                {
                    Ok(()) => Ok(()),
                    Err(error) if is_not_found(&error) => Ok(()),
                    Err(error) => Err(retryable(
                        &format!("cannot remove volume {}", volume.name),
                        error,
                    )),
                }
            });
        for result in futures::future::join_all(removals).await {
            result?;
        }
        let networks = self
            .docker()
            .await?
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filter),
            }))
            .await
            .map_err(|error| retryable("cannot list the cluster's networks", error))?;
        for network in networks {
            let id = network.id.unwrap_or_default();
            match self.docker().await?.remove_network(&id).await {
                Ok(()) => {}
                Err(error) if is_not_found(&error) => {}
                Err(error) => return Err(retryable("cannot remove the cluster network", error)),
            }
        }
        let directory = self.engine.settings.state_dir.join(uuid);
        if directory.exists() {
            std::fs::remove_dir_all(&directory).map_err(|error| {
                permanent(&format!("cannot remove {}", directory.display()), error)
            })?;
        }
        Ok(Removal::Gone)
    }

    /// Writes files readable only by the owner (the conductor's client key among them)
    /// into the conductor's directory for a cluster.
    pub fn write_private_files(
        &self,
        uuid: &str,
        files: &[(&str, String)],
    ) -> Result<std::path::PathBuf, DriverError> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let directory = self.engine.settings.state_dir.join(uuid);
        if !directory.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&directory)
                .map_err(|error| permanent("cannot create the cluster's state directory", error))?;
        }
        for (name, content) in files {
            let path = directory.join(name);
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .map_err(|error| permanent(&format!("cannot write {}", path.display()), error))?;
            file.write_all(content.as_bytes())
                .map_err(|error| permanent(&format!("cannot write {}", path.display()), error))?;
        }
        Ok(directory)
    }
}

/// A node's address, or the permanent error of a subnet too small for it.
pub fn address_of(subnet: Ipv4Net, node: NodeId) -> Result<Ipv4Addr, DriverError> {
    node_address(subnet, node).ok_or_else(|| {
        DriverError::Permanent(format!(
            "no address is left in {subnet} for {} {}",
            node.role.as_str(),
            node.index
        ))
    })
}
