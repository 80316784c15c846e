//! What the conductor asks of a driver: make the infrastructure match a [`ClusterSpec`],
//! remove it, or report what is there.
//!
//! Every call must be idempotent — the conductor may be killed at any instant and will call
//! again — and must find its resources by the cluster's uuid (labels, stack names), never
//! by in-memory state. No call waits for the infrastructure: a driver does what it can now
//! and answers [`Progress::Waiting`] with when to look again, and the conductor frees its
//! worker meanwhile (a cloud stack may take twenty minutes; it must not hold a worker).

use crate::context::ClusterCredentials;
use async_trait::async_trait;
use magnum_core::cluster_template::ClusterTemplate;
use magnum_core::coe::Coe;
use magnum_core::labels::Labels;
use magnum_core::nodegroup::NodeGroupRole;
use magnum_core::DomainError;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

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

/// One nodegroup as a driver builds it, with the cluster's defaults already applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeGroupSpec {
    /// Unique in the cluster; nodes carry it.
    pub name: String,
    /// The nodegroup's row, when it has one (the default groups of clusters made before
    /// nodegroups existed may not).
    pub uuid: Option<String>,
    pub role: NodeGroupRole,
    /// `default-master` or `default-worker`.
    pub is_default: bool,
    pub node_count: i64,
    pub min_node_count: i64,
    pub max_node_count: Option<i64>,
    /// The group's flavor, else the cluster's (the master flavor for masters).
    pub flavor: Option<String>,
    /// The group's image, else the template's.
    pub image: String,
    pub docker_volume_size: Option<i64>,
    /// The group's labels (the cluster's unless it was given its own).
    pub labels: Labels,
    /// Labels the COE puts on the group's nodes.
    pub node_labels: BTreeMap<String, String>,
}

/// The networks a cluster uses, as the template and cluster name them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkSpec {
    /// Name or id of the network that reaches the outside.
    pub external_network: Option<String>,
    /// Name or id of an existing network for the nodes (for the docker provider, a CIDR);
    /// a private one is made when None.
    pub fixed_network: Option<String>,
    /// Name or id of the subnet of `fixed_network`.
    pub fixed_subnet: Option<String>,
    pub dns_nameserver: Option<String>,
    pub floating_ip_enabled: bool,
    /// The COE's container network driver (flannel, calico, docker).
    pub network_driver: Option<String>,
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
}

/// Everything a driver needs to build or change one cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub uuid: String,
    /// The cluster's name, or its uuid when it has none.
    pub name: String,
    pub coe: Coe,
    /// `vm` or `bm` (a cloud's servers) as the template says.
    pub server_type: String,
    /// The template the cluster is built from now.
    pub template_uuid: String,
    /// The template's image (nodegroups say which one each uses).
    pub image: String,
    pub keypair: Option<String>,
    pub master_lb_enabled: bool,
    /// Every nodegroup not being deleted: `default-master` first, then `default-worker`,
    /// then the others oldest first. Nodes of a group not listed go.
    pub nodegroups: Vec<NodeGroupSpec>,
    pub network: NetworkSpec,
    pub volume_driver: Option<String>,
    pub docker_storage_driver: Option<String>,
    /// GB of block storage per node for container images, when asked for.
    pub docker_volume_size: Option<i64>,
    /// The cluster's labels (the template's merged with the cluster's own).
    pub labels: Labels,
    pub discovery_url: Option<String>,
    /// Minutes the create may take (0: no limit), for infrastructures that enforce it too.
    pub create_timeout: i64,
    /// Workers to remove first when scaling in (names, addresses or ids).
    pub nodes_to_remove: Vec<String>,
    pub tls_disabled: bool,
    /// None when TLS is disabled.
    pub certificates: Option<Arc<dyn ClusterCertificates>>,
    /// The CA was rotated: every node holding certificates gets new ones.
    pub reissue_certificates: bool,
    /// The infrastructure's handle of the cluster from an earlier call, if any.
    pub stack_id: Option<String>,
    pub credentials: ClusterCredentials,
}

