//! A cluster as a Heat stack: each call authenticates as the cluster's trustee within its
//! trust (so the stack lives in the owner's project), finds the stack by its name, and
//! takes one step — create it, update its parameters, delete it — or reports that Heat is
//! still at work. Nothing here waits for Heat: a stack in progress is
//! [`Progress::Waiting`], and the conductor asks again later.
//!
//! Each non-default worker nodegroup is a stack of its own (spec §3.5), built on the
//! cluster stack's network, security group and API address once that stack is complete, and
//! tagged with the cluster so that the stacks of deleted nodegroups are found and removed.
//!
//! A delete first removes the nodegroups' stacks, then the load balancers Kubernetes made
//! for the cluster (Octavia), then the cluster's stack, then the volumes Kubernetes made
//! (Cinder, once detached): what the cluster made outside its stack goes with it too.

use crate::definition::{
    NodeAccess, RenderedStack, StackDefinition, NODEGROUP_UPDATED_PARAMETERS, REMOVAL_PARAMETER,
    USER_DATA_PARAMETERS, VERSION_PARAMETER,
};
use crate::{Cloud, CloudService, Trustees};
use async_trait::async_trait;
use magnum_core::cluster_template::ClusterTemplate;
use magnum_core::DomainError;
use magnum_driver::{
    ClusterCredentials, ClusterDriver, ClusterRef, ClusterSpec, DriverError, NodeGroupSpec,
    Observed, Progress, ProgressSink, Removal, Waiting,
};
use magnum_openstack::heat::{StackState, StackUpdate, TaggedStack};
use magnum_openstack::{BlockStorage, Heat, Octavia, OpenStackError, Stack, StackCreate, Token};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How often a stack Heat is working on is looked at again, by how long it has been in the
/// same state: often at first (most steps of a stack end within seconds, and a finished one
/// should not wait long to be noticed), then less, so that a stack that takes twenty
/// minutes costs Heat few looks. One look is a GET (the trustee's token is kept).
const RECHECKS: [(Duration, Duration); 3] = [
    (Duration::from_secs(30), Duration::from_millis(300)),
    (Duration::from_secs(180), Duration::from_secs(1)),
    (Duration::MAX, Duration::from_secs(2)),
];

/// The most clusters whose waits are timed at once.
const MAX_TIMED_WAITS: usize = 4096;

/// The most trustee tokens kept (one per cluster with work under way).
const MAX_KEPT_TOKENS: usize = 1024;

/// How long before its expiry a kept token is replaced.
const TOKEN_MARGIN_SECONDS: i64 = 120;

/// Where nodes reach magnum and Keystone (the trustee's part is added per cluster).
#[derive(Debug, Clone)]
pub struct NodeEndpoints {
    pub magnum_url: String,
    pub auth_url: String,
    pub region_name: String,
}

/// A driver on Heat: one [`StackDefinition`] (templates and parameter mapping) and the
/// common way of running its stacks.
#[derive(Debug)]
pub struct HeatClusterDriver {
    definition: Arc<dyn StackDefinition>,
    cloud: Arc<Cloud>,
    trustees: Arc<Trustees>,
    endpoints: NodeEndpoints,
    /// Trustee tokens by (cluster, trust), so that a look at a stack is one Heat call.
    tokens: std::sync::Mutex<std::collections::HashMap<(String, String), Arc<Token>>>,
    /// What each cluster last waited for and since when ([`RECHECKS`]); a hint only, so
    /// a restarted process simply starts looking often again.
    waits: std::sync::Mutex<std::collections::HashMap<String, (String, std::time::Instant)>>,
}

impl HeatClusterDriver {
    pub fn new(
        definition: Arc<dyn StackDefinition>,
        cloud: Arc<Cloud>,
        trustees: Arc<Trustees>,
        endpoints: NodeEndpoints,
    ) -> Self {
        HeatClusterDriver {
            definition,
            cloud,
            trustees,
            endpoints,
            tokens: Default::default(),
            waits: Default::default(),
        }
    }

