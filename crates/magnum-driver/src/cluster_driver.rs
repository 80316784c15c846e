//! What the conductor asks of a driver: make the infrastructure match a [`ClusterSpec`],
//! remove it, or report what is there. Every call must be idempotent — the conductor may be
//! killed at any instant and will call again — and must find its resources by the cluster's
//! uuid (labels, stack names), never by in-memory state.

use async_trait::async_trait;
use magnum_core::coe::Coe;
use magnum_core::labels::Labels;
use magnum_core::DomainError;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// A certificate and key, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    pub certificate_pem: String,
    pub private_key_pem: String,
}

impl std::fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IssuedCertificate(..)")
    }
}

/// The cluster's certificate authority, as a driver may use it.
pub trait ClusterCertificates: Send + Sync + std::fmt::Debug {
    /// The CA certificate nodes and clients trust.
    fn ca_pem(&self) -> String;
    /// A server certificate for a node with these addresses and names.
    fn issue_server(
        &self,
        common_name: &str,
        addresses: &[IpAddr],
        dns_names: &[String],
    ) -> Result<IssuedCertificate, String>;
    /// The conductor's client certificate for this cluster.
    fn conductor_client(&self) -> IssuedCertificate;
}

/// A worker nodegroup besides `default-worker` (made with `POST …/nodegroups`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerGroupSpec {
    /// The nodegroup's name, unique in the cluster; nodes carry it.
    pub name: String,
    pub node_count: i64,
    /// The group's flavor and image; the cluster's when None.
    pub flavor: Option<String>,
    pub image: Option<String>,
}

/// Everything a driver needs to build or change one cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub uuid: String,
    /// The cluster's name, or its uuid when it has none.
    pub name: String,
    pub coe: Coe,
    pub image: String,
    pub master_flavor: Option<String>,
    pub node_flavor: Option<String>,
    pub master_count: i64,
    /// Whether the masters sit behind a load balancer.
    pub master_lb_enabled: bool,
    /// Workers of the `default-worker` nodegroup.
    pub node_count: i64,
    /// The other worker nodegroups; workers of a group not listed (a deleted one) go.
    pub extra_worker_groups: Vec<WorkerGroupSpec>,
    /// The `node_labels` of each nodegroup (by name), for the COE's own node labels.
    pub node_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// Workers to remove first when scaling in (names, addresses or ids).
    pub nodes_to_remove: Vec<String>,
    pub dns_nameserver: Option<String>,
    /// The template's `fixed_network` (for the Docker provider, a subnet CIDR).
    pub fixed_network: Option<String>,
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
    pub network_driver: Option<String>,
    pub tls_disabled: bool,
    pub labels: Labels,
    pub docker_volume_size: Option<i64>,
    /// None when TLS is disabled.
    pub certificates: Option<Arc<dyn ClusterCertificates>>,
    /// The CA was rotated: every node holding certificates gets new ones.
    pub reissue_certificates: bool,
}

/// `health_status` as a driver observed it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthReport {
    pub healthy: bool,
    /// Per-check results, e.g. `{"api": "ok", "node-0.Ready": "True"}`.
    pub reason: BTreeMap<String, String>,
}

/// What the infrastructure looks like after a call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// The infrastructure's handle (e.g. the network name, a Heat stack id).
    pub stack_id: Option<String>,
    pub api_address: Option<String>,
    pub master_addresses: Vec<String>,
    /// Every worker's address, of all worker nodegroups.
    pub node_addresses: Vec<String>,
    /// Node addresses by nodegroup name (`default-master`, `default-worker`, others).
    pub nodegroup_addresses: BTreeMap<String, Vec<String>>,
    pub coe_version: Option<String>,
    pub container_version: Option<String>,
    pub health: HealthReport,
}

/// Why a driver call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// Worth trying again later (the engine is busy, a node is still starting).
    #[error("{0}")]
    Retryable(String),
    /// Will not get better by retrying; the operation fails with this reason.
    #[error("{0}")]
    Permanent(String),
}

impl DriverError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, DriverError::Retryable(_))
    }
}

/// Progress messages a driver gives while it works (shown as `status_reason`).
pub trait ProgressSink: Send + Sync {
    fn report(&self, message: &str);
}

/// One driver: a container orchestration engine on one kind of infrastructure.
#[async_trait]
pub trait ClusterDriver: Send + Sync + std::fmt::Debug {
    /// The registry name of the driver.
    fn name(&self) -> &'static str;

    /// Driver-specific checks of a requested shape, run by the API before accepting it.
    fn check_shape(
        &self,
        master_count: i64,
        node_count: i64,
        master_lb_enabled: bool,
    ) -> Result<(), DomainError>;

    /// Makes the infrastructure match `spec` (creating, scaling, removing `nodes_to_remove`)
    /// and returns what is there once it is ready.
    async fn apply(
        &self,
        spec: &ClusterSpec,
        progress: &dyn ProgressSink,
    ) -> Result<Observed, DriverError>;

    /// Removes everything of the cluster; succeeds when nothing is left.
    async fn delete(&self, cluster_uuid: &str) -> Result<(), DriverError>;

    /// Reports what is there without changing anything.
    async fn observe(&self, spec: &ClusterSpec) -> Result<Observed, DriverError>;
}
