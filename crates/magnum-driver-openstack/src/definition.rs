//! What one Heat driver is: a *template definition* in the seed's words. It maps a
//! [`ClusterSpec`] onto its Heat templates' parameters (with the spec's defaults), renders
//! the nodes' user data, and names the parameters a stack update changes. Everything else —
//! acting as the cluster's trustee, creating, updating, deleting and reading stacks — is
//! common to all of them ([`crate::heat_driver`]).

use magnum_driver::{ClusterSpec, DriverError, NodeGroupSpec};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Where a cluster's nodes reach magnum and Keystone, and as whom.
#[derive(Clone)]
pub struct NodeAccess {
    /// Magnum's API, ending in `/v1`.
    pub magnum_url: String,
    /// Keystone v3.
    pub auth_url: String,
    pub region_name: String,
    pub trustee_user_id: String,
    pub trustee_username: String,
    pub trustee_password: magnum_config::Secret,
    pub trust_id: String,
    /// Whether the nodes may act in the cloud with the trust (`[trust]
    /// cluster_user_trust`): the default of the label cloud_provider_enabled.
    pub cluster_user_trust: bool,
}

impl std::fmt::Debug for NodeAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAccess")
            .field("magnum_url", &self.magnum_url)
            .field("auth_url", &self.auth_url)
            .field("trustee_user_id", &self.trustee_user_id)
            .finish_non_exhaustive()
    }
}

/// A stack ready to send to Heat.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedStack {
    pub template: String,
    pub files: BTreeMap<String, String>,
    pub parameters: Map<String, Value>,
}

/// One driver's templates and parameter mapping.
pub trait StackDefinition: Send + Sync + std::fmt::Debug {
    /// The driver's registry name.
    fn name(&self) -> &'static str;

    /// The whole stack for `spec`.
    fn render(&self, spec: &ClusterSpec, access: &NodeAccess)
        -> Result<RenderedStack, DriverError>;

    /// The parameters whose change needs a stack update (the others are set at create).
    fn updated_parameters(&self) -> &'static [&'static str];

    /// Whether the masters' etcd members bootstrap through `discovery_url`.
    fn uses_etcd_discovery(&self) -> bool {
        false
    }

    /// The stack of `group`, a non-default worker nodegroup of `spec`: its workers join the
    /// network, security group and API of the cluster's stack, whose outputs are
    /// `cluster_outputs` (see [`ClusterStackOutputs`]).
    fn render_nodegroup(
        &self,
        spec: &ClusterSpec,
        group: &NodeGroupSpec,
        cluster_outputs: &BTreeMap<String, Value>,
        access: &NodeAccess,
    ) -> Result<RenderedStack, DriverError>;

    /// The template files by name, the cluster's first, for checks.
    fn template_files(&self) -> Vec<(&'static str, &'static str)>;
}

/// The parameters whose change needs a nodegroup stack's update, common to every
/// definition's nodegroup template.
pub const NODEGROUP_UPDATED_PARAMETERS: &[&str] = &[
    "number_of_minions",
    "minion_image",
    "minion_flavor",
    VERSION_PARAMETER,
];

/// The outputs of a cluster's stack that its nodegroups' stacks are built on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStackOutputs {
    pub network: String,
    pub subnet: String,
    pub security_group: String,
    /// Where workers reach the API on the private network.
    pub api_address: String,
}

impl ClusterStackOutputs {
    /// Reads them; an output missing means the cluster's stack is not one this driver
    /// made, which no retry mends.
    pub fn read(outputs: &BTreeMap<String, Value>) -> Result<Self, DriverError> {
        Ok(ClusterStackOutputs {
            network: output(outputs, "fixed_network")?,
            subnet: output(outputs, "fixed_subnet")?,
            security_group: output(outputs, "secgroup_minion")?,
            api_address: output(outputs, "api_private_address")?,
        })
    }
}

/// A text output of the cluster's stack.
pub(crate) fn output(outputs: &BTreeMap<String, Value>, key: &str) -> Result<String, DriverError> {
    outputs
        .get(key)
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            DriverError::Permanent(format!(
                "The cluster's stack has no {key} output to build nodegroups on; it was not \
                 made by this driver's templates."
            ))
        })
}

/// The parameters of a nodegroup's stack, common to every definition: the group's shape,
/// the cluster stack's network, and `copied` taken from the cluster stack's parameters
/// (`cluster`). The user data is the definition's to add.
pub(crate) fn nodegroup_parameters(
    cluster: &Map<String, Value>,
    copied: &[&str],
    group: &NodeGroupSpec,
    outputs: &ClusterStackOutputs,
    nodes_to_remove: &[String],
) -> Map<String, Value> {
    let mut parameters: Map<String, Value> = copied
        .iter()
        .filter_map(|key| Some((key.to_string(), cluster.get(*key)?.clone())))
        .collect();
    let mut set = |key: &str, value: String| {
        parameters.insert(key.to_string(), Value::String(value));
    };
    set("nodegroup_name", group.name.clone());
    set("number_of_minions", group.node_count.to_string());
    set("minion_image", group.image.clone());
    if let Some(flavor) = group
        .flavor
        .clone()
        .or_else(|| cluster.get("minion_flavor")?.as_str().map(str::to_string))
    {
        set("minion_flavor", flavor);
    }
    if let Some(size) = group.docker_volume_size {
        set("docker_volume_size", size.to_string());
    }
    set(REMOVAL_PARAMETER, nodes_to_remove.join(","));
    set("existing_network", outputs.network.clone());
    set("existing_subnet", outputs.subnet.clone());
    set("existing_security_group", outputs.security_group.clone());
    set("existing_master_private_ip", outputs.api_address.clone());
    parameters
}

/// A nodegroup's node labels as the kubelet takes them (`k=v,k2=v2`).
pub(crate) fn node_labels(group: &NodeGroupSpec) -> String {
    group
        .node_labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The parameter naming the workers to remove on a scale-in (ResourceGroup
/// removal_policies), common to every definition.
pub const REMOVAL_PARAMETER: &str = "minions_to_remove";

/// The parameter whose value is the Kubernetes version.
pub const VERSION_PARAMETER: &str = "kube_tag";

/// The nodes' user data, which carries the version: sent again with a version change, so
/// that Heat replaces the nodes (one at a time) with ones of the new version. Heat shows
/// these hidden parameters masked, so they are never compared.
pub const USER_DATA_PARAMETERS: [&str; 2] = ["master_user_data", "minion_user_data"];

/// A label's value.
pub(crate) fn label<'a>(labels: &'a magnum_core::labels::Labels, key: &str) -> Option<&'a str> {
    labels.get(key).map(String::as_str)
}

pub(crate) fn is_true(text: &str) -> bool {
    text.eq_ignore_ascii_case("true")
}
