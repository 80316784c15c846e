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
use magnum_core::labels::Labels;
use std::collections::BTreeMap;

/// How a cluster is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterViewKind {
    /// The plain list.
    Summary,
    /// `/detail` lists and single GETs.
    Full,
}

/// A cluster as one API generation shows it, serialized straight from the row with its
/// attributes in alphabetical order. `template_labels` (for the label differences) and
/// `version_113` (whether `cluster_id` replaces `stack_id`) apply to the current API only;
/// `with_faults` adds the `faults` of a failed cluster (single GETs).
#[derive(Debug, Clone, Copy)]
pub struct ClusterView<'a> {
    pub cluster: &'a Cluster,
    pub generation: ApiGeneration,
    pub kind: ClusterViewKind,
    pub base: &'a str,
    pub template_labels: Option<&'a Labels>,
    pub version_113: bool,
    pub with_faults: bool,
}

/// Builds a [`ClusterView`].
pub fn cluster_view<'a>(
    cluster: &'a Cluster,
    generation: ApiGeneration,
    kind: ClusterViewKind,
    base: &'a str,
    template_labels: Option<&'a Labels>,
    version_113: bool,
    with_faults: bool,
) -> ClusterView<'a> {
    ClusterView {
        cluster,
        generation,
        kind,
        base,
        template_labels,
        version_113,
        with_faults,
    }
}

