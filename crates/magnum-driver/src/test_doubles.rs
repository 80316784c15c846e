//! Test doubles of the two seams, for fast tests of the conductor and the API without any
//! infrastructure: [`FakeProvider`] answers lookups from tables, [`FakeDriver`] "builds"
//! clusters in memory. Both are fakes and say so; they exist only with the `test-doubles`
//! feature, which no shipped binary enables.
//!
//! Delays, waiting steps and failures are adjustable, and both record what they were asked,
//! so tests can check who asked (the caller's context), how many calls ran at once, and that
//! nothing built was left behind.

use crate::cluster_driver::{
    ClusterDriver, ClusterRef, ClusterSpec, DriverError, HealthReport, Observed, Progress,
    ProgressSink, Removal, Waiting,
};
use crate::context::CallerContext;
use crate::provider::{FlavorInfo, ImageInfo, InfrastructureProvider, LookupError, NetworkInfo};
use crate::registry::ProviderKind;
use async_trait::async_trait;
use magnum_core::cluster_template::ClusterTemplate;
use magnum_core::DomainError;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// FAKE provider for tests: lookups answered from tables, no infrastructure behind them.
#[derive(Debug)]
pub struct FakeProvider {
    kind: ProviderKind,
    /// Image name → os_distro.
    pub images: Mutex<BTreeMap<String, String>>,
    pub flavors: Mutex<Vec<String>>,
    pub external_networks: Mutex<Vec<String>>,
    /// Every lookup: (what, name, caller's project).
    pub calls: Mutex<Vec<(String, String, String)>>,
    /// When set, every lookup fails as if the infrastructure could not be asked.
    pub unavailable: Mutex<Option<String>>,
}

impl FakeProvider {
    /// A fake standing in for `kind`, knowing the image `magnum-node:bookworm` (debian), the
    /// flavors `m1.small` and `m1.medium`, and the external network `local`.
    pub fn new(kind: ProviderKind) -> FakeProvider {
        FakeProvider {
            kind,
            images: Mutex::new(BTreeMap::from([(
                "magnum-node:bookworm".to_string(),
                "debian".to_string(),
            )])),
            flavors: Mutex::new(vec!["m1.small".to_string(), "m1.medium".to_string()]),
            external_networks: Mutex::new(vec!["local".to_string()]),
            calls: Mutex::new(Vec::new()),
            unavailable: Mutex::new(None),
        }
    }