    /// Waiting for `status` of cluster `uuid`: look again soon while the wait is young.
    fn waiting(&self, uuid: &str, status: String, stack_id: Option<String>) -> Waiting {
        let now = std::time::Instant::now();
        let since = match self.waits.lock() {
            Ok(mut waits) => match waits.get(uuid) {
                Some((seen, since)) if *seen == status => *since,
                _ => {
                    if waits.len() >= MAX_TIMED_WAITS {
                        waits.clear();
                    }
                    waits.insert(uuid.to_string(), (status.clone(), now));
                    now
                }
            },
            Err(_) => now,
        };
        let age = now.saturating_duration_since(since);
        let recheck_after = RECHECKS
            .iter()
            .find(|(younger_than, _)| age < *younger_than)
            .map(|(_, every)| *every)
            .unwrap_or(Duration::from_secs(2));
        Waiting {
            recheck_after,
            status,
            stack_id,
        }
    }

    /// The cluster waits no more (its operation ended).
    fn stop_timing(&self, uuid: &str) {
        if let Ok(mut waits) = self.waits.lock() {
            waits.remove(uuid);
        }
    }

    /// The cluster's trustee token: a kept one still valid for a while, or a new one.
    async fn trustee_token(
        &self,
        uuid: &str,
        trustee_user_id: &str,
        trust_id: &str,
    ) -> Result<Arc<Token>, OpenStackError> {
        let key = (uuid.to_string(), trust_id.to_string());
        let fresh_until = chrono::Utc::now() + chrono::Duration::seconds(TOKEN_MARGIN_SECONDS);
        if let Some(token) = self
            .tokens
            .lock()
            .ok()
            .and_then(|tokens| tokens.get(&key).cloned())
        {
            if token.expires_at > fresh_until {
                return Ok(token);
            }
        }
        let token = Arc::new(
            self.trustees
                .keystone()
                .authenticate(&self.trustees.acting_as(uuid, trustee_user_id, trust_id))
                .await?,
        );
        if let Ok(mut tokens) = self.tokens.lock() {
            if tokens.len() >= MAX_KEPT_TOKENS {
                tokens.clear();
            }
            tokens.insert(key, token.clone());
        }
        Ok(token)
    }

