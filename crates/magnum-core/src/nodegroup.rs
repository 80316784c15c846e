//! Nodegroups (API 1.9+): the groups of a cluster's nodes, with a typed role and status,
//! and the rules of what a nodegroup create or update may carry, checked before anything is
//! stored. Count and node label/taint violations are conflicts (409), as upstream's
//! `NodeGroupInvalidInput`; malformed fields are 400. Status changes go through
//! [`NodeGroup::begin`] and [`NodeGroup::finish`], which follow the table in
//! [`crate::lifecycle`].

use crate::fields::{decode_bool, decode_int, decode_string, display_value};
use crate::labels::{decode_labels, Labels};
use crate::lifecycle::{self, ClusterStatus, NodeGroupEnd, NodeGroupOperation};
use crate::limits::{MAX_DOCKER_VOLUME_SIZE_GB, MAX_NODE_COUNT};
use crate::{ApiGeneration, DomainError};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// What a nodegroup's nodes are. Upstream keeps the role as free text: `master` and
/// `worker` mean something to every driver, and users may name other worker roles (such as
/// `infra`) that drivers treat as workers carrying that role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NodeGroupRole {
    Master,
    Worker,
    /// A worker role the user named.
    Other(String),
}

impl Default for NodeGroupRole {
    /// Upstream's default role of a new nodegroup.
    fn default() -> Self {
        NodeGroupRole::Worker
    }
}

impl NodeGroupRole {
    pub fn parse(text: &str) -> NodeGroupRole {
        match text {
            "master" => NodeGroupRole::Master,
            "worker" => NodeGroupRole::Worker,
            other => NodeGroupRole::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            NodeGroupRole::Master => "master",
            NodeGroupRole::Worker => "worker",
            NodeGroupRole::Other(name) => name,
        }
    }

    pub fn is_master(&self) -> bool {
        *self == NodeGroupRole::Master
    }
}