    fn record(&self, what: &str, name: &str, context: &CallerContext) -> Result<(), LookupError> {
        lock(&self.calls).push((
            what.to_string(),
            name.to_string(),
            context.project_id.clone(),
        ));
        match lock(&self.unavailable).clone() {
            Some(reason) => Err(LookupError::Unavailable(reason)),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl InfrastructureProvider for FakeProvider {
    fn kind(&self) -> ProviderKind {
        self.kind
    }

    fn verifies(&self) -> bool {
        true
    }

    async fn find_image(
        &self,
        context: &CallerContext,
        image: &str,
    ) -> Result<ImageInfo, LookupError> {
        self.record("image", image, context)?;
        let distro = lock(&self.images)
            .get(image)
            .cloned()
            .ok_or(LookupError::NotFound)?;
        Ok(ImageInfo {
            id: image.to_string(),
            name: image.to_string(),
            os_distro: Some(distro),
            magnum_driver: None,
        })
    }

    async fn find_flavor(
        &self,
        context: &CallerContext,
        flavor: &str,
    ) -> Result<FlavorInfo, LookupError> {
        self.record("flavor", flavor, context)?;
        if lock(&self.flavors).iter().any(|known| known == flavor) {
            Ok(FlavorInfo {
                id: flavor.to_string(),
                name: flavor.to_string(),
                root_disk_gb: None,
            })
        } else {
            Err(LookupError::NotFound)
        }
    }

    async fn find_keypair(
        &self,
        context: &CallerContext,
        keypair: &str,
    ) -> Result<(), LookupError> {
        self.record("keypair", keypair, context)
    }

    async fn find_external_network(
        &self,
        context: &CallerContext,
        network: &str,
    ) -> Result<NetworkInfo, LookupError> {
        self.record("external_network", network, context)?;
        if lock(&self.external_networks)
            .iter()
            .any(|known| known == network)
        {
            Ok(NetworkInfo {
                id: network.to_string(),
                name: network.to_string(),
            })
        } else {
            Err(LookupError::NotFound)
        }
    }

    async fn find_fixed_network(
        &self,
        context: &CallerContext,
        network: &str,
    ) -> Result<NetworkInfo, LookupError> {
        self.record("fixed_network", network, context)?;
        Ok(NetworkInfo {
            id: network.to_string(),
            name: network.to_string(),
        })
    }

    async fn find_fixed_subnet(
        &self,
        context: &CallerContext,
        subnet: &str,
    ) -> Result<NetworkInfo, LookupError> {
        self.record("fixed_subnet", subnet, context)?;
        Err(LookupError::NotFound)
    }
}

/// What the fake driver has "built" for one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FakeCluster {
    /// Nodes per nodegroup name, each with the image it "runs".
    pub nodes: BTreeMap<String, Vec<String>>,
    /// How many times the cluster was brought from nothing into existence.
    pub creations: u32,
}

/// How the fake driver behaves; change it at any time through [`FakeDriver::behaviour`].
#[derive(Debug, Clone)]
pub struct FakeBehaviour {
    /// Each call takes this long (a slow cloud API).
    pub call_delay: Duration,
    /// `apply` answers `Waiting` this many times per operation before it is done.
    pub waiting_steps: u32,
    /// `delete` answers `Waiting` this many times before the cluster is gone.
    pub delete_waiting_steps: u32,
    /// What `Waiting` asks for.
    pub recheck_after: Duration,
    /// Errors the next calls of `apply` fail with, in order.
    pub apply_failures: VecDeque<DriverError>,
    /// Errors the next calls of `delete` fail with, in order.
    pub delete_failures: VecDeque<DriverError>,
    /// Every `apply` fails with this, when set (a node that never becomes ready).
    pub apply_always_fails: Option<DriverError>,
    /// Images whose nodes never work: applying a spec with one fails permanently.
    pub broken_images: Vec<String>,
    /// Most workers the driver accepts in `check_shape`.
    pub max_workers: i64,
    /// Clusters (by uuid) whose `observe` never answers (unresponsive nodes).
    pub unresponsive: Vec<String>,
}

impl Default for FakeBehaviour {
    fn default() -> Self {
        FakeBehaviour {
            call_delay: Duration::ZERO,
            waiting_steps: 0,
            delete_waiting_steps: 0,
            recheck_after: Duration::from_millis(20),
            apply_failures: VecDeque::new(),
            delete_failures: VecDeque::new(),
            apply_always_fails: None,
            broken_images: Vec::new(),
            max_workers: 100,
            unresponsive: Vec::new(),
        }
    }
}

#[derive(Debug, Default)]
struct FakeState {
    clusters: BTreeMap<String, FakeCluster>,
    /// Waiting answers given so far, by cluster uuid (reset when the spec changes).
    steps: BTreeMap<String, (u32, String)>,
    delete_steps: BTreeMap<String, u32>,
    running: usize,
    most_running: usize,
    apply_calls: usize,
    delete_calls: usize,
}

/// FAKE driver for tests: "builds" clusters in memory, with adjustable delays, waiting
/// steps and failures. It stands in for a registry driver by taking its name.
#[derive(Debug)]
pub struct FakeDriver {
    name: &'static str,
    pub behaviour: Mutex<FakeBehaviour>,
    state: Mutex<FakeState>,
}

/// Counts a call as running while it lives.
struct Running<'a>(&'a FakeDriver);

impl<'a> Running<'a> {
    fn start(driver: &'a FakeDriver) -> Running<'a> {
        let mut state = lock(&driver.state);
        state.running += 1;
        state.most_running = state.most_running.max(state.running);
        Running(driver)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).running -= 1;
    }
}

impl FakeDriver {
    /// A fake answering to the registry name `name` (e.g. `swarm_docker_v1`).
    pub fn new(name: &'static str) -> Arc<FakeDriver> {
        Arc::new(FakeDriver {
            name,
            behaviour: Mutex::new(FakeBehaviour::default()),
            state: Mutex::new(FakeState::default()),
        })
    }

    /// Changes the behaviour.
    pub fn behave(&self, change: impl FnOnce(&mut FakeBehaviour)) {
        change(&mut lock(&self.behaviour));
    }

    /// What exists for a cluster, if anything.
    pub fn cluster(&self, uuid: &str) -> Option<FakeCluster> {
        lock(&self.state).clusters.get(uuid).cloned()
    }

    /// Loses a cluster's nodes behind the conductor's back (a host failure).
    pub fn lose_nodes(&self, uuid: &str) {
        if let Some(cluster) = lock(&self.state).clusters.get_mut(uuid) {
            cluster.nodes.clear();
        }
    }