    /// Forgets a cluster's kept token (its stack is gone, or Heat refused the token).
    fn forget_token(&self, uuid: &str) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.retain(|(cluster, _), _| cluster != uuid);
        }
    }

    /// Heat as the cluster's trustee, with the trustee's token.
    async fn heat_for(
        &self,
        uuid: &str,
        credentials: &ClusterCredentials,
    ) -> Result<(Heat, String), DriverError> {
        let (Some(trust_id), Some(trustee_user_id)) =
            (&credentials.trust_id, &credentials.trustee_user_id)
        else {
            return Err(DriverError::Permanent(
                "The cluster has no trust to act for its owner with.".to_string(),
            ));
        };
        let token = self
            .trustee_token(uuid, trustee_user_id, trust_id)
            .await
            .map_err(|error| match error.status() {
                Some(401 | 403 | 404) => DriverError::Permanent(format!(
                    "The cluster's trust no longer lets magnum act for its owner: {error}"
                )),
                _ => retryable("Keystone", error),
            })?;
        let (endpoint, http) = self
            .cloud
            .endpoint_in(
                &token.catalog,
                CloudService::Orchestration,
                &credentials.project_id,
            )
            .map_err(|error| DriverError::Permanent(format!("Heat cannot be found: {error}")))?;
        Ok((Heat::new(http, &endpoint), token.expose().to_string()))
    }

    /// A client of `service` as the cluster's trustee and the token to call it with, or
    /// None when the catalog does not list the service (nothing of it to clean up then).
    async fn service_for(
        &self,
        uuid: &str,
        credentials: &ClusterCredentials,
        service: CloudService,
    ) -> Result<Option<(String, reqwest::Client, String)>, DriverError> {
        let (Some(trust_id), Some(trustee_user_id)) =
            (&credentials.trust_id, &credentials.trustee_user_id)
        else {
            return Ok(None);
        };
        let token = self
            .trustee_token(uuid, trustee_user_id, trust_id)
            .await
            .map_err(|error| retryable("Keystone", error))?;
        match self
            .cloud
            .endpoint_in(&token.catalog, service, &credentials.project_id)
        {
            Ok((endpoint, http)) => Ok(Some((endpoint, http, token.expose().to_string()))),
            Err(OpenStackError::NoEndpoint { .. }) => Ok(None),
            Err(error) => Err(retryable(service.name(), error)),
        }
    }

    /// Starts removing the load balancers Kubernetes made for the cluster (they hold ports
    /// on the cluster's network, which the stack cannot delete while they exist); Waiting
    /// while any is left.
    async fn remove_load_balancers(
        &self,
        cluster: &ClusterRef,
    ) -> Result<Option<Waiting>, DriverError> {
        let Some((endpoint, http, token)) = self
            .service_for(
                &cluster.uuid,
                &cluster.credentials,
                CloudService::LoadBalancer,
            )
            .await?
        else {
            return Ok(None);
        };
        let octavia = Octavia::new(http, &endpoint);
        let found = octavia
            .cluster_load_balancers(&token, &cluster.uuid)
            .await
            .map_err(|error| retryable("Octavia", error))?;
        if found.is_empty() {
            return Ok(None);
        }
        for balancer in found.iter().filter(|lb| lb.status != "PENDING_DELETE") {
            octavia
                .delete_cascade(&token, &balancer.id)
                .await
                .map_err(|error| retryable("Octavia", error))?;
        }
        Ok(Some(self.waiting(
            &cluster.uuid,
            format!(
                "removing {} load balancer(s) Kubernetes made for the cluster",
                found.len()
            ),
            None,
        )))
    }

    /// Starts removing the volumes Kubernetes made for the cluster, once the stack (and so
    /// every server they were attached to) is gone; Waiting while any is left.
    async fn remove_volumes(&self, cluster: &ClusterRef) -> Result<Option<Waiting>, DriverError> {
        let Some((endpoint, http, token)) = self
            .service_for(
                &cluster.uuid,
                &cluster.credentials,
                CloudService::BlockStorage,
            )
            .await?
        else {
            return Ok(None);
        };
        let cinder = BlockStorage::new(http, &endpoint);
        let found = cinder
            .cluster_volumes(&token, &cluster.uuid)
            .await
            .map_err(|error| retryable("Cinder", error))?;
        if found.is_empty() {
            return Ok(None);
        }
        for volume in found
            .iter()
            .filter(|volume| matches!(volume.status.as_str(), "available" | "error"))
        {
            cinder
                .delete_volume(&token, &volume.id)
                .await
                .map_err(|error| retryable("Cinder", error))?;
        }
        Ok(Some(self.waiting(
            &cluster.uuid,
            format!(
                "removing {} volume(s) Kubernetes made for the cluster",
                found.len()
            ),
            None,
        )))
    }

    fn access(&self, spec: &ClusterSpec) -> Result<NodeAccess, DriverError> {
        let credentials = &spec.credentials;
        let (Some(trust_id), Some(trustee_user_id)) =
            (&credentials.trust_id, &credentials.trustee_user_id)
        else {
            return Err(DriverError::Permanent(
                "The cluster has no trust to act for its owner with.".to_string(),
            ));
        };
        Ok(NodeAccess {
            magnum_url: self.endpoints.magnum_url.clone(),
            auth_url: self.endpoints.auth_url.clone(),
            region_name: self.endpoints.region_name.clone(),
            trustee_user_id: trustee_user_id.clone(),
            trustee_username: format!("{}_{}", spec.uuid, credentials.project_id),
            trustee_password: self.trustees.password(&spec.uuid),
            trust_id: trust_id.clone(),
            cluster_user_trust: self.trustees.cluster_user_trust(),
        })
    }
}

/// The stack's name: the cluster's uuid makes it unique, found again after a crash.
pub fn stack_name(uuid: &str) -> String {
    format!("magnum-{uuid}")
}

/// The stack of a non-default nodegroup: the cluster's and the nodegroup's uuids make it
/// unique (nodegroup names are the user's and may hold anything).
pub fn nodegroup_stack_name(cluster_uuid: &str, nodegroup_uuid: &str) -> String {
    format!("magnum-{cluster_uuid}-ng-{nodegroup_uuid}")
}

/// The tag of every nodegroup stack of a cluster, by which they are listed.
pub fn nodegroup_tag(cluster_uuid: &str) -> String {
    format!("magnum-nodegroup-of-{cluster_uuid}")
}

/// What a finished nodegroup stack says of its nodes.
fn nodegroup_addresses(stack: &Stack, floating_ip_enabled: bool) -> Vec<String> {
    addresses(
        &stack.outputs,
        if floating_ip_enabled {
            "kube_minions"
        } else {
            "kube_minions_private"
        },
    )
}