impl ClusterSpec {
    /// The masters' group.
    pub fn masters(&self) -> Option<&NodeGroupSpec> {
        self.nodegroups.iter().find(|group| group.role.is_master())
    }

    /// The worker groups, `default-worker` first.
    pub fn worker_groups(&self) -> impl Iterator<Item = &NodeGroupSpec> {
        self.nodegroups
            .iter()
            .filter(|group| !group.role.is_master())
    }

    pub fn master_count(&self) -> i64 {
        self.masters().map(|group| group.node_count).unwrap_or(0)
    }

    /// Workers over every worker group; None if the sum does not fit.
    pub fn worker_count(&self) -> Option<i64> {
        magnum_core::limits::checked_sum(self.worker_groups().map(|group| group.node_count))
    }
}

/// A cluster to remove: what a driver needs when the cluster's template may be gone.
#[derive(Debug, Clone)]
pub struct ClusterRef {
    pub uuid: String,
    pub name: String,
    pub stack_id: Option<String>,
    pub credentials: ClusterCredentials,
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
    /// The infrastructure's handle of the nodegroups that have their own (a Heat stack per
    /// non-default nodegroup), by nodegroup name; the others share `stack_id`.
    pub nodegroup_stack_ids: BTreeMap<String, String>,
    pub coe_version: Option<String>,
    pub container_version: Option<String>,
    pub health: HealthReport,
}

/// Work under way that the driver cannot finish now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// When to call again.
    pub recheck_after: Duration,
    /// What is awaited, for `status_reason` ("2 of 3 nodes ready").
    pub status: String,
    /// The infrastructure's handle, once there is one (a new Heat stack's id).
    pub stack_id: Option<String>,
}

impl Waiting {
    pub fn new(recheck_after: Duration, status: impl Into<String>) -> Waiting {
        Waiting {
            recheck_after,
            status: status.into(),
            stack_id: None,
        }
    }
}

/// How far [`ClusterDriver::apply`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The infrastructure matches the spec.
    Done(Observed),
    /// Not yet: call again after a while.
    Waiting(Waiting),
}

/// How far [`ClusterDriver::delete`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Nothing of the cluster is left.
    Gone,
    /// Not yet: call again after a while.
    Waiting(Waiting),
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

    /// Whether the cluster's etcd members find each other through a discovery URL (spec
    /// §9.3's `discovery_url`), which magnumd makes when the user gives none.
    fn uses_etcd_discovery(&self) -> bool {
        false
    }

    /// Driver-specific checks of a requested shape (all workers of every group), run by the
    /// API before accepting it.
    fn check_shape(
        &self,
        master_count: i64,
        worker_count: i64,
        master_lb_enabled: bool,
    ) -> Result<(), DomainError>;

    /// Whether clusters of `from` may be upgraded to `to`, checked by the API before the
    /// upgrade is recorded. Drivers that cannot upgrade keep this refusal.
    fn check_upgrade(
        &self,
        from: &ClusterTemplate,
        to: &ClusterTemplate,
    ) -> Result<(), DomainError> {
        let _ = (from, to);
        Err(DomainError::invalid(format!(
            "Upgrading a cluster that uses the {} driver is not supported.",
            self.name()
        )))
    }

    /// Takes the infrastructure one step closer to `spec`: creates what is missing, scales,
    /// removes `nodes_to_remove`, replaces nodes whose image or flavor differs from their
    /// group's (one at a time, as an upgrade does), and answers [`Progress::Done`] once all
    /// is ready, or [`Progress::Waiting`] while something is under way.
    async fn apply(
        &self,
        spec: &ClusterSpec,
        progress: &dyn ProgressSink,
    ) -> Result<Progress, DriverError>;

    /// Takes one step toward removing everything of the cluster.
    async fn delete(&self, cluster: &ClusterRef) -> Result<Removal, DriverError>;

    /// Reports what is there without changing anything.
    async fn observe(&self, spec: &ClusterSpec) -> Result<Observed, DriverError>;
}