    /// Every cluster that exists.
    pub fn clusters(&self) -> BTreeMap<String, FakeCluster> {
        lock(&self.state).clusters.clone()
    }

    /// The most calls that ever ran at the same time.
    pub fn most_concurrent_calls(&self) -> usize {
        lock(&self.state).most_running
    }

    /// (apply calls, delete calls) so far.
    pub fn calls(&self) -> (usize, usize) {
        let state = lock(&self.state);
        (state.apply_calls, state.delete_calls)
    }

    fn desired(spec: &ClusterSpec) -> BTreeMap<String, Vec<String>> {
        spec.nodegroups
            .iter()
            .map(|group| {
                let count = usize::try_from(group.node_count).unwrap_or(0);
                (group.name.clone(), vec![group.image.clone(); count])
            })
            .collect()
    }

    fn observed(spec: &ClusterSpec, nodes: &BTreeMap<String, Vec<String>>) -> Observed {
        let mut addresses = BTreeMap::new();
        let mut master_addresses = Vec::new();
        let mut node_addresses = Vec::new();
        for group in &spec.nodegroups {
            let count = nodes.get(&group.name).map(Vec::len).unwrap_or(0);
            let list: Vec<String> = (0..count)
                .map(|index| format!("fake://{}/{}/{index}", spec.uuid, group.name))
                .collect();
            if group.role.is_master() {
                master_addresses.extend(list.clone());
            } else {
                node_addresses.extend(list.clone());
            }
            addresses.insert(group.name.clone(), list);
        }
        Observed {
            stack_id: Some(format!("fake-{}", spec.uuid)),
            api_address: master_addresses.first().cloned(),
            master_addresses,
            node_addresses,
            nodegroup_addresses: addresses,
            nodegroup_stack_ids: BTreeMap::new(),
            coe_version: Some("fake-1.0".to_string()),
            container_version: Some("fake-1.0".to_string()),
            health: HealthReport {
                healthy: true,
                reason: BTreeMap::from([("api".to_string(), "ok".to_string())]),
            },
        }
    }
}

#[async_trait]
impl ClusterDriver for FakeDriver {
    fn name(&self) -> &'static str {
        self.name
    }

    fn check_shape(
        &self,
        master_count: i64,
        worker_count: i64,
        _master_lb_enabled: bool,
    ) -> Result<(), DomainError> {
        let max = lock(&self.behaviour).max_workers;
        if worker_count > max {
            return Err(DomainError::invalid(format!(
                "The fake driver builds at most {max} worker nodes."
            )));
        }
        if master_count < 1 {
            return Err(DomainError::invalid("A cluster needs a master."));
        }
        Ok(())
    }

    fn check_upgrade(
        &self,
        from: &ClusterTemplate,
        to: &ClusterTemplate,
    ) -> Result<(), DomainError> {
        if from.coe != to.coe {
            return Err(DomainError::invalid(
                "A cluster cannot be upgraded to a template of another COE.",
            ));
        }
        Ok(())
    }

    async fn apply(
        &self,
        spec: &ClusterSpec,
        progress: &dyn ProgressSink,
    ) -> Result<Progress, DriverError> {
        let _running = Running::start(self);
        let behaviour = lock(&self.behaviour).clone();
        lock(&self.state).apply_calls += 1;
        tokio::time::sleep(behaviour.call_delay).await;
        if let Some(error) = lock(&self.behaviour).apply_failures.pop_front() {
            return Err(error);
        }
        if let Some(error) = behaviour.apply_always_fails {
            return Err(error);
        }
        let desired = Self::desired(spec);
        let fingerprint = format!("{desired:?}");
        let mut state = lock(&self.state);
        let steps = state
            .steps
            .entry(spec.uuid.clone())
            .or_insert((0, fingerprint.clone()));
        if steps.1 != fingerprint {
            *steps = (0, fingerprint);
        }
        if steps.0 < behaviour.waiting_steps {
            steps.0 += 1;
            let status = format!("step {} of {}", steps.0, behaviour.waiting_steps);
            let cluster = state.clusters.entry(spec.uuid.clone()).or_default();
            if cluster.nodes.is_empty() {
                cluster.creations += 1;
                cluster.nodes.insert("starting".to_string(), Vec::new());
            }
            drop(state);
            progress.report(&status);
            return Ok(Progress::Waiting(Waiting::new(
                behaviour.recheck_after,
                status,
            )));
        }
        if let Some(image) = spec
            .nodegroups
            .iter()
            .map(|group| &group.image)
            .find(|image| behaviour.broken_images.contains(image))
        {
            return Err(DriverError::Permanent(format!(
                "a node of image {image} did not become ready"
            )));
        }
        let cluster = state.clusters.entry(spec.uuid.clone()).or_default();
        if cluster.nodes.is_empty() {
            cluster.creations += 1;
        }
        cluster.nodes = desired.clone();
        state.steps.remove(&spec.uuid);
        Ok(Progress::Done(Self::observed(spec, &desired)))
    }

