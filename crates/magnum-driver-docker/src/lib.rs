//! The Docker provider: clusters as containers on the local Docker engine.
//!
//! Each node is a container running its own dockerd ("Docker in Docker"), on a per-cluster
//! internal bridge network with static addresses, with a named volume for its
//! `/var/lib/docker`. Masters serve the Docker API on port 2376, over TLS with certificates
//! of the cluster's CA unless the template disables TLS; the nodes form a Docker Swarm.
//! Everything a cluster owns carries the label `org.openstack.magnum.cluster=<uuid>`, so the
//! driver finds (and deletes) it from what the engine reports, whatever happened before.
//!
//! - [`layout`]: names, labels, addresses (pure).
//! - [`node_image`]: the Debian node image, built with debootstrap and cached.
//! - [`nodes`]: node plumbing that knows no COE (network, containers, files, commands).
//! - [`isolation`]: what a node container may do on the host, and its limits.
//! - [`provider`]: answers template lookups (images, flavors, networks) from the engine.
//! - [`swarm`]: the Swarm driver: create, scale, upgrade, delete, observe, step by step.

pub mod isolation;
pub mod layout;
pub mod node_image;
pub mod nodes;
pub mod provider;
pub mod swarm;

use bollard::Docker;
use ipnet::Ipv4Net;
use magnum_driver::DriverError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A named size: the CPU, memory and process limits of a node container.
#[derive(Debug, Clone, PartialEq)]
pub struct Flavor {
    pub name: String,
    pub cpus: f64,
    pub memory_mib: u64,
    /// Processes (and threads) the node and everything in it may have.
    pub pids: i64,
}

/// `[docker]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerSettings {
    /// The engine's unix socket.
    pub socket: String,
    /// The image nodes run; built from Debian packages when missing.
    pub node_image: String,
    /// Where .deb files and the root filesystem tarball are kept.
    pub image_cache_dir: PathBuf,
    pub debian_mirror: String,
    pub debian_suite: String,
    /// Cluster networks are /24 subnets of this pool.
    pub subnet_pool: Ipv4Net,
    /// The address pool of the swarms' own overlay networks.
    pub swarm_address_pool: String,
    pub flavors: Vec<Flavor>,
    /// The flavor of nodes whose template and nodegroup name none.
    pub default_flavor: String,
    /// Whether templates may disable TLS (the cluster's Docker API then has no
    /// authentication at all).
    pub allow_tls_disabled: bool,
    /// Where the conductor keeps each cluster's client certificate files (mode 0600).
    pub state_dir: PathBuf,
    /// How long a node may take to answer and join.
    pub ready_timeout: Duration,
}

/// The connection to the local engine, shared by the provider and the driver. It is made on
/// first use (and retried until it works), so magnumd starts even when no engine runs yet.
#[derive(Debug)]
pub struct LocalEngine {
    client: tokio::sync::OnceCell<Docker>,
    pub settings: DockerSettings,
    /// One node image build at a time in this process.
    image_build_lock: tokio::sync::Mutex<()>,
    /// The node image build running in the background for clusters waiting for it.
    image_build: std::sync::Mutex<Option<tokio::task::JoinHandle<Result<(), DriverError>>>>,
    /// The parent cgroup nodes start under, once it is prepared (None: the engine's own).
    cgroup_parent: tokio::sync::OnceCell<Option<String>>,
}

/// The parent cgroup (on cgroup v1 with the cgroupfs driver) under which node containers
/// run; see [`isolation::prepare_cgroup_parent`].
pub const NODE_CGROUP_PARENT: &str = "/magnum-nodes";

impl LocalEngine {
    pub fn new(settings: DockerSettings) -> Arc<LocalEngine> {
        Arc::new(LocalEngine {
            client: tokio::sync::OnceCell::new(),
            settings,
            image_build_lock: tokio::sync::Mutex::new(()),
            image_build: std::sync::Mutex::new(None),
            cgroup_parent: tokio::sync::OnceCell::new(),
        })
    }

    /// The parent cgroup for node containers, prepared the first time: on cgroup v1 with
    /// the cgroupfs driver, [`NODE_CGROUP_PARENT`] with only harmless devices allowed. None
    /// (the engine's default parent) elsewhere, with a warning when nodes could then reach
    /// devices they should not.
    pub async fn node_cgroup_parent(&self) -> Result<Option<String>, DriverError> {
        self.cgroup_parent
            .get_or_try_init(|| async {
                let info = self.docker().await?.info().await.map_err(|error| {
                    DriverError::Retryable(format!("cannot read the engine's settings: {error}"))
                })?;
                let cgroupfs_v1 = info.cgroup_version.map(|version| version.to_string())
                    == Some("1".to_string())
                    && info.cgroup_driver.map(|driver| driver.to_string())
                        == Some("cgroupfs".to_string());
                if !cgroupfs_v1 {
                    return Ok(None);
                }
                match isolation::prepare_cgroup_parent(
                    std::path::Path::new("/sys/fs/cgroup"),
                    NODE_CGROUP_PARENT,
                ) {
                    Ok(true) => Ok(Some(NODE_CGROUP_PARENT.to_string())),
                    Ok(false) => {
                        tracing::warn!(parent = NODE_CGROUP_PARENT, "the nodes' parent cgroup allows more devices than nodes may use and holds containers; nodes start under the engine's default parent, where they could reach the host's disks");
                        Ok(None)
                    }
                    Err(error) => {
                        tracing::warn!(%error, parent = NODE_CGROUP_PARENT, "cannot prepare the nodes' parent cgroup (is magnumd root on the engine's host?); nodes start under the engine's default parent, where they could reach the host's disks");
                        Ok(None)
                    }
                }
            })
            .await
            .cloned()
    }

    /// The engine client, connecting and agreeing on an API version the first time.
    pub async fn docker(&self) -> Result<&Docker, DriverError> {
        self.client
            .get_or_try_init(|| async {
                let socket = self
                    .settings
                    .socket
                    .trim_start_matches("unix://")
                    .to_string();
                Docker::connect_with_unix(&socket, 120, bollard::API_DEFAULT_VERSION)
                    .map_err(|error| {
                        DriverError::Retryable(format!(
                            "cannot reach the Docker engine at {socket}: {error}"
                        ))
                    })?
                    .negotiate_version()
                    .await
                    .map_err(|error| {
                        DriverError::Retryable(format!(
                            "the Docker engine at {socket} does not answer: {error}"
                        ))
                    })
            })
            .await
    }
}
