//! JSON representations of resources, per API generation, serialized straight from the
//! stored rows (no intermediate JSON tree: a 100-item list is the hot path of the API).

use magnum_core::cluster_template::{ClusterTemplate, FieldKind, FieldSpec, FIELDS};
use magnum_core::ApiGeneration;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// The `links` of an item: self (with `/v1`) and bookmark (without).
#[derive(Debug, Clone, Copy)]
pub struct Links<'a> {
    pub base: &'a str,
    pub collection: &'a str,
    pub uuid: &'a str,
}

impl Serialize for Links<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Link {
            href: String,
            rel: &'static str,
        }
        let mut links = serializer.serialize_seq(Some(2))?;
        links.serialize_element(&Link {
            href: format!("{}/v1/{}/{}", self.base, self.collection, self.uuid),
            rel: "self",
        })?;
        links.serialize_element(&Link {
            href: format!("{}/{}/{}", self.base, self.collection, self.uuid),
            rel: "bookmark",
        })?;
        links.end()
    }
}

/// Attributes the 2016 plain list shows for a baymodel.
const SEED_SUMMARY: [&str; 5] = ["uuid", "name", "image_id", "apiserver_port", "coe"];

/// A cluster template as one API generation shows it.
#[derive(Debug, Clone, Copy)]
pub struct TemplateView<'a> {
    pub template: &'a ClusterTemplate,
    pub generation: ApiGeneration,
    pub base: &'a str,
    /// The 2016 plain-list view (the current API lists full objects).
    pub summary: bool,
}

impl TemplateView<'_> {
    fn shows(&self, spec: &FieldSpec) -> bool {
        if !spec.availability.includes(self.generation) {
            return false;
        }
        match (self.generation, spec.kind) {
            (_, FieldKind::Internal) => match spec.name {
                "created_at" | "updated_at" => !self.summary,
                "project_id" | "user_id" => self.generation == ApiGeneration::Current,
                _ => false,
            },
            (ApiGeneration::Seed, _) if self.summary => SEED_SUMMARY.contains(&spec.name),
            _ => true,
        }
    }

    /// The collection the links point into.
    pub fn collection(generation: ApiGeneration) -> &'static str {
        match generation {
            ApiGeneration::Seed => "baymodels",
            ApiGeneration::Current => "clustertemplates",
        }
    }
}

impl Serialize for TemplateView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for spec in FIELDS.iter().filter(|spec| self.shows(spec)) {
            map.serialize_entry(spec.name, &self.template.field_ref(spec.name))?;
        }
        map.serialize_entry(
            "links",
            &Links {
                base: self.base,
                collection: Self::collection(self.generation),
                uuid: &self.template.uuid,
            },
        )?;
        map.end()
    }
}

/// A page of a collection: `{"<key>": [items], "next": url}` (`next` only when given).
#[derive(Debug)]
pub struct Collection<'a, T> {
    pub key: &'a str,
    pub items: &'a [T],
    pub next: Option<String>,
}

impl<T: Serialize> Serialize for Collection<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(self.key, self.items)?;
        if let Some(next) = &self.next {
            map.serialize_entry("next", next)?;
        }
        map.end()
    }
}

use magnum_core::cluster::Cluster;
use magnum_core::cluster_template::format_timestamp;
use serde_json::{json, Map, Value};

fn text(value: &Option<String>) -> Value {
    value.clone().map(Value::String).unwrap_or(Value::Null)
}

fn string_map(map: &std::collections::BTreeMap<String, String>) -> Value {
    Value::Object(
        map.iter()
            .map(|(key, value)| (key.clone(), Value::String(value.clone())))
            .collect(),
    )
}

/// How a cluster is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterViewKind {
    /// The plain list.
    Summary,
    /// `/detail` lists and single GETs.
    Full,
}