/// One attribute's value in a [`ClusterView`].
enum Attribute<'a> {
    Text(&'a str),
    OptionalText(Option<&'a str>),
    OwnedText(Option<String>),
    Integer(i64),
    OptionalInteger(Option<i64>),
    Boolean(bool),
    Texts(&'a [String]),
    TextMap(&'a BTreeMap<String, String>),
    OwnedTextMap(BTreeMap<String, String>),
    Faults(&'a str),
    ItemLinks(Links<'a>),
}

impl Serialize for Attribute<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Attribute::Text(text) => serializer.serialize_str(text),
            Attribute::OptionalText(text) => text.serialize(serializer),
            Attribute::OwnedText(text) => text.serialize(serializer),
            Attribute::Integer(number) => serializer.serialize_i64(*number),
            Attribute::OptionalInteger(number) => number.serialize(serializer),
            Attribute::Boolean(flag) => serializer.serialize_bool(*flag),
            Attribute::Texts(texts) => texts.serialize(serializer),
            Attribute::TextMap(map) => map.serialize(serializer),
            Attribute::OwnedTextMap(map) => map.serialize(serializer),
            Attribute::Faults(reason) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("default-master", reason)?;
                map.serialize_entry("default-worker", reason)?;
                map.end()
            }
            Attribute::ItemLinks(links) => links.serialize(serializer),
        }
    }
}

impl<'a> ClusterView<'a> {
    /// The attributes shown, unordered.
    fn attributes(&self) -> Vec<(&'static str, Attribute<'a>)> {
        use Attribute::*;
        let cluster = self.cluster;
        let full = self.kind == ClusterViewKind::Full;
        let mut shown: Vec<(&'static str, Attribute<'a>)> = Vec::with_capacity(40);
        shown.push(("uuid", Text(&cluster.uuid)));
        shown.push(("name", OptionalText(cluster.name.as_deref())));
        shown.push((
            "node_count",
            Integer(cluster.node_count + cluster.extra_worker_count),
        ));
        shown.push(("master_count", Integer(cluster.master_count)));
        shown.push(("status", Text(cluster.status.as_str())));
        let created_at = || OwnedText(Some(format_timestamp(&cluster.created_at)));
        let updated_at = || OwnedText(cluster.updated_at.as_ref().map(format_timestamp));
        match self.generation {
            ApiGeneration::Seed => {
                shown.push(("baymodel_id", Text(&cluster.cluster_template_id)));
                shown.push(("bay_create_timeout", Integer(cluster.create_timeout)));
                shown.push(("stack_id", OptionalText(cluster.stack_id.as_deref())));
                if full {
                    shown.push((
                        "discovery_url",
                        OptionalText(cluster.discovery_url.as_deref()),
                    ));
                    shown.push((
                        "status_reason",
                        OptionalText(cluster.status_reason.as_deref()),
                    ));
                    shown.push(("api_address", OptionalText(cluster.api_address.as_deref())));
                    shown.push(("master_addresses", Texts(&cluster.master_addresses)));
                    shown.push(("node_addresses", Texts(&cluster.node_addresses)));
                    shown.push(("created_at", created_at()));
                    shown.push(("updated_at", updated_at()));
                }
            }
            ApiGeneration::Current => {
                shown.push(("cluster_template_id", Text(&cluster.cluster_template_id)));
                shown.push(("keypair", OptionalText(cluster.keypair.as_deref())));
                shown.push((
                    "docker_volume_size",
                    OptionalInteger(cluster.docker_volume_size),
                ));
                shown.push(("labels", TextMap(&cluster.labels)));
                shown.push((
                    "master_flavor_id",
                    OptionalText(cluster.master_flavor_id.as_deref()),
                ));
                shown.push(("flavor_id", OptionalText(cluster.flavor_id.as_deref())));
                shown.push(("create_timeout", Integer(cluster.create_timeout)));
                shown.push((
                    "health_status",
                    OptionalText(cluster.health_status.map(|status| status.as_str())),
                ));
                shown.push((
                    if self.version_113 {
                        "cluster_id"
                    } else {
                        "stack_id"
                    },
                    OptionalText(cluster.stack_id.as_deref()),
                ));
                if full {
                    shown.push((
                        "discovery_url",
                        OptionalText(cluster.discovery_url.as_deref()),
                    ));
                    shown.push((
                        "status_reason",
                        OptionalText(cluster.status_reason.as_deref()),
                    ));
                    shown.push((
                        "health_status_reason",
                        TextMap(&cluster.health_status_reason),
                    ));
                    shown.push(("api_address", OptionalText(cluster.api_address.as_deref())));
                    shown.push(("master_addresses", Texts(&cluster.master_addresses)));
                    shown.push(("node_addresses", Texts(&cluster.node_addresses)));
                    shown.push(("coe_version", OptionalText(cluster.coe_version.as_deref())));
                    shown.push((
                        "container_version",
                        OptionalText(cluster.container_version.as_deref()),
                    ));
                    shown.push((
                        "fixed_network",
                        OptionalText(cluster.fixed_network.as_deref()),
                    ));
                    shown.push((
                        "fixed_subnet",
                        OptionalText(cluster.fixed_subnet.as_deref()),
                    ));
                    shown.push(("floating_ip_enabled", Boolean(cluster.floating_ip_enabled)));
                    shown.push(("master_lb_enabled", Boolean(cluster.master_lb_enabled)));
                    shown.push(("project_id", Text(&cluster.project_id)));
                    shown.push(("user_id", Text(&cluster.user_id)));
                    shown.push(("created_at", created_at()));
                    shown.push(("updated_at", updated_at()));
                    if let Some(template_labels) = self.template_labels {
                        let (overridden, added, skipped) =
                            cluster.label_differences(template_labels);
                        shown.push(("labels_overridden", OwnedTextMap(overridden)));
                        shown.push(("labels_added", OwnedTextMap(added)));
                        shown.push(("labels_skipped", OwnedTextMap(skipped)));
                    }
                    if self.with_faults && cluster.status.is_failed() {
                        shown.push((
                            "faults",
                            Faults(cluster.status_reason.as_deref().unwrap_or_default()),
                        ));
                    }
                }
            }
        }
        shown.push((
            "links",
            ItemLinks(Links {
                base: self.base,
                collection: match self.generation {
                    ApiGeneration::Seed => "bays",
                    ApiGeneration::Current => "clusters",
                },
                uuid: &cluster.uuid,
            }),
        ));
        shown
    }
}

impl Serialize for ClusterView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut attributes = self.attributes();
        attributes.sort_unstable_by_key(|(name, _)| *name);
        let mut map = serializer.serialize_map(Some(attributes.len()))?;
        for (name, value) in &attributes {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}