/// The parameters of `rendered` that `stack` does not have yet (among `compared`), with
/// what must go with them: the nodes to remove when the count changes, the nodes' user
/// data when the version does (so that Heat replaces them).
fn parameters_to_change(
    stack: &Stack,
    rendered: &RenderedStack,
    compared: &[&str],
) -> serde_json::Map<String, Value> {
    let mut changed: serde_json::Map<String, Value> = compared
        .iter()
        .filter_map(|key| {
            let wanted = rendered.parameters.get(*key)?;
            (stack.parameters.get(*key) != Some(wanted)).then(|| (key.to_string(), wanted.clone()))
        })
        .collect();
    if changed.is_empty() {
        return changed;
    }
    // The removal list goes only with a new count: a ResourceGroup replaces the members a
    // list names even when its count stays, and the list is the cluster's, for one group.
    // An empty list is not sent over an empty one: Heat then has one property less to
    // compare on every member.
    if changed.contains_key("number_of_minions") {
        if let Some(removal) = rendered.parameters.get(REMOVAL_PARAMETER) {
            let is_empty = |value: Option<&Value>| {
                value
                    .and_then(Value::as_str)
                    .is_none_or(|text| text.is_empty() || text == "[]")
            };
            if !(is_empty(Some(removal)) && is_empty(stack.parameters.get(REMOVAL_PARAMETER))) {
                changed.insert(REMOVAL_PARAMETER.to_string(), removal.clone());
            }
        }
    }
    if changed.contains_key(VERSION_PARAMETER) {
        for key in USER_DATA_PARAMETERS {
            if let Some(user_data) = rendered.parameters.get(key) {
                changed.insert(key.to_string(), user_data.clone());
            }
        }
    }
    changed
}

/// One step toward removing a nodegroup's stack: what is under way, or None once it is
/// gone. A failed delete is asked again and reported as worth retrying, so that the
/// conductor's retry budget bounds it.
async fn remove_nodegroup_stack(
    heat: &Heat,
    token: &str,
    stack: &TaggedStack,
) -> Result<Option<String>, DriverError> {
    let name = &stack.reference.name;
    match (stack.status.action.as_str(), stack.status.state) {
        ("DELETE", StackState::Complete) => Ok(None),
        ("DELETE", StackState::InProgress) => Ok(Some(format!("Heat is deleting stack {name}"))),
        ("DELETE", StackState::Failed) => {
            heat.delete(token, &stack.reference)
                .await
                .map_err(heat_error)?;
            Err(DriverError::Retryable(format!(
                "Heat could not delete the nodegroup stack {name}"
            )))
        }
        _ => {
            heat.delete(token, &stack.reference)
                .await
                .map_err(heat_error)?;
            Ok(Some(format!("Heat is deleting stack {name}")))
        }
    }
}

fn retryable(service: &str, error: OpenStackError) -> DriverError {
    DriverError::Retryable(format!("{service}: {error}"))
}

/// A Heat call's failure: Heat's own trouble is retried, a refusal ends the operation.
fn heat_error(error: OpenStackError) -> DriverError {
    if error.status() == Some(401) {
        DriverError::Retryable(format!("Heat refused the trustee's token: {error}"))
    } else if error.is_unavailable() {
        retryable("Heat", error)
    } else {
        DriverError::Permanent(format!("Heat refused the cluster's stack: {error}"))
    }
}