/// A cluster as one API generation shows it. `template_labels` (for the label
/// differences) and `version_113` (whether `cluster_id` replaces `stack_id`) apply to the
/// current API only.
pub fn cluster_view(
    cluster: &Cluster,
    generation: ApiGeneration,
    kind: ClusterViewKind,
    base: &str,
    template_labels: Option<&magnum_core::labels::Labels>,
    version_113: bool,
    with_faults: bool,
) -> Value {
    let mut object = Map::new();
    let mut put = |key: &str, value: Value| {
        object.insert(key.to_string(), value);
    };
    put("uuid", Value::String(cluster.uuid.clone()));
    put("name", text(&cluster.name));
    put(
        "node_count",
        json!(cluster.node_count + cluster.extra_worker_count),
    );
    put("master_count", json!(cluster.master_count));
    put("status", Value::String(cluster.status.as_str().to_string()));
    put("discovery_url", text(&cluster.discovery_url));
    match generation {
        ApiGeneration::Seed => {
            put(
                "baymodel_id",
                Value::String(cluster.cluster_template_id.clone()),
            );
            put("bay_create_timeout", json!(cluster.create_timeout));
            put("stack_id", text(&cluster.stack_id));
            if kind == ClusterViewKind::Full {
                put("status_reason", text(&cluster.status_reason));
                put("api_address", text(&cluster.api_address));
                put("master_addresses", json!(cluster.master_addresses));
                put("node_addresses", json!(cluster.node_addresses));
                put(
                    "created_at",
                    Value::String(format_timestamp(&cluster.created_at)),
                );
                put(
                    "updated_at",
                    cluster
                        .updated_at
                        .as_ref()
                        .map(|at| Value::String(format_timestamp(at)))
                        .unwrap_or(Value::Null),
                );
            } else {
                object.remove("discovery_url");
            }
        }
        ApiGeneration::Current => {
            put(
                "cluster_template_id",
                Value::String(cluster.cluster_template_id.clone()),
            );
            put("keypair", text(&cluster.keypair));
            put(
                "docker_volume_size",
                cluster
                    .docker_volume_size
                    .map(Value::from)
                    .unwrap_or(Value::Null),
            );
            put("labels", string_map(&cluster.labels));
            put("master_flavor_id", text(&cluster.master_flavor_id));
            put("flavor_id", text(&cluster.flavor_id));
            put("create_timeout", json!(cluster.create_timeout));
            put(
                "health_status",
                cluster
                    .health_status
                    .map(|status| Value::String(status.as_str().to_string()))
                    .unwrap_or(Value::Null),
            );
            if version_113 {
                put("cluster_id", text(&cluster.stack_id));
            } else {
                put("stack_id", text(&cluster.stack_id));
            }
            if kind == ClusterViewKind::Full {
                put("status_reason", text(&cluster.status_reason));
                put(
                    "health_status_reason",
                    string_map(&cluster.health_status_reason),
                );
                put("api_address", text(&cluster.api_address));
                put("master_addresses", json!(cluster.master_addresses));
                put("node_addresses", json!(cluster.node_addresses));
                put("coe_version", text(&cluster.coe_version));
                put("container_version", text(&cluster.container_version));
                put("fixed_network", text(&cluster.fixed_network));
                put("fixed_subnet", text(&cluster.fixed_subnet));
                put(
                    "floating_ip_enabled",
                    Value::Bool(cluster.floating_ip_enabled),
                );
                put("master_lb_enabled", Value::Bool(cluster.master_lb_enabled));
                put("project_id", Value::String(cluster.project_id.clone()));
                put("user_id", Value::String(cluster.user_id.clone()));
                put(
                    "created_at",
                    Value::String(format_timestamp(&cluster.created_at)),
                );
                put(
                    "updated_at",
                    cluster
                        .updated_at
                        .as_ref()
                        .map(|at| Value::String(format_timestamp(at)))
                        .unwrap_or(Value::Null),
                );
                if let Some(template_labels) = template_labels {
                    let (overridden, added, skipped) = cluster.label_differences(template_labels);
                    put("labels_overridden", string_map(&overridden));
                    put("labels_added", string_map(&added));
                    put("labels_skipped", string_map(&skipped));
                }
                if with_faults && cluster.status.is_failed() {
                    let reason = cluster.status_reason.clone().unwrap_or_default();
                    put(
                        "faults",
                        json!({"default-master": reason, "default-worker": reason}),
                    );
                }
            } else {
                object.remove("discovery_url");
            }
        }
    }
    let collection = match generation {
        ApiGeneration::Seed => "bays",
        ApiGeneration::Current => "clusters",
    };
    object.insert(
        "links".to_string(),
        serde_json::to_value(Links {
            base,
            collection,
            uuid: &cluster.uuid,
        })
        .unwrap_or(Value::Null),
    );
    Value::Object(object)
}