impl std::fmt::Display for NodeGroupRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored nodegroup.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeGroup {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    /// The uuid of its cluster.
    pub cluster_id: String,
    pub project_id: String,
    pub docker_volume_size: Option<i64>,
    pub labels: Labels,
    pub flavor_id: Option<String>,
    pub image_id: Option<String>,
    pub node_addresses: Vec<String>,
    pub node_count: i64,
    pub role: NodeGroupRole,
    pub max_node_count: Option<i64>,
    pub min_node_count: i64,
    /// `default-master` and `default-worker`: their sizes are the cluster's counts and
    /// their status is the cluster's.
    pub is_default: bool,
    pub stack_id: Option<String>,
    pub status: ClusterStatus,
    pub status_reason: Option<String>,
    /// Kubernetes node labels (a JSON object), when set.
    pub node_labels: Option<Value>,
    /// Kubernetes node taints (a JSON list of `{key, value, effect}`), when set.
    pub node_taints: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl NodeGroup {
    /// Starts `operation` on this group: its new status, or the refusal (400).
    pub fn begin(&mut self, operation: NodeGroupOperation) -> Result<(), DomainError> {
        self.status =
            lifecycle::begin_nodegroup(Some(self.status), operation).map_err(|error| {
                DomainError::invalid(format!("Nodegroup {} {}", self.name, error.message))
            })?;
        self.status_reason = None;
        Ok(())
    }

    /// Whether the group's nodes are being removed.
    pub fn is_being_deleted(&self) -> bool {
        self.status == ClusterStatus::DeleteInProgress
    }

    /// Ends the group's pending change when its cluster's operation ended: the status it
    /// ends in, or [`NodeGroupEnd::Removed`] for a group whose deletion succeeded.
    pub fn finish(&self, succeeded: bool) -> NodeGroupEnd {
        lifecycle::finish_nodegroup(self.status, succeeded)
    }

    /// The node labels as string pairs (non-string values are left out).
    pub fn node_label_pairs(&self) -> std::collections::BTreeMap<String, String> {
        self.node_labels
            .as_ref()
            .and_then(Value::as_object)
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The attributes a nodegroup create accepts (`node_labels`/`node_taints` from 1.14).
const CREATE_ATTRIBUTES: &[&str] = &[
    "name",
    "docker_volume_size",
    "labels",
    "merge_labels",
    "flavor_id",
    "image_id",
    "node_count",
    "role",
    "min_node_count",
    "max_node_count",
];
const NODE_LABEL_ATTRIBUTES: &[&str] = &["node_labels", "node_taints"];

/// Attributes a nodegroup PATCH may change.
pub const PATCHABLE: &[&str] = &[
    "min_node_count",
    "max_node_count",
    "node_labels",
    "node_taints",
];

/// A decoded nodegroup create request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeGroupInput {
    pub name: String,
    pub docker_volume_size: Option<i64>,
    pub labels: Option<Labels>,
    pub merge_labels: bool,
    pub flavor_id: Option<String>,
    pub image_id: Option<String>,
    pub node_count: i64,
    pub role: NodeGroupRole,
    pub min_node_count: i64,
    pub max_node_count: Option<i64>,
    pub node_labels: Option<Value>,
    pub node_taints: Option<Value>,
}

impl NodeGroupInput {
    /// Decodes a create body; `with_node_labels` tells whether the request's microversion
    /// knows `node_labels` and `node_taints`.
    pub fn decode(body: &Value, with_node_labels: bool) -> Result<Self, DomainError> {
        let Value::Object(object) = body else {
            return Err(DomainError::invalid("The nodegroup must be a JSON object."));
        };
        let accepted = |key: &str| {
            CREATE_ATTRIBUTES.contains(&key)
                || (with_node_labels && NODE_LABEL_ATTRIBUTES.contains(&key))
        };
        if let Some(unknown) = object.keys().find(|key| !accepted(key)) {
            return Err(DomainError::invalid(format!(
                "Unknown attribute for argument nodegroup: {unknown}"
            )));
        }
        let field = |name: &str| object.get(name).unwrap_or(&Value::Null);
        let name = decode_string("name", field("name"), 1, 255)?.ok_or_else(|| {
            DomainError::invalid_field("name", "None", "Mandatory field missing.")
        })?;
        let role = decode_string("role", field("role"), 1, 255)?
            .map(|text| NodeGroupRole::parse(&text))
            .unwrap_or(NodeGroupRole::Worker);
        if role.is_master() {
            return Err(DomainError::invalid(
                "Creating master nodegroups is currently not supported.",
            ));
        }
        let labels = match field("labels") {
            Value::Null => None,
            value => Some(decode_labels(value, ApiGeneration::Current)?),
        };
        let input = NodeGroupInput {
            docker_volume_size: decode_int(
                "docker_volume_size",
                field("docker_volume_size"),
                Some(1),
                Some(MAX_DOCKER_VOLUME_SIZE_GB),
            )?,
            labels,
            merge_labels: decode_bool("merge_labels", field("merge_labels"))?.unwrap_or(false),
            flavor_id: decode_string("flavor_id", field("flavor_id"), 1, 255)?,
            image_id: decode_string("image_id", field("image_id"), 1, 255)?,
            node_count: decode_int(
                "node_count",
                field("node_count"),
                Some(0),
                Some(MAX_NODE_COUNT),
            )?
            .unwrap_or(1),
            min_node_count: decode_int(
                "min_node_count",
                field("min_node_count"),
                Some(0),
                Some(MAX_NODE_COUNT),
            )?
            .unwrap_or(0),
            max_node_count: decode_int(
                "max_node_count",
                field("max_node_count"),
                Some(0),
                Some(MAX_NODE_COUNT),
            )?,
            node_labels: check_node_labels(&name, field("node_labels"))?,
            node_taints: check_node_taints(&name, field("node_taints"), &role)?,
            name,
            role,
        };
        check_counts(
            &input.name,
            input.node_count,
            input.min_node_count,
            input.max_node_count,
        )?;
        Ok(input)
    }
}

/// `min_node_count ≤ node_count`, and `max_node_count ≥` both when set (409 otherwise).
pub fn check_counts(
    name: &str,
    node_count: i64,
    min_node_count: i64,
    max_node_count: Option<i64>,
) -> Result<(), DomainError> {
    if min_node_count > node_count {
        return Err(DomainError::conflict(format!(
            "min_node_count for {name} is invalid (min_node_count ({min_node_count}) should be less or equal to node_count ({node_count}) for nodegroup {name})."
        )));
    }
    if let Some(max) = max_node_count {
        if max < min_node_count {
            return Err(DomainError::conflict(format!(
                "max_node_count for {name} is invalid (max_node_count ({max}) should be greater or equal to min_node_count ({min_node_count}) for nodegroup {name})."
            )));
        }
        if max < node_count {
            return Err(DomainError::conflict(format!(
                "max_node_count for {name} is invalid (max_node_count ({max}) should be greater or equal to node_count ({node_count}) for nodegroup {name})."
            )));
        }
    }
    Ok(())
}

/// Node labels Kubernetes reserves for itself but lets a node carry.
const WELL_KNOWN_NODE_LABELS: &[&str] = &[
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "kubernetes.io/hostname",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "node.kubernetes.io/windows-build",
];

fn is_reserved_label(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else {
        return false;
    };
    let kubernetes = ["kubernetes.io", "k8s.io"]
        .iter()
        .any(|domain| prefix == *domain || prefix.ends_with(&format!(".{domain}")));
    kubernetes
        && prefix != "kubelet.kubernetes.io"
        && prefix != "node.kubernetes.io"
        && !WELL_KNOWN_NODE_LABELS.contains(&key)
}

/// Checks `node_labels` (an object of strings; no keys under Kubernetes' own prefixes).
pub fn check_node_labels(name: &str, value: &Value) -> Result<Option<Value>, DomainError> {
    let object = match value {
        Value::Null => return Ok(None),
        Value::Object(object) => object,
        other => {
            return Err(DomainError::invalid_field(
                "node_labels",
                display_value(other),
                "node_labels must be a dictionary of strings.",
            ))
        }
    };
    for (key, label) in object {
        if !label.is_string() {
            return Err(DomainError::invalid_field(
                "node_labels",
                display_value(value),
                "node_labels must be a dictionary of strings.",
            ));
        }
        if is_reserved_label(key) {
            return Err(DomainError::conflict(format!(
                "node_labels for {name} is invalid (the label {key} is reserved by Kubernetes)."
            )));
        }
    }
    Ok(Some(Value::Object(object.clone())))
}

/// Checks `node_taints`: a list of `{key, value?, effect}` with a known effect, not on
/// master nodegroups.
pub fn check_node_taints(
    name: &str,
    value: &Value,
    role: &NodeGroupRole,
) -> Result<Option<Value>, DomainError> {
    let items = match value {
        Value::Null => return Ok(None),
        Value::Array(items) => items,
        other => {
            return Err(DomainError::invalid_field(
                "node_taints",
                display_value(other),
                "node_taints must be a list of taints.",
            ))
        }
    };
    let invalid =
        |why: &str| DomainError::conflict(format!("node_taints for {name} is invalid ({why})."));
    if role.is_master() && !items.is_empty() {
        return Err(invalid("master nodegroups cannot have taints"));
    }
    let mut taints = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(taint) = item else {
            return Err(invalid("each taint must be an object with key and effect"));
        };
        if let Some(unknown) = taint
            .keys()
            .find(|key| !["key", "value", "effect"].contains(&key.as_str()))
        {
            return Err(invalid(&format!("unknown taint attribute {unknown}")));
        }
        match taint.get("key") {
            Some(Value::String(key)) if !key.is_empty() => {}
            _ => return Err(invalid("every taint needs a key")),
        }
        match taint.get("value") {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            _ => return Err(invalid("a taint's value must be a string")),
        }
        match taint.get("effect").and_then(Value::as_str) {
            Some("NoSchedule" | "PreferNoSchedule" | "NoExecute") => {}
            _ => {
                return Err(invalid(
                    "a taint's effect must be NoSchedule, PreferNoSchedule or NoExecute",
                ))
            }
        }
        taints.push(Value::Object(Map::clone(taint)));
    }
    Ok(Some(Value::Array(taints)))
}

/// A nodegroup's labels: the given ones, merged over the cluster's with `merge_labels`, or
/// the cluster's when none are given.
pub fn effective_labels(cluster: &Labels, given: Option<&Labels>, merge: bool) -> Labels {
    match given {
        None => cluster.clone(),
        Some(given) if merge => {
            let mut merged = cluster.clone();
            merged.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
            merged
        }
        Some(given) => given.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DomainErrorKind;
    use serde_json::json;

    #[test]
    fn a_minimal_create_gets_the_defaults() {
        let input = NodeGroupInput::decode(&json!({"name": "ng"}), false).unwrap();
        assert_eq!(input.name, "ng");
        assert_eq!(input.role, NodeGroupRole::Worker);
        assert_eq!(input.node_count, 1);
        assert_eq!(input.min_node_count, 0);
        assert_eq!(input.max_node_count, None);
    }

    #[test]
    fn bad_creates_are_refused_with_the_right_kind() {
        let kind =
            |body: Value, labels: bool| NodeGroupInput::decode(&body, labels).unwrap_err().kind;
        assert_eq!(kind(json!({}), false), DomainErrorKind::Invalid);
        assert_eq!(
            kind(json!({"name": "a", "role": "master"}), false),
            DomainErrorKind::Invalid
        );
        assert_eq!(
            kind(json!({"name": "a", "bogus": 1}), false),
            DomainErrorKind::Invalid
        );
        assert_eq!(
            kind(json!({"name": "a", "node_labels": {}}), false),
            DomainErrorKind::Invalid
        );
        assert_eq!(
            kind(json!({"name": "a", "node_count": -1}), false),
            DomainErrorKind::Invalid
        );
        assert_eq!(
            kind(
                json!({"name": "a", "node_count": 1, "min_node_count": 2}),
                false
            ),
            DomainErrorKind::Conflict
        );
        assert_eq!(
            kind(
                json!({"name": "a", "node_count": 3, "max_node_count": 2}),
                false
            ),
            DomainErrorKind::Conflict
        );
        assert_eq!(
            kind(
                json!({"name": "a", "node_labels": {"kubernetes.io/role": "x"}}),
                true
            ),
            DomainErrorKind::Conflict
        );
        assert_eq!(
            kind(
                json!({"name": "a", "node_taints": [{"key": "k", "effect": "Sometimes"}]}),
                true
            ),
            DomainErrorKind::Conflict
        );
        assert_eq!(
            kind(
                json!({"name": "a", "node_taints": [{"effect": "NoSchedule"}]}),
                true
            ),
            DomainErrorKind::Conflict
        );
    }

    #[test]
    fn node_labels_under_kubernetes_prefixes_are_reserved_except_the_allowed_ones() {
        for allowed in [
            "team",
            "example.com/team",
            "node.kubernetes.io/pool",
            "kubelet.kubernetes.io/x",
            "topology.kubernetes.io/zone",
        ] {
            assert!(!is_reserved_label(allowed), "{allowed}");
        }
        for reserved in [
            "kubernetes.io/role",
            "k8s.io/x",
            "foo.k8s.io/x",
            "x.kubernetes.io/y",
        ] {
            assert!(is_reserved_label(reserved), "{reserved}");
        }
    }

    #[test]
    fn labels_are_the_clusters_merged_or_replaced() {
        let cluster: Labels = [("a".to_string(), "1".to_string())].into();
        let given: Labels = [("b".to_string(), "2".to_string())].into();
        assert_eq!(effective_labels(&cluster, None, false), cluster);
        assert_eq!(effective_labels(&cluster, Some(&given), false), given);
        assert_eq!(effective_labels(&cluster, Some(&given), true).len(), 2);
    }
}