fn addresses(outputs: &BTreeMap<String, Value>, key: &str) -> Vec<String> {
    outputs
        .get(key)
        .and_then(Value::as_array)
        .map(|values| {
            values
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// What a finished stack says of the cluster (spec §9.4's outputs).
fn observed(stack: &Stack, floating_ip_enabled: bool, tls_disabled: bool) -> Observed {
    let (masters_key, minions_key) = if floating_ip_enabled {
        ("kube_masters", "kube_minions")
    } else {
        ("kube_masters_private", "kube_minions_private")
    };
    let master_addresses = addresses(&stack.outputs, masters_key);
    let node_addresses = addresses(&stack.outputs, minions_key);
    let api_address = stack
        .outputs
        .get("api_address")
        .and_then(Value::as_str)
        .filter(|address| !address.is_empty())
        .map(|address| {
            if tls_disabled {
                format!("http://{address}:8080")
            } else {
                format!("https://{address}:6443")
            }
        });
    let coe_version = stack
        .parameters
        .get(VERSION_PARAMETER)
        .and_then(Value::as_str)
        .map(|tag| tag.split('-').next().unwrap_or(tag).to_string());
    Observed {
        stack_id: Some(stack.reference.id.clone()),
        api_address,
        nodegroup_addresses: BTreeMap::from([
            ("default-master".to_string(), master_addresses.clone()),
            ("default-worker".to_string(), node_addresses.clone()),
        ]),
        nodegroup_stack_ids: BTreeMap::new(),
        master_addresses,
        node_addresses,
        coe_version,
        container_version: None,
        health: Default::default(),
    }
}

#[async_trait]
impl ClusterDriver for HeatClusterDriver {
    fn name(&self) -> &'static str {
        self.definition.name()
    }

    fn uses_etcd_discovery(&self) -> bool {
        self.definition.uses_etcd_discovery()
    }

    fn check_shape(
        &self,
        master_count: i64,
        _worker_count: i64,
        master_lb_enabled: bool,
    ) -> Result<(), DomainError> {
        if master_count > 1 && !master_lb_enabled {
            return Err(DomainError::invalid(
                "master_lb_enabled must be true to create a cluster with more than one master.",
            ));
        }
        Ok(())
    }

    fn check_upgrade(
        &self,
        _from: &ClusterTemplate,
        _to: &ClusterTemplate,
    ) -> Result<(), DomainError> {
        Ok(())
    }

    async fn apply(
        &self,
        spec: &ClusterSpec,
        progress: &dyn ProgressSink,
    ) -> Result<Progress, DriverError> {
        let outcome = self.apply_step(spec, progress).await;
        if !matches!(outcome, Ok(Progress::Waiting(_))) {
            self.stop_timing(&spec.uuid);
        }
        if matches!(&outcome, Err(DriverError::Retryable(reason)) if reason.starts_with("Heat refused the trustee's token"))
        {
            self.forget_token(&spec.uuid);
        }
        outcome
    }

    async fn delete(&self, cluster: &ClusterRef) -> Result<Removal, DriverError> {
        let outcome = self.delete_step(cluster).await;
        if !matches!(outcome, Ok(Removal::Waiting(_))) {
            self.stop_timing(&cluster.uuid);
        }
        if matches!(&outcome, Err(DriverError::Retryable(reason)) if reason.starts_with("Heat refused the trustee's token"))
        {
            self.forget_token(&cluster.uuid);
        }
        outcome
    }

    async fn observe(&self, spec: &ClusterSpec) -> Result<Observed, DriverError> {
        let (heat, token) = self.heat_for(&spec.uuid, &spec.credentials).await?;
        match heat
            .get_by_name(&token, &stack_name(&spec.uuid))
            .await
            .map_err(heat_error)?
        {
            Some(stack) => {
                let floating_ip_enabled = spec.network.floating_ip_enabled;
                let mut seen = observed(&stack, floating_ip_enabled, spec.tls_disabled);
                for group in spec.worker_groups().filter(|group| !group.is_default) {
                    let Some(uuid) = group.uuid.as_deref() else {
                        continue;
                    };
                    let name = nodegroup_stack_name(&spec.uuid, uuid);
                    if let Some(nodegroup) =
                        heat.get_by_name(&token, &name).await.map_err(heat_error)?
                    {
                        let addresses = nodegroup_addresses(&nodegroup, floating_ip_enabled);
                        seen.node_addresses.extend(addresses.iter().cloned());
                        seen.nodegroup_addresses
                            .insert(group.name.clone(), addresses);
                        seen.nodegroup_stack_ids
                            .insert(group.name.clone(), nodegroup.reference.id);
                    }
                }
                Ok(seen)
            }
            None => Err(DriverError::Permanent(format!(
                "Stack {} not found in Heat.",
                stack_name(&spec.uuid)
            ))),
        }
    }
}

impl HeatClusterDriver {
    async fn apply_step(
        &self,
        spec: &ClusterSpec,
        progress: &dyn ProgressSink,
    ) -> Result<Progress, DriverError> {
        let (heat, token) = self.heat_for(&spec.uuid, &spec.credentials).await?;
        let name = stack_name(&spec.uuid);
        let rendered = self.definition.render(spec, &self.access(spec)?)?;
        let Some(stack) = heat.get_by_name(&token, &name).await.map_err(heat_error)? else {
            progress.report("asking Heat to create the cluster's stack");
            let created = heat
                .create(
                    &token,
                    &StackCreate {
                        name: name.clone(),
                        template: rendered.template,
                        files: rendered.files,
                        environment: None,
                        parameters: rendered.parameters,
                        timeout_mins: u32::try_from(spec.create_timeout)
                            .ok()
                            .filter(|minutes| *minutes > 0),
                        tags: Vec::new(),
                    },
                )
                .await
                .map_err(heat_error)?;
            return Ok(Progress::Waiting(self.waiting(
                &spec.uuid,
                format!("Heat is creating stack {name}"),
                Some(created.id),
            )));
        };
        match stack.status.state {
            StackState::InProgress => Ok(Progress::Waiting(self.waiting(
                &spec.uuid,
                format!("Heat: {}", stack.status),
                Some(stack.reference.id.clone()),
            ))),
            StackState::Failed => {
                let reason = heat
                    .failure_reason(&token, &stack)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| stack.status.to_string());
                Err(DriverError::Permanent(reason))
            }
            StackState::Complete if stack.status.action == "DELETE" => Err(DriverError::Permanent(
                format!("The cluster's stack {name} was deleted outside magnum."),
            )),
            StackState::Complete => {
                let parameters =
                    parameters_to_change(&stack, &rendered, self.definition.updated_parameters());
                if parameters.is_empty() {
                    return self
                        .apply_nodegroups(spec, &heat, &token, &stack, progress)
                        .await;
                }
                progress.report("asking Heat to update the cluster's stack");
                heat.update(
                    &token,
                    &stack.reference,
                    &StackUpdate {
                        parameters,
                        ..StackUpdate::default()
                    },
                )
                .await
                .map_err(heat_error)?;
                Ok(Progress::Waiting(self.waiting(
                    &spec.uuid,
                    format!("Heat is updating stack {name}"),
                    Some(stack.reference.id.clone()),
                )))
            }
        }
    }

    /// With the cluster's stack complete: one step for each non-default nodegroup's stack
    /// (create, update, or wait for Heat), and the removal of the stacks of nodegroups no
    /// longer wanted. Done once every nodegroup stack is complete as wanted.
    async fn apply_nodegroups(
        &self,
        spec: &ClusterSpec,
        heat: &Heat,
        token: &str,
        cluster_stack: &Stack,
        progress: &dyn ProgressSink,
    ) -> Result<Progress, DriverError> {
        let floating_ip_enabled = spec.network.floating_ip_enabled;
        let mut seen = observed(cluster_stack, floating_ip_enabled, spec.tls_disabled);
        let wanted: Vec<(&NodeGroupSpec, String)> = spec
            .worker_groups()
            .filter(|group| !group.is_default)
            .map(|group| {
                let uuid = group.uuid.as_deref().ok_or_else(|| {
                    DriverError::Permanent(format!(
                        "Nodegroup {} has no uuid to name its stack by.",
                        group.name
                    ))
                })?;
                Ok((group, nodegroup_stack_name(&spec.uuid, uuid)))
            })
            .collect::<Result<_, DriverError>>()?;
        let tagged = heat
            .list_tagged(token, &nodegroup_tag(&spec.uuid))
            .await
            .map_err(heat_error)?;
        let mut under_way = Vec::new();
        for unwanted in tagged
            .iter()
            .filter(|stack| !wanted.iter().any(|(_, name)| *name == stack.reference.name))
        {
            under_way.extend(remove_nodegroup_stack(heat, token, unwanted).await?);
        }
        let access = if wanted.is_empty() {
            None
        } else {
            Some(self.access(spec)?)
        };
        for (group, name) in &wanted {
            let Some(access) = &access else { break };
            let rendered =
                self.definition
                    .render_nodegroup(spec, group, &cluster_stack.outputs, access)?;
            let Some(stack) = heat.get_by_name(token, name).await.map_err(heat_error)? else {
                progress.report(&format!(
                    "asking Heat to create the stack of nodegroup {}",
                    group.name
                ));
                heat.create(
                    token,
                    &StackCreate {
                        name: name.clone(),
                        template: rendered.template,
                        files: rendered.files,
                        environment: None,
                        parameters: rendered.parameters,
                        timeout_mins: u32::try_from(spec.create_timeout)
                            .ok()
                            .filter(|minutes| *minutes > 0),
                        tags: vec![nodegroup_tag(&spec.uuid)],
                    },
                )
                .await
                .map_err(heat_error)?;
                under_way.push(format!(
                    "Heat is creating the stack of nodegroup {}",
                    group.name
                ));
                continue;
            };
            match stack.status.state {
                StackState::InProgress => {
                    under_way.push(format!("nodegroup {}: Heat: {}", group.name, stack.status))
                }
                StackState::Failed => {
                    let reason = heat
                        .failure_reason(token, &stack)
                        .await
                        .ok()
                        .flatten()
                        .unwrap_or_else(|| stack.status.to_string());
                    return Err(DriverError::Permanent(format!(
                        "Nodegroup {}: {reason}",
                        group.name
                    )));
                }
                StackState::Complete if stack.status.action == "DELETE" => {
                    return Err(DriverError::Permanent(format!(
                        "The stack {name} of nodegroup {} was deleted outside magnum.",
                        group.name
                    )))
                }
                StackState::Complete => {
                    let parameters =
                        parameters_to_change(&stack, &rendered, NODEGROUP_UPDATED_PARAMETERS);
                    if parameters.is_empty() {
                        let addresses = nodegroup_addresses(&stack, floating_ip_enabled);
                        seen.node_addresses.extend(addresses.iter().cloned());
                        seen.nodegroup_addresses
                            .insert(group.name.clone(), addresses);
                        seen.nodegroup_stack_ids
                            .insert(group.name.clone(), stack.reference.id.clone());
                        continue;
                    }
                    progress.report(&format!(
                        "asking Heat to update the stack of nodegroup {}",
                        group.name
                    ));
                    heat.update(
                        token,
                        &stack.reference,
                        &StackUpdate {
                            parameters,
                            ..StackUpdate::default()
                        },
                    )
                    .await
                    .map_err(heat_error)?;
                    under_way.push(format!(
                        "Heat is updating the stack of nodegroup {}",
                        group.name
                    ));
                }
            }
        }
        if under_way.is_empty() {
            return Ok(Progress::Done(seen));
        }
        Ok(Progress::Waiting(self.waiting(
            &spec.uuid,
            under_way.join("; "),
            Some(cluster_stack.reference.id.clone()),
        )))
    }

    async fn delete_step(&self, cluster: &ClusterRef) -> Result<Removal, DriverError> {
        let (heat, token) = self.heat_for(&cluster.uuid, &cluster.credentials).await?;
        // The nodegroups' stacks first: their workers are on the cluster stack's network.
        let mut removing = Vec::new();
        for stack in heat
            .list_tagged(&token, &nodegroup_tag(&cluster.uuid))
            .await
            .map_err(heat_error)?
        {
            removing.extend(remove_nodegroup_stack(&heat, &token, &stack).await?);
        }
        if !removing.is_empty() {
            return Ok(Removal::Waiting(self.waiting(
                &cluster.uuid,
                removing.join("; "),
                None,
            )));
        }
        let name = stack_name(&cluster.uuid);
        let Some(stack) = heat.get_by_name(&token, &name).await.map_err(heat_error)? else {
            return self.after_the_stack(cluster).await;
        };
        let waiting = |status: String| {
            Ok(Removal::Waiting(self.waiting(
                &cluster.uuid,
                status,
                Some(stack.reference.id.clone()),
            )))
        };
        match (stack.status.action.as_str(), stack.status.state) {
            ("DELETE", StackState::Complete) => self.after_the_stack(cluster).await,
            ("DELETE", StackState::InProgress) => waiting(format!("Heat: {}", stack.status)),
            ("DELETE", StackState::Failed) => {
                // Try again; the conductor's retry budget bounds how often.
                heat.delete(&token, &stack.reference)
                    .await
                    .map_err(heat_error)?;
                Err(DriverError::Retryable(format!(
                    "Heat could not delete stack {name}: {}",
                    stack.status_reason.clone().unwrap_or_default()
                )))
            }
            _ => {
                if let Some(removing) = self.remove_load_balancers(cluster).await? {
                    return Ok(Removal::Waiting(removing));
                }
                heat.delete(&token, &stack.reference)
                    .await
                    .map_err(heat_error)?;
                waiting(format!("Heat is deleting stack {name}"))
            }
        }
    }

    /// The stack is gone: what is left is the volumes Kubernetes made.
    async fn after_the_stack(&self, cluster: &ClusterRef) -> Result<Removal, DriverError> {
        if let Some(removing) = self.remove_volumes(cluster).await? {
            return Ok(Removal::Waiting(removing));
        }
        self.forget_token(&cluster.uuid);
        Ok(Removal::Gone)
    }
}