    async fn delete(&self, cluster: &ClusterRef) -> Result<Removal, DriverError> {
        let _running = Running::start(self);
        let behaviour = lock(&self.behaviour).clone();
        lock(&self.state).delete_calls += 1;
        tokio::time::sleep(behaviour.call_delay).await;
        if let Some(error) = lock(&self.behaviour).delete_failures.pop_front() {
            return Err(error);
        }
        let mut state = lock(&self.state);
        let steps = state.delete_steps.entry(cluster.uuid.clone()).or_insert(0);
        if *steps < behaviour.delete_waiting_steps {
            *steps += 1;
            return Ok(Removal::Waiting(Waiting::new(
                behaviour.recheck_after,
                "removing",
            )));
        }
        state.delete_steps.remove(&cluster.uuid);
        state.clusters.remove(&cluster.uuid);
        state.steps.remove(&cluster.uuid);
        Ok(Removal::Gone)
    }

    async fn observe(&self, spec: &ClusterSpec) -> Result<Observed, DriverError> {
        if lock(&self.behaviour).unresponsive.contains(&spec.uuid) {
            std::future::pending::<()>().await;
        }
        let nodes = lock(&self.state)
            .clusters
            .get(&spec.uuid)
            .map(|cluster| cluster.nodes.clone())
            .unwrap_or_default();
        let mut observed = Self::observed(spec, &nodes);
        let desired = Self::desired(spec);
        if nodes != desired {
            observed.health = HealthReport {
                healthy: false,
                reason: BTreeMap::from([("nodes".to_string(), "missing".to_string())]),
            };
        }
        Ok(observed)
    }
}

/// A cluster spec for drivers' tests: Kubernetes, one master (`m1.large`) and `workers`
/// workers (`m1.small`) of image `fedora-coreos-40`, keypair `mykey`, external network
/// `public`, no fixed network, floating IPs, flannel, TLS, the given labels.
pub fn sample_spec(workers: i64, labels: &[(&str, &str)]) -> ClusterSpec {
    use crate::cluster_driver::{NetworkSpec, NodeGroupSpec};
    use magnum_core::nodegroup::NodeGroupRole;
    let group = |name: &str, role: NodeGroupRole, count: i64, flavor: &str| NodeGroupSpec {
        name: name.to_string(),
        uuid: None,
        role,
        is_default: true,
        node_count: count,
        min_node_count: 0,
        max_node_count: None,
        flavor: Some(flavor.to_string()),
        image: "fedora-coreos-40".to_string(),
        docker_volume_size: None,
        labels: BTreeMap::new(),
        node_labels: BTreeMap::new(),
    };
    ClusterSpec {
        uuid: "5d12f6fd-a196-4bf0-ae4c-1f639a523a52".to_string(),
        name: "kube".to_string(),
        coe: magnum_core::coe::Coe::Kubernetes,
        server_type: "vm".to_string(),
        template_uuid: "827d8cd1-cfe6-475e-b259-f1ca49a6b688".to_string(),
        image: "fedora-coreos-40".to_string(),
        keypair: Some("mykey".to_string()),
        master_lb_enabled: false,
        nodegroups: vec![
            group("default-master", NodeGroupRole::Master, 1, "m1.large"),
            group("default-worker", NodeGroupRole::Worker, workers, "m1.small"),
        ],
        network: NetworkSpec {
            external_network: Some("public".to_string()),
            fixed_network: None,
            fixed_subnet: None,
            dns_nameserver: None,
            floating_ip_enabled: true,
            network_driver: Some("flannel".to_string()),
            http_proxy: None,
            https_proxy: None,
            no_proxy: Some("example.org".to_string()),
        },
        volume_driver: None,
        docker_storage_driver: None,
        docker_volume_size: None,
        labels: labels
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
        discovery_url: None,
        create_timeout: 60,
        nodes_to_remove: Vec::new(),
        tls_disabled: false,
        certificates: None,
        reissue_certificates: false,
        stack_id: None,
        credentials: crate::context::ClusterCredentials::default(),
    }
}
