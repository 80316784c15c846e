//! What one Heat driver is: a *template definition* in the seed's words. It maps a
//! [`ClusterSpec`] onto its Heat templates' parameters (with the spec's defaults), renders
//! the nodes' user data, and names the parameters a stack update changes. Everything else —
//! acting as the cluster's trustee, creating, updating, deleting and reading stacks — is
//! common to all of them ([`crate::heat_driver`]).

use magnum_driver::{ClusterSpec, DriverError};
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

    /// The template files by name, the cluster's first, for checks.
    fn template_files(&self) -> Vec<(&'static str, &'static str)>;
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
