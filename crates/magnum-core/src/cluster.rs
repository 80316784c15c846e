//! Clusters (2016: bays) and their nodegroups: the desired shape a user asked for, what the
//! conductor observed, and the rules of spec §3.4 for create and update requests.

use crate::cluster_template::ClusterTemplate;
use crate::fields::{decode_bool, decode_int, decode_string, display_value};
use crate::labels::{decode_labels, validate_labels, Labels};
use crate::lifecycle::{ClusterStatus, Operation};
use crate::limits::{
    MAX_CREATE_TIMEOUT_MINUTES, MAX_DOCKER_VOLUME_SIZE_GB, MAX_MASTER_COUNT, MAX_NODE_COUNT,
};
use crate::{names, ApiGeneration, DomainError};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `health_status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    Healthy,
    Unhealthy,
    Unknown,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "HEALTHY",
            HealthStatus::Unhealthy => "UNHEALTHY",
            HealthStatus::Unknown => "UNKNOWN",
        }
    }

    pub fn parse(text: &str) -> Option<HealthStatus> {
        match text {
            "HEALTHY" => Some(HealthStatus::Healthy),
            "UNHEALTHY" => Some(HealthStatus::Unhealthy),
            "UNKNOWN" => Some(HealthStatus::Unknown),
            _ => None,
        }
    }
}

/// The nodegroups every cluster has; their sizes are the cluster's `master_count` and
/// `node_count`.
pub const DEFAULT_MASTER_NODEGROUP: &str = "default-master";
pub const DEFAULT_WORKER_NODEGROUP: &str = "default-worker";

/// A stored cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub id: i64,
    /// Bumped by every stored change (optimistic concurrency, cache keys).
    pub revision: i64,
    pub uuid: String,
    pub name: Option<String>,
    pub project_id: String,
    pub user_id: String,
    pub cluster_template_id: String,
    pub keypair: Option<String>,
    pub docker_volume_size: Option<i64>,
    pub labels: Labels,
    pub master_flavor_id: Option<String>,
    pub flavor_id: Option<String>,
    pub fixed_network: Option<String>,
    pub fixed_subnet: Option<String>,
    pub floating_ip_enabled: bool,
    pub master_lb_enabled: bool,
    /// Minutes; 0 means no timeout.
    pub create_timeout: i64,
    pub discovery_url: Option<String>,
    /// Desired counts (the default nodegroups' sizes).
    pub master_count: i64,
    pub node_count: i64,
    /// Workers of the cluster's other (non-default) worker nodegroups, read from their rows;
    /// the API shows `node_count + extra_worker_count` as the cluster's node count.
    pub extra_worker_count: i64,
    /// The infrastructure's handle for the cluster (Heat stack id, or the Docker label value).
    pub stack_id: Option<String>,
    pub status: ClusterStatus,
    pub status_reason: Option<String>,
    pub health_status: Option<HealthStatus>,
    pub health_status_reason: BTreeMap<String, String>,
    pub api_address: Option<String>,
    pub master_addresses: Vec<String>,
    pub node_addresses: Vec<String>,
    pub coe_version: Option<String>,
    pub container_version: Option<String>,
    /// The operation the conductor must carry out, if any.
    pub operation: Option<Operation>,
    /// Incremented for every accepted operation, so a worker notices when its work is
    /// superseded (a delete during a create, a second resize).
    pub operation_generation: i64,
    /// Worker nodes (by name or address) the user asked to remove in the pending resize.
    pub nodes_to_remove: Vec<String>,
    /// When the pending create must have finished (from `create_timeout`).
    pub create_deadline: Option<DateTime<Utc>>,
    /// The driver that builds the cluster (its template's at creation).
    pub driver: Option<String>,
    /// When a conductor first took up the pending operation (the database's clock).
    pub operation_started_at: Option<DateTime<Utc>>,
    /// Failed attempts of the pending operation so far.
    pub operation_attempts: i64,
    /// The template a running upgrade came from (to roll back to).
    pub rollback_template_id: Option<String>,
    /// Why a running rollback runs (the upgrade's failure).
    pub rollback_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// What the caller may set on create, decoded and checked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterInput {
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub cluster_template_id: String,
    pub keypair: Option<String>,
    pub node_count: Option<i64>,
    pub master_count: Option<i64>,
    pub create_timeout: Option<i64>,
    pub discovery_url: Option<String>,
    pub docker_volume_size: Option<i64>,
    pub labels: Option<Labels>,
    pub merge_labels: bool,
    pub master_flavor_id: Option<String>,
    pub flavor_id: Option<String>,
    pub fixed_network: Option<String>,
    pub fixed_subnet: Option<String>,
    pub floating_ip_enabled: Option<bool>,
    pub master_lb_enabled: Option<bool>,
}

/// The 1.10 microversion allowed `node_count` 0 (callers pass whether it applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountRules {
    pub zero_nodes_allowed: bool,
}

fn is_valid_current_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn check_node_count(count: i64, rules: CountRules) -> Result<(), DomainError> {
    if count == 0 && !rules.zero_nodes_allowed {
        return Err(DomainError::invalid(
            "node_count of zero is not supported in the provided microversion; use 1.10 or later.",
        ));
    }
    Ok(())
}

impl ClusterInput {
    /// Decodes a create body (current `/v1/clusters` or 2016 `/v1/bays` names).
    pub fn decode(
        body: &Value,
        generation: ApiGeneration,
        rules: CountRules,
    ) -> Result<ClusterInput, DomainError> {
        let Value::Object(object) = body else {
            return Err(DomainError::invalid(
                "Invalid input: the request body must be a JSON object of cluster attributes.",
            ));
        };
        let (argument, template_key, timeout_key) = match generation {
            ApiGeneration::Current => ("cluster", "cluster_template_id", "create_timeout"),
            ApiGeneration::Seed => ("bay", "baymodel_id", "bay_create_timeout"),
        };
        let current_only = [
            "keypair",
            "docker_volume_size",
            "labels",
            "merge_labels",
            "master_flavor_id",
            "flavor_id",
            "fixed_network",
            "fixed_subnet",
            "floating_ip_enabled",
            "master_lb_enabled",
        ];
        let both = [
            "uuid",
            "name",
            "node_count",
            "master_count",
            "discovery_url",
        ];
        let mut input = ClusterInput::default();
        let mut template = None;
        for (key, value) in object {
            let key = key.as_str();
            let known = key == template_key
                || key == timeout_key
                || both.contains(&key)
                || (generation == ApiGeneration::Current && current_only.contains(&key));
            if !known {
                return Err(DomainError::invalid(format!(
                    "Unknown attribute for argument {argument}: {key}"
                )));
            }
            match key {
                "uuid" => input.uuid = crate::fields::decode_uuid("uuid", value)?,
                "name" => {
                    input.name = match generation {
                        ApiGeneration::Current => {
                            let name = decode_string("name", value, 1, 242)?;
                            if let Some(name) = &name {
                                if !is_valid_current_name(name) {
                                    return Err(DomainError::invalid_field(
                                        "name",
                                        name,
                                        "Value should match the pattern ^[a-zA-Z][a-zA-Z0-9_.-]*$",
                                    ));
                                }
                            }
                            name
                        }
                        ApiGeneration::Seed => decode_string("name", value, 1, 255)?,
                    }
                }
                "keypair" => input.keypair = decode_string("keypair", value, 1, 255)?,
                "node_count" => {
                    let minimum = if generation == ApiGeneration::Seed {
                        1
                    } else {
                        0
                    };
                    input.node_count =
                        decode_int("node_count", value, Some(minimum), Some(MAX_NODE_COUNT))?;
                    if let Some(count) = input.node_count {
                        check_node_count(count, rules)?;
                    }
                }
                "master_count" => {
                    input.master_count =
                        decode_int("master_count", value, Some(1), Some(MAX_MASTER_COUNT))?
                }
                // Plain text upstream: Horizon's panel always sends "" when the user
                // gives none, which means the same as no value.
                "discovery_url" => {
                    input.discovery_url = decode_string("discovery_url", value, 0, 65535)?
                        .filter(|url| !url.is_empty())
                }
                "docker_volume_size" => {
                    input.docker_volume_size = decode_int(
                        "docker_volume_size",
                        value,
                        Some(1),
                        Some(MAX_DOCKER_VOLUME_SIZE_GB),
                    )?
                }
                "labels" => {
                    input.labels = match value {
                        Value::Null => None,
                        other => Some(decode_labels(other, generation)?),
                    }
                }
                "merge_labels" => {
                    input.merge_labels = decode_bool("merge_labels", value)?.unwrap_or(false)
                }
                "master_flavor_id" => {
                    input.master_flavor_id = decode_string("master_flavor_id", value, 1, 255)?
                }
                "flavor_id" => input.flavor_id = decode_string("flavor_id", value, 1, 255)?,
                "fixed_network" => {
                    input.fixed_network = decode_string("fixed_network", value, 1, 255)?
                }
                "fixed_subnet" => {
                    input.fixed_subnet = decode_string("fixed_subnet", value, 1, 255)?
                }
                "floating_ip_enabled" => {
                    input.floating_ip_enabled = decode_bool("floating_ip_enabled", value)?
                }
                "master_lb_enabled" => {
                    input.master_lb_enabled = decode_bool("master_lb_enabled", value)?
                }
                key if key == template_key => {
                    template = decode_string(template_key, value, 1, 255)?
                }
                key if key == timeout_key => {
                    input.create_timeout = decode_int(
                        timeout_key,
                        value,
                        Some(0),
                        Some(MAX_CREATE_TIMEOUT_MINUTES),
                    )?
                }
                _ => {}
            }
        }
        input.cluster_template_id = template.ok_or_else(|| {
            DomainError::invalid_field(template_key, "None", "Mandatory field missing.")
        })?;
        Ok(input)
    }
}

/// Who creates a cluster and when.
#[derive(Debug, Clone)]
pub struct ClusterOwner {
    pub project_id: String,
    pub user_id: String,
    pub now: DateTime<Utc>,
}

impl Cluster {
    /// Builds a new cluster from the request and its template (spec §3.4 create flow steps
    /// 9, 12, 13): defaults copied from the template, labels merged, name generated.
    pub fn new(
        input: &ClusterInput,
        template: &ClusterTemplate,
        generation: ApiGeneration,
        owner: ClusterOwner,
    ) -> Result<Cluster, DomainError> {
        let labels = match (&input.labels, input.merge_labels) {
            (None, _) => template.labels.clone(),
            (Some(given), false) => given.clone(),
            (Some(given), true) => {
                let mut merged = template.labels.clone();
                merged.extend(given.clone());
                merged
            }
        };
        validate_labels(&labels)?;
        let master_count = input.master_count.unwrap_or(1);
        let node_count = input.node_count.unwrap_or(1);
        let default_timeout = match generation {
            ApiGeneration::Current => 60,
            ApiGeneration::Seed => 0,
        };
        let create_timeout = input.create_timeout.unwrap_or(default_timeout);
        let name = match (&input.name, generation) {
            (Some(name), _) => Some(name.clone()),
            (None, ApiGeneration::Current) => Some(names::generate_name("cluster")),
            (None, ApiGeneration::Seed) => None,
        };
        let create_deadline = (create_timeout > 0)
            .then(|| chrono::Duration::try_minutes(create_timeout))
            .flatten()
            .and_then(|timeout| owner.now.checked_add_signed(timeout));
        let status = crate::lifecycle::begin(None, Operation::Create)?;
        Ok(Cluster {
            id: 0,
            revision: 0,
            uuid: input
                .uuid
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            name,
            project_id: owner.project_id,
            user_id: owner.user_id,
            cluster_template_id: template.uuid.clone(),
            keypair: input
                .keypair
                .clone()
                .or_else(|| template.keypair_id.clone()),
            docker_volume_size: input.docker_volume_size.or(template.docker_volume_size),
            labels,
            master_flavor_id: input
                .master_flavor_id
                .clone()
                .or_else(|| template.master_flavor_id.clone()),
            flavor_id: input
                .flavor_id
                .clone()
                .or_else(|| template.flavor_id.clone()),
            fixed_network: input
                .fixed_network
                .clone()
                .or_else(|| template.fixed_network.clone()),
            fixed_subnet: input
                .fixed_subnet
                .clone()
                .or_else(|| template.fixed_subnet.clone()),
            floating_ip_enabled: input
                .floating_ip_enabled
                .unwrap_or(template.floating_ip_enabled),
            master_lb_enabled: input
                .master_lb_enabled
                .unwrap_or(template.master_lb_enabled),
            create_timeout,
            discovery_url: input.discovery_url.clone(),
            master_count,
            node_count,
            extra_worker_count: 0,
            stack_id: None,
            status,
            status_reason: None,
            health_status: None,
            health_status_reason: BTreeMap::new(),
            api_address: None,
            master_addresses: Vec::new(),
            node_addresses: Vec::new(),
            coe_version: None,
            container_version: None,
            operation: Some(Operation::Create),
            operation_generation: 1,
            nodes_to_remove: Vec::new(),
            create_deadline,
            driver: template.driver.clone(),
            operation_started_at: None,
            operation_attempts: 0,
            rollback_template_id: None,
            rollback_reason: None,
            created_at: owner.now,
            updated_at: None,
        })
    }

    /// Starts `operation` on the cluster (the lifecycle table decides whether it may):
    /// records the new status and the pending operation, and bumps the operation generation
    /// so that a conductor working on an older operation notices it was superseded.
    pub fn begin(&mut self, operation: Operation) -> Result<(), DomainError> {
        if operation == Operation::Rollback {
            return Err(DomainError::invalid(
                "A rollback is started by the conductor when an upgrade fails.",
            ));
        }
        self.status = crate::lifecycle::begin(Some(self.status), operation)?;
        self.status_reason = None;
        self.operation = Some(operation);
        self.operation_generation += 1;
        self.operation_started_at = None;
        self.operation_attempts = 0;
        if operation != Operation::Upgrade {
            self.rollback_template_id = None;
        }
        self.rollback_reason = None;
        Ok(())
    }

    /// Turns a failing upgrade into a rollback to the template it came from: the same
    /// pending work (same generation, so the conductor carries on), now building the old
    /// template. Refused when no upgrade is under way.
    pub fn roll_back(&mut self, reason: &str) -> Result<(), DomainError> {
        let Some(previous) = self.rollback_template_id.clone() else {
            return Err(DomainError::invalid("No upgrade to roll back."));
        };
        if self.operation != Some(Operation::Upgrade) {
            return Err(DomainError::invalid("No upgrade to roll back."));
        }
        self.status = crate::lifecycle::begin(Some(self.status), Operation::Rollback)?;
        self.rollback_reason = Some(format!(
            "Upgrade to cluster template {} failed: {reason}",
            self.cluster_template_id
        ));
        self.status_reason = Some(format!(
            "{}; rolling back to {previous}.",
            self.rollback_reason.as_deref().unwrap_or_default()
        ));
        self.operation = Some(Operation::Rollback);
        self.cluster_template_id = previous;
        self.rollback_template_id = None;
        self.operation_attempts = 0;
        // The rollback gets its own time: its deadline starts when it is first taken up.
        self.operation_started_at = None;
        Ok(())
    }

    /// Ends the pending operation in the status the lifecycle table gives, with `reason`
    /// (a failure's cause; none on success).
    pub fn finish(&mut self, operation: Operation, succeeded: bool, reason: Option<String>) {
        self.status = crate::lifecycle::finish(operation, succeeded);
        // A rollback's end says why it ran.
        self.status_reason = match (operation, self.rollback_reason.take(), reason) {
            (Operation::Rollback, Some(why), None) => Some(format!(
                "{why}; rolled back to {}.",
                self.cluster_template_id
            )),
            (Operation::Rollback, Some(why), Some(failure)) => Some(format!(
                "{why}; the rollback to {} failed too: {failure}",
                self.cluster_template_id
            )),
            (_, _, reason) => reason,
        };
        self.rollback_template_id = None;
        if succeeded {
            self.nodes_to_remove = Vec::new();
        }
    }

    /// Labels compared with the template's (spec §3.4): overridden (template value shown),
    /// added, skipped.
    pub fn label_differences(&self, template_labels: &Labels) -> (Labels, Labels, Labels) {
        let mut overridden = Labels::new();
        let mut added = Labels::new();
        let mut skipped = Labels::new();
        for (key, value) in &self.labels {
            match template_labels.get(key) {
                Some(template_value) if template_value != value => {
                    overridden.insert(key.clone(), template_value.clone());
                }
                Some(_) => {}
                None => {
                    added.insert(key.clone(), value.clone());
                }
            }
        }
        for (key, value) in template_labels {
            if !self.labels.contains_key(key) {
                skipped.insert(key.clone(), value.clone());
            }
        }
        (overridden, added, skipped)
    }
}

/// The attributes a cluster PATCH may not touch at all (spec §3.4).
const INTERNAL_PATCH_PATHS: [&str; 14] = [
    "uuid",
    "id",
    "created_at",
    "updated_at",
    "links",
    "project_id",
    "user_id",
    "api_address",
    "node_addresses",
    "master_addresses",
    "stack_id",
    "cluster_id",
    "ca_cert_ref",
    "magnum_cert_ref",
];

/// What a cluster PATCH asks for, once checked: only these may change (spec §3.4).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterChange {
    pub node_count: Option<i64>,
    pub health_status: Option<HealthStatus>,
    pub health_status_reason: Option<BTreeMap<String, String>>,
}

/// Checks a cluster PATCH: internal attributes are refused, and of the rest only
/// `node_count`, `health_status` and `health_status_reason` may differ.
pub fn decode_cluster_patch(
    document_before: &Value,
    document_after: &Value,
    operations: &[crate::patch::PatchOperation],
    generation: ApiGeneration,
    rules: CountRules,
) -> Result<ClusterChange, DomainError> {
    for operation in operations {
        let attribute = operation.segments[0].as_str();
        if INTERNAL_PATCH_PATHS.contains(&attribute)
            || (generation == ApiGeneration::Seed && attribute == "registry_trust_id")
        {
            return Err(DomainError::invalid(format!(
                "'/{attribute}' is an internal attribute and can not be updated"
            )));
        }
    }
    let (Value::Object(before), Value::Object(after)) = (document_before, document_after) else {
        return Err(DomainError::invalid(
            "The patched document is not an object.",
        ));
    };
    let mut changed: Vec<&str> = after
        .iter()
        .filter(|(key, value)| before.get(*key) != Some(*value))
        .map(|(key, _)| key.as_str())
        .collect();
    changed.extend(
        before
            .keys()
            .filter(|key| !after.contains_key(*key))
            .map(String::as_str),
    );
    let allowed = ["node_count", "health_status", "health_status_reason"];
    let disallowed: Vec<&str> = changed
        .iter()
        .copied()
        .filter(|key| !allowed.contains(key))
        .collect();
    if !disallowed.is_empty() {
        let noun = match generation {
            ApiGeneration::Current => "cluster",
            ApiGeneration::Seed => "bay",
        };
        return Err(DomainError::invalid(format!(
            "cannot change {noun} property(ies) {}.",
            disallowed.join(", ")
        )));
    }
    let mut change = ClusterChange::default();
    if changed.contains(&"node_count") {
        let minimum = if generation == ApiGeneration::Seed {
            1
        } else {
            0
        };
        let count = decode_int(
            "node_count",
            after.get("node_count").unwrap_or(&Value::Null),
            Some(minimum),
            Some(MAX_NODE_COUNT),
        )?
        .ok_or_else(|| {
            DomainError::invalid("'/node_count' is a mandatory attribute and can not be removed")
        })?;
        check_node_count(count, rules)?;
        change.node_count = Some(count);
    }
    if changed.contains(&"health_status") {
        let value = after.get("health_status").unwrap_or(&Value::Null);
        let text = value.as_str().unwrap_or_default();
        change.health_status = Some(HealthStatus::parse(text).ok_or_else(|| {
            DomainError::invalid_field(
                "health_status",
                display_value(value),
                "Value should be one of: HEALTHY, UNHEALTHY, UNKNOWN",
            )
        })?);
    }
    if changed.contains(&"health_status_reason") {
        let value = after.get("health_status_reason").unwrap_or(&Value::Null);
        let reason: BTreeMap<String, String> = match value {
            Value::Null => BTreeMap::new(),
            Value::Object(map) => map
                .iter()
                .map(|(key, value)| (key.clone(), display_value(value)))
                .collect(),
            other => {
                return Err(DomainError::invalid_field(
                    "health_status_reason",
                    display_value(other),
                    "Wrong type. Expected a dictionary.",
                ))
            }
        };
        change.health_status_reason = Some(reason);
    }
    Ok(change)
}

/// The patchable document of a cluster: what a client sees, so that patches written against
/// a GET answer apply.
pub fn patch_document(cluster: &Cluster, generation: ApiGeneration) -> Value {
    let mut object = Map::new();
    let text = |value: &Option<String>| value.clone().map(Value::String).unwrap_or(Value::Null);
    object.insert("name".to_string(), text(&cluster.name));
    object.insert("node_count".to_string(), Value::from(cluster.node_count));
    object.insert(
        "master_count".to_string(),
        Value::from(cluster.master_count),
    );
    object.insert("discovery_url".to_string(), text(&cluster.discovery_url));
    object.insert(
        "status".to_string(),
        Value::String(cluster.status.as_str().to_string()),
    );
    object.insert("status_reason".to_string(), text(&cluster.status_reason));
    match generation {
        ApiGeneration::Seed => {
            object.insert(
                "baymodel_id".to_string(),
                Value::String(cluster.cluster_template_id.clone()),
            );
            object.insert(
                "bay_create_timeout".to_string(),
                Value::from(cluster.create_timeout),
            );
        }
        ApiGeneration::Current => {
            object.insert(
                "cluster_template_id".to_string(),
                Value::String(cluster.cluster_template_id.clone()),
            );
            object.insert(
                "create_timeout".to_string(),
                Value::from(cluster.create_timeout),
            );
            object.insert("keypair".to_string(), text(&cluster.keypair));
            object.insert(
                "docker_volume_size".to_string(),
                cluster
                    .docker_volume_size
                    .map(Value::from)
                    .unwrap_or(Value::Null),
            );
            object.insert(
                "labels".to_string(),
                Value::Object(
                    cluster
                        .labels
                        .iter()
                        .map(|(key, value)| (key.clone(), Value::String(value.clone())))
                        .collect(),
                ),
            );
            object.insert(
                "master_flavor_id".to_string(),
                text(&cluster.master_flavor_id),
            );
            object.insert("flavor_id".to_string(), text(&cluster.flavor_id));
            object.insert("fixed_network".to_string(), text(&cluster.fixed_network));
            object.insert("fixed_subnet".to_string(), text(&cluster.fixed_subnet));
            object.insert(
                "floating_ip_enabled".to_string(),
                Value::Bool(cluster.floating_ip_enabled),
            );
            object.insert(
                "master_lb_enabled".to_string(),
                Value::Bool(cluster.master_lb_enabled),
            );
            object.insert(
                "health_status".to_string(),
                cluster
                    .health_status
                    .map(|status| Value::String(status.as_str().to_string()))
                    .unwrap_or(Value::Null),
            );
            object.insert(
                "health_status_reason".to_string(),
                Value::Object(
                    cluster
                        .health_status_reason
                        .iter()
                        .map(|(key, value)| (key.clone(), Value::String(value.clone())))
                        .collect(),
                ),
            );
        }
    }
    Value::Object(object)
}

/// Which attributes a cluster patch may name at all (for the generic patch checks).
#[derive(Debug, Clone, Copy)]
pub struct ClusterPatchRules(pub ApiGeneration);

impl crate::patch::PatchTarget for ClusterPatchRules {
    fn is_known(&self, attribute: &str) -> bool {
        // Unknown attributes fall through to "cannot change"; internal ones to their own error.
        !attribute.is_empty()
    }

    fn is_internal(&self, attribute: &str) -> bool {
        INTERNAL_PATCH_PATHS.contains(&attribute)
    }

    fn is_removable(&self, attribute: &str) -> bool {
        !matches!(
            attribute,
            "node_count" | "cluster_template_id" | "baymodel_id" | "master_count"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_template::fixtures;
    use crate::patch::{apply_patch, decode_patch};
    use serde_json::json;

    const NEW_RULES: CountRules = CountRules {
        zero_nodes_allowed: true,
    };
    const OLD_RULES: CountRules = CountRules {
        zero_nodes_allowed: false,
    };

    fn owner() -> ClusterOwner {
        ClusterOwner {
            project_id: "p".to_string(),
            user_id: "u".to_string(),
            now: fixtures::owner().now,
        }
    }

    fn template() -> ClusterTemplate {
        let mut template = fixtures::swarm();
        template.labels.insert("a".to_string(), "1".to_string());
        template.labels.insert("b".to_string(), "2".to_string());
        template.keypair_id = Some("default-key".to_string());
        template.flavor_id = Some("m1.small".to_string());
        template.docker_volume_size = Some(5);
        template
    }

    fn create(body: Value) -> Result<Cluster, DomainError> {
        let input = ClusterInput::decode(&body, ApiGeneration::Current, NEW_RULES)?;
        Cluster::new(&input, &template(), ApiGeneration::Current, owner())
    }

    #[test]
    fn defaults_come_from_the_template() {
        let cluster = create(json!({"cluster_template_id": "swarm"})).unwrap();
        assert_eq!(cluster.keypair.as_deref(), Some("default-key"));
        assert_eq!(cluster.flavor_id.as_deref(), Some("m1.small"));
        assert_eq!(cluster.docker_volume_size, Some(5));
        assert_eq!(
            (
                cluster.master_count,
                cluster.node_count,
                cluster.create_timeout
            ),
            (1, 1, 60)
        );
        assert_eq!(cluster.status, ClusterStatus::CreateInProgress);
        assert_eq!(cluster.operation, Some(Operation::Create));
        assert_eq!(
            cluster.create_deadline,
            Some(owner().now + chrono::Duration::minutes(60))
        );
        assert!(cluster.name.unwrap().ends_with("-cluster"));
        assert_eq!(cluster.labels.len(), 2);
    }

    #[test]
    fn labels_replace_or_merge() {
        let replaced =
            create(json!({"cluster_template_id": "t", "labels": {"b": "9", "c": "3"}})).unwrap();
        assert_eq!(replaced.labels.len(), 2);
        let merged = create(json!({"cluster_template_id": "t", "labels": {"b": "9", "c": "3"}, "merge_labels": true})).unwrap();
        assert_eq!(merged.labels.get("a").map(String::as_str), Some("1"));
        assert_eq!(merged.labels.get("b").map(String::as_str), Some("9"));
        let (overridden, added, skipped) = merged.label_differences(&template().labels);
        assert_eq!(overridden.get("b").map(String::as_str), Some("2"));
        assert_eq!(added.get("c").map(String::as_str), Some("3"));
        assert!(skipped.is_empty());
        let (_, _, skipped) = replaced.label_differences(&template().labels);
        assert_eq!(skipped.get("a").map(String::as_str), Some("1"));
    }

    #[test]
    fn create_bodies_are_checked() {
        for (body, message) in [
            (
                json!({}),
                "cluster_template_id. Value: 'None'. Mandatory field missing.",
            ),
            (
                json!({"cluster_template_id": "t", "name": "1abc"}),
                "^[a-zA-Z][a-zA-Z0-9_.-]*$",
            ),
            (
                json!({"cluster_template_id": "t", "master_count": 0}),
                "greater or equal to 1",
            ),
            (
                json!({"cluster_template_id": "t", "node_count": -1}),
                "greater or equal to 0",
            ),
            (
                json!({"cluster_template_id": "t", "create_timeout": -5}),
                "greater or equal to 0",
            ),
            (
                json!({"cluster_template_id": "t", "node_count": i64::MAX}),
                "lower or equal to 5000",
            ),
            (
                json!({"cluster_template_id": "t", "master_count": 100}),
                "lower or equal to 99",
            ),
            (
                json!({"cluster_template_id": "t", "create_timeout": i64::MAX}),
                "lower or equal to 10080",
            ),
            (
                json!({"cluster_template_id": "t", "docker_volume_size": 1_000_000_000}),
                "lower or equal to 65536",
            ),
            (
                json!({"cluster_template_id": "t", "labels": {"min_node_count": "99999999999"}}),
                "min_node_count",
            ),
            (
                json!({"cluster_template_id": "t", "colour": "x"}),
                "Unknown attribute for argument cluster: colour",
            ),
            (
                json!({"cluster_template_id": "t", "labels": {"flannel_backend": "gre"}}),
                "flannel_backend",
            ),
        ] {
            let error = create(body.clone()).unwrap_err();
            assert!(error.message.contains(message), "{body}: {}", error.message);
        }
        let zero = ClusterInput::decode(
            &json!({"cluster_template_id": "t", "node_count": 0}),
            ApiGeneration::Current,
            OLD_RULES,
        );
        assert!(zero.unwrap_err().message.contains("zero is not supported"));
        assert!(ClusterInput::decode(
            &json!({"cluster_template_id": "t", "node_count": 0}),
            ApiGeneration::Current,
            NEW_RULES
        )
        .is_ok());
    }

    #[test]
    fn an_empty_discovery_url_means_none() {
        let cluster = create(json!({"cluster_template_id": "t", "discovery_url": ""})).unwrap();
        assert_eq!(cluster.discovery_url, None);
        let given = create(
            json!({"cluster_template_id": "t", "discovery_url": "https://discovery.example/x"}),
        )
        .unwrap();
        assert_eq!(
            given.discovery_url.as_deref(),
            Some("https://discovery.example/x")
        );
    }

    #[test]
    fn bays_use_the_2016_names() {
        let input = ClusterInput::decode(
            &json!({"name": "Bay One", "baymodel_id": "bm", "node_count": 2, "bay_create_timeout": 0}),
            ApiGeneration::Seed,
            OLD_RULES,
        )
        .unwrap();
        let bay = Cluster::new(&input, &template(), ApiGeneration::Seed, owner()).unwrap();
        assert_eq!(bay.name.as_deref(), Some("Bay One"));
        assert_eq!(bay.create_timeout, 0);
        assert_eq!(bay.create_deadline, None);
        assert!(ClusterInput::decode(
            &json!({"baymodel_id": "bm", "labels": {}}),
            ApiGeneration::Seed,
            OLD_RULES
        )
        .is_err());
        assert!(ClusterInput::decode(
            &json!({"baymodel_id": "bm", "node_count": 0}),
            ApiGeneration::Seed,
            NEW_RULES
        )
        .is_err());
    }

    fn patch(cluster: &Cluster, operations: Value) -> Result<ClusterChange, DomainError> {
        let operations = decode_patch(&operations)?;
        let before = patch_document(cluster, ApiGeneration::Current);
        let after = apply_patch(
            &before,
            &operations,
            &ClusterPatchRules(ApiGeneration::Current),
            ApiGeneration::Current,
        )?;
        decode_cluster_patch(
            &before,
            &after,
            &operations,
            ApiGeneration::Current,
            NEW_RULES,
        )
    }

    #[test]
    fn patches_may_change_only_the_node_count_and_health() {
        let cluster = create(json!({"cluster_template_id": "t"})).unwrap();
        let change = patch(
            &cluster,
            json!([{"op": "replace", "path": "/node_count", "value": 3}]),
        )
        .unwrap();
        assert_eq!(change.node_count, Some(3));
        let health = patch(&cluster, json!([{"op": "replace", "path": "/health_status", "value": "UNHEALTHY"},
                                            {"op": "replace", "path": "/health_status_reason", "value": {"api": "down"}}])).unwrap();
        assert_eq!(health.health_status, Some(HealthStatus::Unhealthy));
        assert_eq!(health.health_status_reason.unwrap()["api"], "down");
        let refused = patch(&cluster, json!([{"op": "replace", "path": "/name", "value": "x"},
                                             {"op": "replace", "path": "/master_count", "value": 3}])).unwrap_err();
        assert_eq!(
            refused.message,
            "cannot change cluster property(ies) master_count, name."
        );
        let internal = patch(
            &cluster,
            json!([{"op": "replace", "path": "/api_address", "value": "x"}]),
        )
        .unwrap_err();
        assert!(internal.message.contains("internal attribute"));
        let labels = patch(
            &cluster,
            json!([{"op": "add", "path": "/labels/x", "value": "1"}]),
        )
        .unwrap_err();
        assert!(labels
            .message
            .contains("cannot change cluster property(ies) labels"));
        let bad_health = patch(
            &cluster,
            json!([{"op": "replace", "path": "/health_status", "value": "OK"}]),
        )
        .unwrap_err();
        assert!(bad_health.message.contains("HEALTHY, UNHEALTHY, UNKNOWN"));
    }
}
