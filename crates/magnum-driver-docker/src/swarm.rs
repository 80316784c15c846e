//! Docker Swarm clusters on the local engine (driver `swarm_docker_v1`).
//!
//! [`SwarmDockerDriver::apply`] is a reconciliation: it reads what exists (by label), then
//! creates the network, volumes and containers that are missing, starts stopped ones, forms
//! or joins the swarm, drains and removes surplus workers, and waits until every node is
//! `Ready`. Run twice, or after a crash at any point, it converges to the same result.

use crate::layout::{
    candidate_subnets, gateway, node_address, plan_workers, ClusterLayout, NodeId, Role, API_PORT,
    CLUSTER_LABEL, INDEX_LABEL, NODEGROUP_LABEL, ROLE_LABEL,
};
use crate::{node_image, LocalEngine};
use async_trait::async_trait;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig,
    HostConfigCgroupnsModeEnum, Ipam, IpamConfig, NetworkCreateRequest, NetworkingConfig,
    NodeSpecAvailabilityEnum, SwarmInitRequest, VolumeCreateOptions,
};
use bollard::query_parameters::{
    CreateContainerOptions, DeleteNodeOptions, ListContainersOptions, ListNetworksOptions,
    ListNodesOptions, ListVolumesOptions, RemoveContainerOptions, RemoveVolumeOptions,
    UpdateNodeOptions, UploadToContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;
use ipnet::Ipv4Net;
use magnum_core::cluster::{DEFAULT_MASTER_NODEGROUP, DEFAULT_WORKER_NODEGROUP};
use magnum_core::DomainError;
use magnum_driver::{
    ClusterDriver, ClusterSpec, DriverError, HealthReport, Observed, ProgressSink, WorkerGroupSpec,
};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn retryable(context: &str, error: impl std::fmt::Display) -> DriverError {
    DriverError::Retryable(format!("{context}: {error}"))
}

fn permanent(context: &str, error: impl std::fmt::Display) -> DriverError {
    DriverError::Permanent(format!("{context}: {error}"))
}

fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// The swarm node label naming a node's nodegroup.
const SWARM_NODEGROUP_LABEL: &str = "magnum.nodegroup";

/// A node container as the engine reports it.
#[derive(Debug, Clone)]
struct NodeContainer {
    node: NodeId,
    /// The node's nodegroup name.
    group: String,
    id: String,
    running: bool,
    state: String,
    exit_code: Option<i64>,
}

/// The Swarm driver of the Docker provider.
#[derive(Debug, Clone)]
pub struct SwarmDockerDriver {
    engine: Arc<LocalEngine>,
}

impl SwarmDockerDriver {
    pub fn new(engine: Arc<LocalEngine>) -> Self {
        Self { engine }
    }

    async fn docker(&self) -> Result<&Docker, DriverError> {
        self.engine.docker().await
    }

    fn cluster_filter(uuid: &str) -> HashMap<String, Vec<String>> {
        HashMap::from([("label".to_string(), vec![format!("{CLUSTER_LABEL}={uuid}")])])
    }

    async fn containers(&self, uuid: &str) -> Result<Vec<NodeContainer>, DriverError> {
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
                    exit_code: None,
                    state,
                });
            }
        }
        nodes.sort_by_key(|container| container.node);
        Ok(nodes)
    }

    /// The cluster's network and subnet, creating it in the first free /24 when missing.
    async fn ensure_network(
        &self,
        layout: &ClusterLayout,
        fixed: Option<&str>,
    ) -> Result<Ipv4Net, DriverError> {
        let name = layout.network_name();
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
            Some(cidr) => vec![cidr.parse().map_err(|error| {
                permanent(&format!("fixed network {cidr} is not a subnet"), error)
            })?],
            None => candidate_subnets(self.engine.settings.subnet_pool).collect(),
        };
        for subnet in candidates {
            if used
                .iter()
                .any(|taken| taken.contains(&subnet.network()) || subnet.contains(&taken.network()))
            {
                continue;
            }
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
                // Taken meanwhile by another cluster (or another conductor): try the next one.
                Err(error) if error.to_string().contains("overlap") => continue,
                Err(error) if error.to_string().contains("already exists") => {
                    return Box::pin(self.ensure_network(layout, fixed)).await
                }
                Err(error) => {
                    return Err(retryable(&format!("cannot create network {name}"), error))
                }
            }
        }
        Err(DriverError::Permanent(match fixed {
            Some(cidr) => {
                format!("the fixed network {cidr} overlaps a network that is already in use")
            }
            None => format!(
                "no free /24 subnet is left in {}",
                self.engine.settings.subnet_pool
            ),
        }))
    }

    fn node_environment(&self, spec: &ClusterSpec, node: NodeId) -> Vec<String> {
        let mut environment = vec![
            format!("MAGNUM_NODE_ROLE={}", node.role.as_str()),
            format!("MAGNUM_TLS={}", if spec.tls_disabled { 0 } else { 1 }),
        ];
        if let Some(dns) = &spec.dns_nameserver {
            environment.push(format!("MAGNUM_DNS={dns}"));
        }
        for (names, value) in [
            (["HTTP_PROXY", "http_proxy"], &spec.http_proxy),
            (["HTTPS_PROXY", "https_proxy"], &spec.https_proxy),
            (["NO_PROXY", "no_proxy"], &spec.no_proxy),
        ] {
            if let Some(value) = value {
                for name in names {
                    environment.push(format!("{name}={value}"));
                }
            }
        }
        environment
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

    /// Files as a tar archive to unpack at `/` of a node.
    fn pack(files: &[(&str, String, u32)]) -> Result<Vec<u8>, DriverError> {
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

    async fn upload(
        &self,
        container: &str,
        archive: Vec<u8>,
        what: &str,
    ) -> Result<(), DriverError> {
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

    async fn create_node(
        &self,
        spec: &ClusterSpec,
        layout: &ClusterLayout,
        subnet: Ipv4Net,
        node: NodeId,
        group: &WorkerGroupSpec,
    ) -> Result<(), DriverError> {
        let address = node_address(subnet, node).ok_or_else(|| {
            DriverError::Permanent(format!(
                "the subnet {subnet} has no address for {} {}",
                node.role.as_str(),
                node.index
            ))
        })?;
        let labels = HashMap::from([
            (CLUSTER_LABEL.to_string(), layout.uuid.clone()),
            (ROLE_LABEL.to_string(), node.role.as_str().to_string()),
            (INDEX_LABEL.to_string(), node.index.to_string()),
            (NODEGROUP_LABEL.to_string(), group.name.clone()),
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
        let flavor = group.flavor.as_ref().and_then(|name| {
            self.engine
                .settings
                .flavors
                .iter()
                .find(|flavor| &flavor.name == name)
        });
        let network = layout.network_name();
        let container_name = layout.container_name(node);
        let body = ContainerCreateBody {
            image: Some(group.image.clone().unwrap_or_else(|| spec.image.clone())),
            hostname: Some(layout.host_name(node)),
            env: Some(self.node_environment(spec, node)),
            labels: Some(labels),
            host_config: Some(HostConfig {
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
                binds: Some(vec![format!("{volume}:/var/lib/docker")]),
                network_mode: Some(network.clone()),
                dns: spec.dns_nameserver.as_ref().map(|dns| {
                    dns.split(',')
                        .map(|server| server.trim().to_string())
                        .collect()
                }),
                memory: flavor.map(|flavor| {
                    i64::try_from(flavor.memory_mib).unwrap_or(i64::MAX) * 1024 * 1024
                }),
                nano_cpus: flavor.map(|flavor| (flavor.cpus * 1e9) as i64),
                ..HostConfig::default()
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
            Ok(_) => {}
            // Made by an earlier, interrupted attempt: it is started below.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => {}
            Err(error) => {
                return Err(retryable(
                    &format!("cannot create container {container_name}"),
                    error,
                ))
            }
        }
        self.provision_and_start(spec, layout, address, node, &container_name)
            .await
    }

    /// Copies the node's files into its (stopped) container and starts it. Run again for a
    /// container an interrupted attempt created but did not start: the copy is idempotent.
    async fn provision_and_start(
        &self,
        spec: &ClusterSpec,
        layout: &ClusterLayout,
        address: Ipv4Addr,
        node: NodeId,
        container: &str,
    ) -> Result<(), DriverError> {
        // The entrypoint travels with each node rather than in the image, so a changed
        // entrypoint never forces an image rebuild.
        let mut files = vec![(
            "usr/local/bin/magnum-node-init",
            crate::node_image::NODE_INIT.to_string(),
            0o755,
        )];
        if node.role == Role::Master {
            files.extend(Self::master_certificate_files(spec, layout, node, address)?);
        }
        self.upload(container, Self::pack(&files)?, "the node's files")
            .await?;
        self.start(container).await
    }

    /// Gives an existing master certificates from the (new) CA and restarts its dockerd.
    async fn reissue_master_certificates(
        &self,
        spec: &ClusterSpec,
        layout: &ClusterLayout,
        subnet: Ipv4Net,
        container: &NodeContainer,
    ) -> Result<(), DriverError> {
        let address = node_address(subnet, container.node)
            .ok_or_else(|| DriverError::Permanent("a master has no address".to_string()))?;
        let files = Self::master_certificate_files(spec, layout, container.node, address)?;
        if files.is_empty() {
            return Ok(());
        }
        self.upload(
            &container.id,
            Self::pack(&files)?,
            "the master's new certificates",
        )
        .await?;
        self.docker()
            .await?
            .restart_container(
                &container.id,
                None::<bollard::query_parameters::RestartContainerOptions>,
            )
            .await
            .map_err(|error| retryable("cannot restart a master", error))
    }

    /// Waits (up to a minute) until the engine no longer knows `container`.
    async fn wait_until_removed(&self, container: &str) -> Result<(), DriverError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self
                .docker()
                .await?
                .inspect_container(
                    container,
                    None::<bollard::query_parameters::InspectContainerOptions>,
                )
                .await
            {
                Err(error) if is_not_found(&error) => return Ok(()),
                _ if Instant::now() >= deadline => {
                    return Err(DriverError::Retryable(format!(
                        "container {container} is still being removed"
                    )))
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn start(&self, container: &str) -> Result<(), DriverError> {
        match self
            .docker()
            .await?
            .start_container(
                container,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(error) => Err(retryable(&format!("cannot start {container}"), error)),
        }
    }

    /// Runs a command in a node container; returns its exit code and output.
    async fn exec(&self, container: &str, command: &[&str]) -> Result<(i64, String), DriverError> {
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
                    text.push_str(&chunk.to_string());
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

    /// A client of the master's Docker API, over TLS with the conductor's certificate.
    async fn master_client(
        &self,
        spec: &ClusterSpec,
        address: Ipv4Addr,
    ) -> Result<Docker, DriverError> {
        let endpoint = format!("tcp://{address}:{API_PORT}");
        let docker = match &spec.certificates {
            None => Docker::connect_with_http(&endpoint, 30, bollard::API_DEFAULT_VERSION)
                .map_err(|error| retryable("cannot reach the master", error))?,
            Some(certificates) => {
                let directory = self.engine.settings.state_dir.join(&spec.uuid);
                write_private_files(
                    &directory,
                    &[
                        ("ca.pem", certificates.ca_pem()),
                        ("cert.pem", certificates.conductor_client().certificate_pem),
                        ("key.pem", certificates.conductor_client().private_key_pem),
                    ],
                )?;
                Docker::connect_with_ssl(
                    &endpoint,
                    &directory.join("key.pem"),
                    &directory.join("cert.pem"),
                    &directory.join("ca.pem"),
                    30,
                    bollard::API_DEFAULT_VERSION,
                )
                .map_err(|error| retryable("cannot reach the master over TLS", error))?
            }
        };
        let deadline = Instant::now() + self.engine.settings.ready_timeout;
        loop {
            match docker.ping().await {
                Ok(_) => break,
                Err(error) if Instant::now() >= deadline => {
                    return Err(retryable(
                        &format!("the master's Docker API at {endpoint} does not answer"),
                        error,
                    ))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        docker.negotiate_version().await.map_err(|error| {
            retryable("the master's Docker API does not agree on a version", error)
        })
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

    /// Swarm nodes as (id, host name, state, availability, version).
    async fn swarm_nodes(
        &self,
        master: &Docker,
    ) -> Result<Vec<(String, String, String, String, i64)>, DriverError> {
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
                let state = node
                    .status
                    .as_ref()
                    .and_then(|status| status.state)
                    .map(|state| state.to_string())
                    .unwrap_or_default();
                let availability = node
                    .spec
                    .as_ref()
                    .and_then(|spec| spec.availability)
                    .map(|availability| availability.to_string())
                    .unwrap_or_default();
                let version = node
                    .version
                    .as_ref()
                    .and_then(|version| version.index)
                    .map(|index| index as i64)
                    .unwrap_or_default();
                (
                    node.id.unwrap_or_default(),
                    host,
                    state,
                    availability,
                    version,
                )
            })
            .collect())
    }

    /// Gives every swarm node the label `magnum.nodegroup=<its nodegroup>` and its
    /// nodegroup's `node_labels` (usable in placement constraints). Labels added to the
    /// swarm by hand stay.
    async fn label_swarm_nodes(
        &self,
        master: &Docker,
        node_groups: &[(String, String)],
        spec: &ClusterSpec,
    ) -> Result<(), DriverError> {
        let nodes = master
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(|error| retryable("cannot list the swarm's nodes", error))?;
        for node in nodes {
            let host = node
                .description
                .as_ref()
                .and_then(|description| description.hostname.clone())
                .unwrap_or_default();
            let Some((_, group)) = node_groups.iter().find(|(name, _)| *name == host) else {
                continue;
            };
            let (Some(id), Some(mut node_spec)) = (node.id, node.spec) else {
                continue;
            };
            let mut wanted: HashMap<String, String> = spec
                .node_labels
                .get(group)
                .map(|labels| labels.clone().into_iter().collect())
                .unwrap_or_default();
            wanted.insert(SWARM_NODEGROUP_LABEL.to_string(), group.clone());
            let mut labels = node_spec.labels.take().unwrap_or_default();
            if wanted
                .iter()
                .all(|(key, value)| labels.get(key) == Some(value))
            {
                continue;
            }
            labels.extend(wanted);
            node_spec.labels = Some(labels);
            let version = node
                .version
                .and_then(|version| version.index)
                .map(|index| index as i64)
                .unwrap_or_default();
            master
                .update_node(&id, node_spec, UpdateNodeOptions { version })
                .await
                .map_err(|error| {
                    retryable(&format!("cannot label the swarm node {host}"), error)
                })?;
        }
        Ok(())
    }

    async fn remove_worker(
        &self,
        master: &Docker,
        layout: &ClusterLayout,
        node: NodeId,
    ) -> Result<(), DriverError> {
        let host = layout.host_name(node);
        let container = layout.container_name(node);
        for (id, _, _, _, version) in self
            .swarm_nodes(master)
            .await?
            .into_iter()
            .filter(|entry| entry.1 == host)
        {
            let drain = bollard::models::NodeSpec {
                availability: Some(NodeSpecAvailabilityEnum::DRAIN),
                role: Some(bollard::models::NodeSpecRoleEnum::WORKER),
                ..bollard::models::NodeSpec::default()
            };
            let _ = master
                .update_node(&id, drain, UpdateNodeOptions { version })
                .await;
        }
        // Leaving makes the manager see the node gone; a forced removal does not wait for it.
        let _ = self
            .exec(&container, &["docker", "swarm", "leave", "--force"])
            .await;
        for (id, _, _, _, _) in self
            .swarm_nodes(master)
            .await?
            .into_iter()
            .filter(|entry| entry.1 == host)
        {
            master
                .delete_node(&id, Some(DeleteNodeOptions { force: true }))
                .await
                .map_err(|error| {
                    retryable(&format!("cannot remove {host} from the swarm"), error)
                })?;
        }
        self.remove_container_and_volume(layout, node).await
    }

    async fn remove_container_and_volume(
        &self,
        layout: &ClusterLayout,
        node: NodeId,
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
                    || node_address(subnet, node)
                        .is_some_and(|address| wanted == &address.to_string())
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

    fn observed(
        &self,
        spec: &ClusterSpec,
        layout: &ClusterLayout,
        subnet: Ipv4Net,
        workers: &[(u32, String)],
        server_version: Option<String>,
    ) -> Observed {
        let masters: Vec<String> = (0..u32::try_from(spec.master_count).unwrap_or(0))
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
        let mut nodegroup_addresses = BTreeMap::from([
            (DEFAULT_MASTER_NODEGROUP.to_string(), masters.clone()),
            (DEFAULT_WORKER_NODEGROUP.to_string(), Vec::new()),
        ]);
        for group in &spec.extra_worker_groups {
            nodegroup_addresses.insert(group.name.clone(), Vec::new());
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
        Observed {
            stack_id: Some(layout.network_name()),
            api_address: masters
                .first()
                .map(|address| format!("tcp://{address}:{API_PORT}")),
            master_addresses: masters,
            node_addresses: nodes,
            nodegroup_addresses,
            coe_version: server_version.clone(),
            container_version: server_version,
            health: HealthReport::default(),
        }
    }

    /// The nodegroups of a cluster's nodes, masters first, then `default-worker`, then the
    /// others: names, sizes, flavors and images.
    fn node_groups(spec: &ClusterSpec) -> (WorkerGroupSpec, Vec<WorkerGroupSpec>) {
        let masters = WorkerGroupSpec {
            name: DEFAULT_MASTER_NODEGROUP.to_string(),
            node_count: spec.master_count,
            flavor: spec.master_flavor.clone().or(spec.node_flavor.clone()),
            image: None,
        };
        let mut workers = vec![WorkerGroupSpec {
            name: DEFAULT_WORKER_NODEGROUP.to_string(),
            node_count: spec.node_count,
            flavor: spec.node_flavor.clone(),
            image: None,
        }];
        workers.extend(
            spec.extra_worker_groups
                .iter()
                .map(|group| WorkerGroupSpec {
                    flavor: group.flavor.clone().or(spec.node_flavor.clone()),
                    ..group.clone()
                }),
        );
        (masters, workers)
    }
}

/// Writes files readable only by the owner (the conductor's client key among them).
fn write_private_files(
    directory: &std::path::Path,
    files: &[(&str, String)],
) -> Result<(), DriverError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    {
        use std::os::unix::fs::DirBuilderExt;
        if !directory.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(directory)
                .map_err(|error| permanent("cannot create the cluster's state directory", error))?;
        }
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
    Ok(())
}

#[async_trait]
impl ClusterDriver for SwarmDockerDriver {
    fn name(&self) -> &'static str {
        "swarm_docker_v1"
    }

    fn check_shape(
        &self,
        master_count: i64,
        node_count: i64,
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
        if node_count > 230 {
            return Err(DomainError::invalid(
                "A swarm on the docker provider has at most 230 worker nodes.",
            ));
        }
        Ok(())
    }

    async fn apply(
        &self,
        spec: &ClusterSpec,
        progress: &dyn ProgressSink,
    ) -> Result<Observed, DriverError> {
        // The API checked the shape; a spec from elsewhere (an older row, a hand edit) is
        // checked again so that planning never works on counts it cannot build.
        let workers_wanted = magnum_core::limits::checked_sum(
            std::iter::once(spec.node_count).chain(
                spec.extra_worker_groups
                    .iter()
                    .map(|group| group.node_count),
            ),
        )
        .ok_or_else(|| DriverError::Permanent("too many worker nodes".to_string()))?;
        self.check_shape(spec.master_count, workers_wanted, spec.master_lb_enabled)
            .map_err(|error| DriverError::Permanent(error.message))?;
        let layout = ClusterLayout::new(&spec.uuid, &spec.name);
        let (master_group, worker_groups) = Self::node_groups(spec);
        let mut images: Vec<&String> = worker_groups
            .iter()
            .filter_map(|group| group.image.as_ref())
            .chain([&spec.image])
            .collect();
        images.sort();
        images.dedup();
        for image in images {
            if image == &self.engine.settings.node_image {
                progress.report("preparing the node image");
                node_image::ensure_node_image(&self.engine, &self.engine.settings).await?;
            } else if self.docker().await?.inspect_image(image).await.is_err() {
                return Err(DriverError::Permanent(format!(
                    "the image {image} is not in the local engine"
                )));
            }
        }
        let subnet = self
            .ensure_network(&layout, spec.fixed_network.as_deref())
            .await?;
        let existing = self.containers(&spec.uuid).await?;
        let existing_workers: Vec<u32> = existing
            .iter()
            .filter(|container| container.node.role == Role::Worker)
            .map(|container| container.node.index)
            .collect();
        let remove = Self::indices_to_remove(spec, &layout, subnet, &existing_workers)?;
        // Each worker nodegroup is planned on its own; new workers take indices no other
        // group's worker (existing or just planned) has.
        let mut workers: Vec<(u32, String)> = Vec::new();
        let mut surplus: Vec<u32> = Vec::new();
        let mut group_of: HashMap<u32, &WorkerGroupSpec> = HashMap::new();
        for group in &worker_groups {
            let in_group: Vec<u32> = existing
                .iter()
                .filter(|c| c.node.role == Role::Worker && c.group == group.name)
                .map(|c| c.node.index)
                .collect();
            let reserved: Vec<u32> = existing_workers
                .iter()
                .copied()
                .filter(|index| !in_group.contains(index))
                .chain(workers.iter().map(|(index, _)| *index))
                .collect();
            let group_remove: Vec<u32> = remove
                .iter()
                .copied()
                .filter(|index| in_group.contains(index))
                .collect();
            let count = usize::try_from(group.node_count).unwrap_or(0);
            let (kept, gone) = plan_workers(&in_group, count, &group_remove, &reserved);
            for index in kept {
                group_of.insert(index, group);
                workers.push((index, group.name.clone()));
            }
            surplus.extend(gone);
        }
        // Workers of a nodegroup that no longer exists go too.
        surplus.extend(
            existing
                .iter()
                .filter(|c| {
                    c.node.role == Role::Worker
                        && !worker_groups.iter().any(|group| group.name == c.group)
                })
                .map(|c| c.node.index),
        );
        workers.sort();
        surplus.sort_unstable();
        surplus.dedup();
        let masters: Vec<u32> = (0..u32::try_from(spec.master_count).unwrap_or(1)).collect();
        let desired: Vec<NodeId> = masters
            .iter()
            .map(|index| NodeId {
                role: Role::Master,
                index: *index,
            })
            .chain(workers.iter().map(|(index, _)| NodeId {
                role: Role::Worker,
                index: *index,
            }))
            .collect();

        // Every node's nodegroup: what it is made from and the group it is labelled with.
        let group_for = |node: NodeId| match node.role {
            Role::Master => &master_group,
            Role::Worker => group_of.get(&node.index).copied().unwrap_or(&master_group),
        };
        let missing: Vec<NodeId> = desired
            .iter()
            .copied()
            .filter(|node| !existing.iter().any(|container| container.node == *node))
            .collect();
        if !missing.is_empty() {
            progress.report(&format!("creating {} node container(s)", missing.len()));
        }
        let creations = missing
            .iter()
            .map(|node| self.create_node(spec, &layout, subnet, *node, group_for(*node)));
        for result in futures::future::join_all(creations).await {
            result?;
        }
        for container in existing
            .iter()
            .filter(|container| !container.running && desired.contains(&container.node))
        {
            let address = node_address(subnet, container.node).ok_or_else(|| {
                DriverError::Permanent(format!(
                    "no address is left in {subnet} for {}",
                    layout.container_name(container.node)
                ))
            })?;
            self.provision_and_start(spec, &layout, address, container.node, &container.id)
                .await?;
        }
        if spec.reissue_certificates {
            progress.report("distributing the new certificates");
            for container in existing
                .iter()
                .filter(|container| container.node.role == Role::Master)
            {
                self.reissue_master_certificates(spec, &layout, subnet, container)
                    .await?;
            }
        }

        progress.report("forming the swarm");
        let first_master = node_address(
            subnet,
            NodeId {
                role: Role::Master,
                index: 0,
            },
        )
        .ok_or_else(|| {
            DriverError::Permanent("the cluster subnet has no master address".to_string())
        })?;
        let master = self.master_client(spec, first_master).await?;
        let (worker_token, manager_token) = self.ensure_swarm(&master, first_master).await?;
        let swarm_nodes = self.swarm_nodes(&master).await?;
        let joins = desired
            .iter()
            .filter(|node| !(node.role == Role::Master && node.index == 0))
            .filter_map(|node| {
                let host = layout.host_name(*node);
                let joined = swarm_nodes
                    .iter()
                    .any(|entry| entry.1 == host && entry.2 == "ready");
                (!joined).then_some(*node)
            });
        let join_tasks = joins.map(|node| {
            let token = if node.role == Role::Master {
                manager_token.clone()
            } else {
                worker_token.clone()
            };
            let container = layout.container_name(node);
            let master_address = format!("{first_master}:2377");
            async move {
                // A node whose volume survived a swarm it no longer belongs to must leave first.
                let _ = self
                    .exec(&container, &["docker", "swarm", "leave", "--force"])
                    .await;
                let deadline = Instant::now() + self.engine.settings.ready_timeout;
                loop {
                    let (code, output) = self
                        .exec(
                            &container,
                            &[
                                "docker",
                                "swarm",
                                "join",
                                "--token",
                                &token,
                                &master_address,
                            ],
                        )
                        .await?;
                    if code == 0 {
                        return Ok(());
                    }
                    if Instant::now() >= deadline {
                        return Err(DriverError::Retryable(format!(
                            "{container} cannot join the swarm: {}",
                            output.trim()
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        for result in futures::future::join_all(join_tasks).await {
            result?;
        }

        if !surplus.is_empty() {
            progress.report(&format!("removing {} worker node(s)", surplus.len()));
        }
        for index in &surplus {
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

        // Swarm entries of nodes that are not wanted (gone containers) or duplicated are removed.
        let wanted_hosts: Vec<String> =
            desired.iter().map(|node| layout.host_name(*node)).collect();
        progress.report(&format!(
            "waiting for {} node(s) to be ready",
            desired.len()
        ));
        let deadline = Instant::now() + self.engine.settings.ready_timeout;
        loop {
            let nodes = self.swarm_nodes(&master).await?;
            for (id, host, state, _, _) in &nodes {
                let duplicate_down = state != "ready"
                    && nodes
                        .iter()
                        .any(|other| &other.1 == host && other.2 == "ready");
                if !wanted_hosts.contains(host) || duplicate_down {
                    let _ = master
                        .delete_node(id, Some(DeleteNodeOptions { force: true }))
                        .await;
                }
            }
            let ready: Vec<&String> = nodes
                .iter()
                .filter(|entry| entry.2 == "ready" && entry.3 == "active")
                .map(|entry| &entry.1)
                .collect();
            let not_ready: Vec<&String> = wanted_hosts
                .iter()
                .filter(|host| !ready.contains(host))
                .collect();
            if not_ready.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(DriverError::Retryable(format!(
                    "node(s) not ready yet: {}",
                    not_ready
                        .iter()
                        .map(|host| host.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let node_groups: Vec<(String, String)> = desired
            .iter()
            .map(|node| (layout.host_name(*node), group_for(*node).name.clone()))
            .collect();
        self.label_swarm_nodes(&master, &node_groups, spec).await?;
        let version = master
            .version()
            .await
            .ok()
            .and_then(|version| version.version);
        let mut observed = self.observed(spec, &layout, subnet, &workers, version);
        observed.health = HealthReport {
            healthy: true,
            reason: wanted_hosts
                .iter()
                .map(|host| (format!("{host}.Ready"), "True".to_string()))
                .chain([("api".to_string(), "ok".to_string())])
                .collect(),
        };
        Ok(observed)
    }

    async fn delete(&self, cluster_uuid: &str) -> Result<(), DriverError> {
        let filter = Self::cluster_filter(cluster_uuid);
        // Every node at once: the engine stops and removes them in parallel.
        let removals =
            self.containers(cluster_uuid)
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
                        Ok(()) => Ok(()),
                        Err(error) if is_not_found(&error) => Ok(()),
                        // An earlier attempt (perhaps of a process that died) is removing it.
                        Err(error) if error.to_string().contains("already in progress") => {
                            self.wait_until_removed(&container.id).await
                        }
                        Err(error) => Err(retryable("cannot remove a node container", error)),
                    }
                });
        for result in futures::future::join_all(removals).await {
            result?;
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
        let directory = self.engine.settings.state_dir.join(cluster_uuid);
        if directory.exists() {
            std::fs::remove_dir_all(&directory).map_err(|error| {
                permanent(&format!("cannot remove {}", directory.display()), error)
            })?;
        }
        Ok(())
    }

    async fn observe(&self, spec: &ClusterSpec) -> Result<Observed, DriverError> {
        let layout = ClusterLayout::new(&spec.uuid, &spec.name);
        let containers = self.containers(&spec.uuid).await?;
        let mut reason = BTreeMap::new();
        let mut healthy = true;
        for container in &containers {
            if !container.running {
                healthy = false;
                let code = match container.exit_code {
                    Some(code) => format!(" with code {code}"),
                    None => String::new(),
                };
                reason.insert(
                    layout.host_name(container.node),
                    format!("container is {}{code}", container.state),
                );
            }
        }
        let expected_masters = usize::try_from(spec.master_count).unwrap_or(0);
        let expected_workers = usize::try_from(
            spec.node_count
                + spec
                    .extra_worker_groups
                    .iter()
                    .map(|group| group.node_count)
                    .sum::<i64>(),
        )
        .unwrap_or(0);
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
        let network = layout.network_name();
        let subnet = self
            .docker()
            .await?
            .inspect_network(
                &network,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
            .ok()
            .and_then(|network| network.ipam?.config?.first()?.subnet.clone())
            .and_then(|subnet| subnet.parse::<Ipv4Net>().ok());
        let Some(subnet) = subnet else {
            reason.insert(
                "network".to_string(),
                format!("network {network} is missing"),
            );
            return Ok(Observed {
                health: HealthReport {
                    healthy: false,
                    reason,
                },
                ..Observed::default()
            });
        };
        let mut version = None;
        let master_running = containers.iter().any(|c| {
            c.node
                == NodeId {
                    role: Role::Master,
                    index: 0,
                }
                && c.running
        });
        if master_running {
            let first_master = node_address(
                subnet,
                NodeId {
                    role: Role::Master,
                    index: 0,
                },
            )
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
            match self.master_client(spec, first_master).await {
                Ok(master) => {
                    reason.insert("api".to_string(), "ok".to_string());
                    version = master
                        .version()
                        .await
                        .ok()
                        .and_then(|version| version.version);
                    if let Ok(nodes) = self.swarm_nodes(&master).await {
                        for (_, host, state, _, _) in nodes {
                            let ready = state == "ready";
                            healthy &= ready;
                            reason.insert(
                                format!("{host}.Ready"),
                                if ready { "True" } else { "False" }.to_string(),
                            );
                        }
                    }
                }
                Err(error) => {
                    healthy = false;
                    reason.insert("api".to_string(), error.to_string());
                }
            }
        } else {
            healthy = false;
            reason.insert("api".to_string(), "the master is not running".to_string());
        }
        let mut observed = self.observed(spec, &layout, subnet, &workers, version);
        observed.health = HealthReport { healthy, reason };
        Ok(observed)
    }
}
