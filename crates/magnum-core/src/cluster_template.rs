//! The cluster template (2016 name: baymodel): what a cluster is built from.
//!
//! One table, [`FIELDS`], describes every attribute: its type and bounds, which API generation
//! knows it, whether it is mandatory and whether a patch may remove it. Decoding of create
//! bodies, patch checks and the patchable view are all driven by that table, so the rules
//! cannot drift apart.

use crate::coe::{check_volume_driver, Coe, TemplateRules};
use crate::fields::{decode_bool, decode_int, decode_string, decode_uuid, display_value};
use crate::labels::{decode_labels, validate_labels, Labels};
use crate::{names, ApiGeneration, DomainError};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::net::Ipv4Addr;

/// The stored cluster template.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterTemplate {
    /// Database id; never shown to users. 0 until stored.
    pub id: i64,
    /// Incremented by every stored change; a write that names an old revision is refused,
    /// so concurrent patches cannot overwrite each other.
    pub revision: i64,
    pub uuid: String,
    pub name: Option<String>,
    pub project_id: String,
    pub user_id: String,
    pub coe: Coe,
    pub image_id: String,
    pub flavor_id: Option<String>,
    pub master_flavor_id: Option<String>,
    pub keypair_id: Option<String>,
    pub dns_nameserver: Option<String>,
    pub external_network_id: Option<String>,
    pub fixed_network: Option<String>,
    pub fixed_subnet: Option<String>,
    pub network_driver: Option<String>,
    pub volume_driver: Option<String>,
    pub apiserver_port: Option<i64>,
    pub docker_volume_size: Option<i64>,
    pub docker_storage_driver: Option<String>,
    pub ssh_authorized_key: Option<String>,
    pub cluster_distro: Option<String>,
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
    pub registry_enabled: bool,
    pub insecure_registry: Option<String>,
    pub labels: Labels,
    pub tls_disabled: bool,
    pub public: bool,
    pub server_type: String,
    pub master_lb_enabled: bool,
    pub floating_ip_enabled: bool,
    pub hidden: bool,
    pub tags: Option<String>,
    pub driver: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// How an attribute is typed on input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A string of `min..=max` characters.
    Text {
        min: usize,
        max: usize,
    },
    /// An integer within optional bounds.
    Integer {
        min: Option<i64>,
        max: Option<i64>,
    },
    Boolean,
    Labels,
    Uuid,
    /// Set by the service; a patch may never touch it.
    Internal,
}

/// Which API generation knows an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Both,
    SeedOnly,
    CurrentOnly,
}

impl Availability {
    pub fn includes(self, generation: ApiGeneration) -> bool {
        matches!(
            (self, generation),
            (Availability::Both, _)
                | (Availability::SeedOnly, ApiGeneration::Seed)
                | (Availability::CurrentOnly, ApiGeneration::Current)
        )
    }
}

/// One attribute of the template and its rules.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: FieldKind,
    pub availability: Availability,
    /// Whether a current-API patch may remove it (mandatory ones never can).
    pub removable: bool,
}

const STRING_255: FieldKind = FieldKind::Text { min: 1, max: 255 };

const fn optional(name: &'static str, kind: FieldKind, availability: Availability) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        availability,
        removable: true,
    }
}

const fn fixed(name: &'static str, kind: FieldKind, availability: Availability) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        availability,
        removable: false,
    }
}

/// Every attribute of a cluster template, in the order views list them.
pub const FIELDS: &[FieldSpec] = &[
    fixed("uuid", FieldKind::Uuid, Availability::Both),
    optional("name", STRING_255, Availability::Both),
    fixed("coe", STRING_255, Availability::Both),
    fixed("image_id", STRING_255, Availability::Both),
    optional("flavor_id", STRING_255, Availability::Both),
    optional("master_flavor_id", STRING_255, Availability::Both),
    optional("keypair_id", STRING_255, Availability::Both),
    optional("dns_nameserver", STRING_255, Availability::Both),
    fixed("external_network_id", STRING_255, Availability::Both),
    optional("fixed_network", STRING_255, Availability::Both),
    optional("fixed_subnet", STRING_255, Availability::CurrentOnly),
    fixed("network_driver", STRING_255, Availability::Both),
    optional("volume_driver", STRING_255, Availability::Both),
    optional(
        "apiserver_port",
        FieldKind::Integer {
            min: Some(1024),
            max: Some(65535),
        },
        Availability::Both,
    ),
    optional(
        "docker_volume_size",
        FieldKind::Integer {
            min: Some(1),
            max: Some(crate::limits::MAX_DOCKER_VOLUME_SIZE_GB),
        },
        Availability::Both,
    ),
    optional(
        "docker_storage_driver",
        STRING_255,
        Availability::CurrentOnly,
    ),
    optional(
        "ssh_authorized_key",
        FieldKind::Text { min: 1, max: 65535 },
        Availability::SeedOnly,
    ),
    fixed("cluster_distro", STRING_255, Availability::Both),
    optional("http_proxy", STRING_255, Availability::Both),
    optional("https_proxy", STRING_255, Availability::Both),
    optional("no_proxy", STRING_255, Availability::Both),
    fixed("registry_enabled", FieldKind::Boolean, Availability::Both),
    optional("insecure_registry", STRING_255, Availability::CurrentOnly),
    optional("labels", FieldKind::Labels, Availability::Both),
    fixed("tls_disabled", FieldKind::Boolean, Availability::Both),
    fixed("public", FieldKind::Boolean, Availability::Both),
    fixed("server_type", STRING_255, Availability::Both),
    optional(
        "master_lb_enabled",
        FieldKind::Boolean,
        Availability::CurrentOnly,
    ),
    optional(
        "floating_ip_enabled",
        FieldKind::Boolean,
        Availability::CurrentOnly,
    ),
    fixed("hidden", FieldKind::Boolean, Availability::CurrentOnly),
    optional(
        "tags",
        FieldKind::Text { min: 0, max: 255 },
        Availability::CurrentOnly,
    ),
    optional("driver", STRING_255, Availability::CurrentOnly),
    fixed("project_id", FieldKind::Internal, Availability::Both),
    fixed("user_id", FieldKind::Internal, Availability::Both),
    fixed("id", FieldKind::Internal, Availability::Both),
    fixed("links", FieldKind::Internal, Availability::Both),
    fixed("created_at", FieldKind::Internal, Availability::Both),
    fixed("updated_at", FieldKind::Internal, Availability::Both),
];

impl FieldSpec {
    /// Whether the attribute must be present on create in `generation`.
    pub fn is_mandatory(&self, generation: ApiGeneration) -> bool {
        match self.name {
            "coe" | "image_id" => true,
            "keypair_id" => generation == ApiGeneration::Seed,
            _ => false,
        }
    }

    /// Whether a patch may remove the attribute in `generation`.
    pub fn is_removable(&self, generation: ApiGeneration) -> bool {
        if self.is_mandatory(generation) || self.kind == FieldKind::Internal {
            return false;
        }
        match generation {
            // The seed only protected its mandatory attributes.
            ApiGeneration::Seed => self.name != "uuid",
            ApiGeneration::Current => self.removable,
        }
    }
}

/// Looks up an attribute known to `generation`.
pub fn field_spec(name: &str, generation: ApiGeneration) -> Option<&'static FieldSpec> {
    FIELDS
        .iter()
        .find(|spec| spec.name == name && spec.availability.includes(generation))
}

/// A decoded attribute value; `Null` resets the attribute to its default.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Null,
    Text(String),
    Integer(i64),
    Boolean(bool),
    Labels(Labels),
}

/// The attributes of a create body or of a patched document, type-checked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TemplateInput {
    values: Vec<(&'static str, FieldValue)>,
}

impl TemplateInput {
    /// Type-checks a JSON object against [`FIELDS`]. Unknown and internal attributes are
    /// refused, as upstream's request decoder does.
    pub fn decode(body: &Value, generation: ApiGeneration) -> Result<TemplateInput, DomainError> {
        let Value::Object(object) = body else {
            return Err(DomainError::invalid(
                "Invalid input: the request body must be a JSON object of cluster template attributes.",
            ));
        };
        Self::decode_object(object, generation, false)
    }

    fn decode_object(
        object: &Map<String, Value>,
        generation: ApiGeneration,
        allow_internal: bool,
    ) -> Result<TemplateInput, DomainError> {
        let argument = match generation {
            ApiGeneration::Seed => "baymodel",
            ApiGeneration::Current => "cluster_template",
        };
        let mut values = Vec::with_capacity(object.len());
        for (key, value) in object {
            let spec = field_spec(key, generation)
                .filter(|spec| allow_internal || spec.kind != FieldKind::Internal)
                .ok_or_else(|| {
                    DomainError::invalid(format!(
                        "Unknown attribute for argument {argument}: {key}"
                    ))
                })?;
            let decoded = match spec.kind {
                FieldKind::Internal => continue,
                FieldKind::Text { min, max } => {
                    decode_string(spec.name, value, min, max)?.map(FieldValue::Text)
                }
                FieldKind::Integer { min, max } => {
                    decode_int(spec.name, value, min, max)?.map(FieldValue::Integer)
                }
                FieldKind::Boolean => decode_bool(spec.name, value)?.map(FieldValue::Boolean),
                FieldKind::Uuid => decode_uuid(spec.name, value)?.map(FieldValue::Text),
                FieldKind::Labels => match value {
                    Value::Null => None,
                    other => Some(FieldValue::Labels(decode_labels(other, generation)?)),
                },
            };
            values.push((spec.name, decoded.unwrap_or(FieldValue::Null)));
        }
        Ok(TemplateInput { values })
    }

    /// The value given for `name`, if the attribute was present (possibly as `Null`).
    pub fn get(&self, name: &str) -> Option<&FieldValue> {
        self.values
            .iter()
            .find(|(field_name, _)| *field_name == name)
            .map(|(_, value)| value)
    }

    /// True when `name` was given with a non-null value.
    pub fn has_value(&self, name: &str) -> bool {
        matches!(self.get(name), Some(value) if *value != FieldValue::Null)
    }
}

/// Who is creating a template and when; the parts of a new row that don't come from the body.
#[derive(Debug, Clone)]
pub struct Ownership {
    pub project_id: String,
    pub user_id: String,
    pub now: DateTime<Utc>,
}

fn text_value(value: &FieldValue) -> Option<String> {
    match value {
        FieldValue::Text(text) => Some(text.clone()),
        _ => None,
    }
}

fn integer_value(value: &FieldValue) -> Option<i64> {
    match value {
        FieldValue::Integer(number) => Some(*number),
        _ => None,
    }
}

fn boolean_value(value: &FieldValue, default: bool) -> bool {
    match value {
        FieldValue::Boolean(flag) => *flag,
        _ => default,
    }
}

impl ClusterTemplate {
    /// Builds a new template from a decoded create body: mandatory attributes checked,
    /// defaults applied, a name generated where the current API does so.
    pub fn from_input(
        input: &TemplateInput,
        generation: ApiGeneration,
        owner: Ownership,
        rules: &TemplateRules,
    ) -> Result<ClusterTemplate, DomainError> {
        for spec in FIELDS.iter().filter(|spec| spec.is_mandatory(generation)) {
            if !input.has_value(spec.name) {
                return Err(DomainError::invalid_field(
                    spec.name,
                    "None",
                    "Mandatory field missing.",
                ));
            }
        }
        let coe_text = input.get("coe").and_then(text_value).unwrap_or_default();
        let coe = Coe::parse_for(&coe_text, generation)?;
        let mut template = ClusterTemplate {
            id: 0,
            revision: 0,
            uuid: uuid::Uuid::new_v4().to_string(),
            name: None,
            project_id: owner.project_id,
            user_id: owner.user_id,
            coe,
            image_id: String::new(),
            flavor_id: None,
            master_flavor_id: None,
            keypair_id: None,
            dns_nameserver: None,
            external_network_id: None,
            fixed_network: None,
            fixed_subnet: None,
            network_driver: None,
            volume_driver: None,
            apiserver_port: None,
            docker_volume_size: None,
            docker_storage_driver: None,
            ssh_authorized_key: None,
            cluster_distro: None,
            http_proxy: None,
            https_proxy: None,
            no_proxy: None,
            registry_enabled: false,
            insecure_registry: None,
            labels: Labels::new(),
            tls_disabled: false,
            public: false,
            server_type: "vm".to_string(),
            master_lb_enabled: false,
            floating_ip_enabled: true,
            hidden: false,
            tags: None,
            driver: None,
            created_at: owner.now,
            updated_at: None,
        };
        template.apply_input(input, generation)?;
        // The distro always comes from the image, never from the request.
        template.cluster_distro = None;
        if template.name.is_none() && generation == ApiGeneration::Current {
            template.name = Some(names::generate_name("template"));
        }
        template.fill_defaults_and_validate(generation, rules)?;
        Ok(template)
    }

    /// Overwrites the attributes present in `input`; `Null` resets one to its default.
    pub fn apply_input(
        &mut self,
        input: &TemplateInput,
        generation: ApiGeneration,
    ) -> Result<(), DomainError> {
        for (name, value) in &input.values {
            match *name {
                "uuid" => {
                    if let Some(uuid) = text_value(value) {
                        self.uuid = uuid;
                    }
                }
                "name" => self.name = text_value(value),
                "coe" => {
                    let text = text_value(value).ok_or_else(|| {
                        DomainError::invalid_field("coe", "None", "Mandatory field missing.")
                    })?;
                    self.coe = Coe::parse_for(&text, generation)?;
                }
                "image_id" => {
                    self.image_id = text_value(value).ok_or_else(|| {
                        DomainError::invalid_field("image_id", "None", "Mandatory field missing.")
                    })?
                }
                "flavor_id" => self.flavor_id = text_value(value),
                "master_flavor_id" => self.master_flavor_id = text_value(value),
                "keypair_id" => self.keypair_id = text_value(value),
                "dns_nameserver" => self.dns_nameserver = text_value(value),
                "external_network_id" => self.external_network_id = text_value(value),
                "fixed_network" => self.fixed_network = text_value(value),
                "fixed_subnet" => self.fixed_subnet = text_value(value),
                "network_driver" => self.network_driver = text_value(value),
                "volume_driver" => self.volume_driver = text_value(value),
                "apiserver_port" => self.apiserver_port = integer_value(value),
                "docker_volume_size" => self.docker_volume_size = integer_value(value),
                "docker_storage_driver" => self.docker_storage_driver = text_value(value),
                "ssh_authorized_key" => self.ssh_authorized_key = text_value(value),
                "cluster_distro" => self.cluster_distro = text_value(value),
                "http_proxy" => self.http_proxy = text_value(value),
                "https_proxy" => self.https_proxy = text_value(value),
                "no_proxy" => self.no_proxy = text_value(value),
                "registry_enabled" => self.registry_enabled = boolean_value(value, false),
                "insecure_registry" => self.insecure_registry = text_value(value),
                "labels" => {
                    self.labels = match value {
                        FieldValue::Labels(labels) => labels.clone(),
                        _ => Labels::new(),
                    }
                }
                "tls_disabled" => self.tls_disabled = boolean_value(value, false),
                "public" => self.public = boolean_value(value, false),
                "server_type" => {
                    self.server_type = text_value(value).unwrap_or_else(|| "vm".to_string())
                }
                "master_lb_enabled" => self.master_lb_enabled = boolean_value(value, false),
                "floating_ip_enabled" => self.floating_ip_enabled = boolean_value(value, true),
                "hidden" => self.hidden = boolean_value(value, false),
                "tags" => self.tags = text_value(value),
                "driver" => self.driver = text_value(value),
                _ => {}
            }
        }
        if generation == ApiGeneration::Seed && self.keypair_id.is_none() {
            return Err(DomainError::invalid_field(
                "keypair_id",
                "None",
                "Mandatory field missing.",
            ));
        }
        Ok(())
    }

    /// Applies the COE's default network driver and checks every rule that needs no lookup:
    /// network and volume drivers, server type, DNS servers, labels, storage driver.
    pub fn fill_defaults_and_validate(
        &mut self,
        generation: ApiGeneration,
        rules: &TemplateRules,
    ) -> Result<(), DomainError> {
        if self.network_driver.is_none() {
            self.network_driver = Some(rules.network_settings(self.coe).default.clone());
        }
        if let Some(network_driver) = &self.network_driver {
            rules.check_network_driver(self.coe, network_driver, generation)?;
        }
        if let Some(volume_driver) = &self.volume_driver {
            check_volume_driver(self.coe, volume_driver)?;
        }
        if generation == ApiGeneration::Current
            && !["vm", "bm"].contains(&self.server_type.as_str())
        {
            return Err(DomainError::invalid_field(
                "server_type",
                &self.server_type,
                "Value should be one of: vm, bm",
            ));
        }
        if let Some(dns) = &self.dns_nameserver {
            check_dns_nameserver(dns, generation)?;
        }
        validate_labels(&self.labels)?;
        if self.docker_storage_driver.as_deref() == Some("devicemapper") {
            let size = self.docker_volume_size.unwrap_or(0);
            if size < 3 {
                return Err(DomainError::invalid(format!(
                    "docker volume size {} GB is not valid, expecting minimum value 3GB for devicemapper storage driver.",
                    self.docker_volume_size
                        .map(|size| size.to_string())
                        .unwrap_or_else(|| "None".to_string())
                )));
            }
        }
        Ok(())
    }

    /// One attribute's value by reference (`Text(None)` for names that are not attributes).
    pub fn field_ref(&self, name: &str) -> FieldRef<'_> {
        fn text(value: &Option<String>) -> FieldRef<'_> {
            FieldRef::Text(value.as_deref())
        }
        match name {
            "uuid" => FieldRef::Text(Some(&self.uuid)),
            "name" => text(&self.name),
            "coe" => FieldRef::Text(Some(self.coe.as_str())),
            "image_id" => FieldRef::Text(Some(&self.image_id)),
            "flavor_id" => text(&self.flavor_id),
            "master_flavor_id" => text(&self.master_flavor_id),
            "keypair_id" => text(&self.keypair_id),
            "dns_nameserver" => text(&self.dns_nameserver),
            "external_network_id" => text(&self.external_network_id),
            "fixed_network" => text(&self.fixed_network),
            "fixed_subnet" => text(&self.fixed_subnet),
            "network_driver" => text(&self.network_driver),
            "volume_driver" => text(&self.volume_driver),
            "apiserver_port" => FieldRef::Integer(self.apiserver_port),
            "docker_volume_size" => FieldRef::Integer(self.docker_volume_size),
            "docker_storage_driver" => text(&self.docker_storage_driver),
            "ssh_authorized_key" => text(&self.ssh_authorized_key),
            "cluster_distro" => text(&self.cluster_distro),
            "http_proxy" => text(&self.http_proxy),
            "https_proxy" => text(&self.https_proxy),
            "no_proxy" => text(&self.no_proxy),
            "registry_enabled" => FieldRef::Boolean(self.registry_enabled),
            "insecure_registry" => text(&self.insecure_registry),
            "labels" => FieldRef::Labels(&self.labels),
            "tls_disabled" => FieldRef::Boolean(self.tls_disabled),
            "public" => FieldRef::Boolean(self.public),
            "server_type" => FieldRef::Text(Some(&self.server_type)),
            "master_lb_enabled" => FieldRef::Boolean(self.master_lb_enabled),
            "floating_ip_enabled" => FieldRef::Boolean(self.floating_ip_enabled),
            "hidden" => FieldRef::Boolean(self.hidden),
            "tags" => text(&self.tags),
            "driver" => text(&self.driver),
            "project_id" => FieldRef::Text(Some(&self.project_id)),
            "user_id" => FieldRef::Text(Some(&self.user_id)),
            "created_at" => FieldRef::Timestamp(Some(&self.created_at)),
            "updated_at" => FieldRef::Timestamp(self.updated_at.as_ref()),
            _ => FieldRef::Text(None),
        }
    }

    /// The value of one attribute as JSON, as the patch document shows it.
    pub fn field_json(&self, name: &str) -> Value {
        serde_json::to_value(self.field_ref(name)).unwrap_or(Value::Null)
    }

    /// The document a patch is applied to: every non-internal attribute of the generation.
    pub fn patch_document(&self, generation: ApiGeneration) -> Value {
        Value::Object(
            FIELDS
                .iter()
                .filter(|spec| spec.availability.includes(generation))
                .filter(|spec| spec.kind != FieldKind::Internal)
                .map(|spec| (spec.name.to_string(), self.field_json(spec.name)))
                .collect(),
        )
    }

    /// Applies an already patched document (see [`crate::patch`]) and re-validates the
    /// result as if it were created anew.
    pub fn with_patched_document(
        &self,
        document: &Value,
        generation: ApiGeneration,
        rules: &TemplateRules,
        now: DateTime<Utc>,
    ) -> Result<ClusterTemplate, DomainError> {
        let Value::Object(object) = document else {
            return Err(DomainError::invalid(
                "The patched document is not an object.",
            ));
        };
        let input = TemplateInput::decode_object(object, generation, false)?;
        let mut updated = self.clone();
        updated.apply_input(&input, generation)?;
        updated.uuid = self.uuid.clone();
        updated.fill_defaults_and_validate(generation, rules)?;
        updated.updated_at = Some(now);
        Ok(updated)
    }

    /// Names of the attributes whose values differ between two versions.
    pub fn changed_fields(&self, other: &ClusterTemplate) -> Vec<&'static str> {
        FIELDS
            .iter()
            .filter(|spec| spec.kind != FieldKind::Internal)
            .filter(|spec| self.field_json(spec.name) != other.field_json(spec.name))
            .map(|spec| spec.name)
            .collect()
    }

    /// Whether a change of `changed` fields may be made while clusters use the template:
    /// through the current API only renaming, publishing and hiding (the rest would
    /// silently change running clusters at their next resize or repair); through the 2016
    /// API nothing.
    pub fn change_allowed_in_use(changed: &[&str], generation: ApiGeneration) -> bool {
        match generation {
            ApiGeneration::Seed => changed.is_empty(),
            ApiGeneration::Current => changed
                .iter()
                .all(|field| CHANGEABLE_IN_USE.contains(field)),
        }
    }

    /// Whether a caller of `project_id` may read this template without being admin.
    pub fn is_visible_to(&self, project_id: &str) -> bool {
        self.project_id == project_id || (self.public && !self.hidden)
    }
}

/// The fields a template that clusters use may still change (current API).
pub const CHANGEABLE_IN_USE: &[&str] = &["name", "public", "hidden"];

/// Formats a timestamp as the API shows it: `2016-08-29T06:51:31+00:00`.
pub fn format_timestamp(at: &DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// One attribute's value, borrowed from a template, for serializing views without copying.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldRef<'a> {
    Text(Option<&'a str>),
    Integer(Option<i64>),
    Boolean(bool),
    Labels(&'a Labels),
    Timestamp(Option<&'a DateTime<Utc>>),
}

impl serde::Serialize for FieldRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FieldRef::Text(Some(text)) => serializer.serialize_str(text),
            FieldRef::Integer(Some(number)) => serializer.serialize_i64(*number),
            FieldRef::Boolean(flag) => serializer.serialize_bool(*flag),
            FieldRef::Labels(labels) => labels.serialize(serializer),
            FieldRef::Timestamp(Some(at)) => serializer.serialize_str(&format_timestamp(at)),
            FieldRef::Text(None) | FieldRef::Integer(None) | FieldRef::Timestamp(None) => {
                serializer.serialize_none()
            }
        }
    }
}

fn check_dns_nameserver(value: &str, generation: ApiGeneration) -> Result<(), DomainError> {
    match generation {
        ApiGeneration::Seed => value.parse::<Ipv4Addr>().map(|_| ()).map_err(|_| {
            DomainError::invalid_field("dns_nameserver", value, "Value should be IPv4 format")
        }),
        ApiGeneration::Current => {
            let all_valid = value
                .split(',')
                .all(|address| address.trim().parse::<Ipv4Addr>().is_ok());
            if all_valid {
                Ok(())
            } else {
                Err(DomainError::invalid_field(
                    "dns_nameserver",
                    value,
                    "Expected a single dns address or comma separated dns list",
                ))
            }
        }
    }
}

/// Renders a JSON value for error messages.
pub fn describe(value: &Value) -> String {
    display_value(value)
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use serde_json::json;

    pub fn owner() -> Ownership {
        Ownership {
            project_id: "project-a".to_string(),
            user_id: "user-a".to_string(),
            now: chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, 2, 3, 4, 5).unwrap(),
        }
    }

    pub fn create(body: Value, generation: ApiGeneration) -> Result<ClusterTemplate, DomainError> {
        let input = TemplateInput::decode(&body, generation)?;
        ClusterTemplate::from_input(&input, generation, owner(), &TemplateRules::default())
    }

    pub fn swarm() -> ClusterTemplate {
        create(
            json!({"name": "swarm", "coe": "swarm", "image_id": "fedora-atomic", "external_network_id": "public"}),
            ApiGeneration::Current,
        )
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn field_values_serialize_as_the_api_shows_them() {
        let mut template = swarm();
        template.labels.insert("a".to_string(), "b".to_string());
        template.docker_volume_size = Some(3);
        template.updated_at = Some(owner().now);
        assert_eq!(
            template.field_json("created_at"),
            "2026-01-02T03:04:05+00:00"
        );
        assert_eq!(
            template.field_json("updated_at"),
            "2026-01-02T03:04:05+00:00"
        );
        assert_eq!(template.field_json("labels"), serde_json::json!({"a": "b"}));
        assert_eq!(template.field_json("docker_volume_size"), 3);
        assert_eq!(template.field_json("flavor_id"), Value::Null);
        assert_eq!(template.field_json("public"), false);
        assert_eq!(template.field_json("coe"), "swarm");
    }

    #[test]
    fn defaults_are_applied_on_create() {
        let template = swarm();
        assert_eq!(template.network_driver.as_deref(), Some("docker"));
        assert_eq!(template.server_type, "vm");
        assert!(template.floating_ip_enabled);
        assert!(!template.public && !template.hidden && !template.tls_disabled);
        assert_eq!(template.created_at, owner().now);
        assert!(crate::is_uuid_like(&template.uuid));
    }

    #[test]
    fn current_api_generates_a_name_but_the_seed_does_not() {
        let current = create(
            json!({"coe": "kubernetes", "image_id": "i"}),
            ApiGeneration::Current,
        )
        .unwrap();
        assert!(current.name.unwrap().ends_with("-template"));
        let seed = create(
            json!({"coe": "kubernetes", "image_id": "i", "keypair_id": "k"}),
            ApiGeneration::Seed,
        )
        .unwrap();
        assert_eq!(seed.name, None);
    }

    #[test]
    fn mandatory_attributes_are_enforced_per_generation() {
        let missing_image = create(json!({"coe": "swarm"}), ApiGeneration::Current).unwrap_err();
        assert_eq!(
            missing_image.message,
            "Invalid input for field/attribute image_id. Value: 'None'. Mandatory field missing."
        );
        let seed_without_keypair = create(
            json!({"coe": "swarm", "image_id": "i"}),
            ApiGeneration::Seed,
        )
        .unwrap_err();
        assert!(seed_without_keypair.message.contains("keypair_id"));
        assert!(create(
            json!({"coe": "swarm", "image_id": "i"}),
            ApiGeneration::Current
        )
        .is_ok());
    }

    #[test]
    fn explicit_nulls_mean_unset() {
        let template = create(
            json!({"coe": "swarm", "image_id": "i", "flavor_id": null, "labels": null,
                   "public": null, "floating_ip_enabled": null, "network_driver": null}),
            ApiGeneration::Current,
        )
        .unwrap();
        assert_eq!(template.flavor_id, None);
        assert!(template.labels.is_empty());
        assert!(template.floating_ip_enabled);
        assert_eq!(template.network_driver.as_deref(), Some("docker"));
    }

    #[test]
    fn unknown_and_internal_attributes_are_refused() {
        let unknown = create(
            json!({"coe": "swarm", "image_id": "i", "colour": "blue"}),
            ApiGeneration::Current,
        )
        .unwrap_err();
        assert_eq!(
            unknown.message,
            "Unknown attribute for argument cluster_template: colour"
        );
        assert!(create(
            json!({"coe": "swarm", "image_id": "i", "project_id": "x"}),
            ApiGeneration::Current
        )
        .is_err());
        // Attributes of the current API are unknown to the 2016 one.
        let seed = create(
            json!({"coe": "swarm", "image_id": "i", "keypair_id": "k", "hidden": true}),
            ApiGeneration::Seed,
        )
        .unwrap_err();
        assert_eq!(
            seed.message,
            "Unknown attribute for argument baymodel: hidden"
        );
    }

    #[test]
    fn field_types_and_bounds_are_checked() {
        for (field, value) in [
            ("apiserver_port", json!(80)),
            ("apiserver_port", json!(70000)),
            ("docker_volume_size", json!(0)),
            ("docker_volume_size", json!("big")),
            ("tls_disabled", json!("perhaps")),
            ("name", json!("")),
            ("image_id", json!("x".repeat(256))),
            ("server_type", json!("lpar")),
            ("coe", json!("nomad")),
            ("labels", json!(["a"])),
            ("uuid", json!("not-a-uuid")),
        ] {
            let mut body = json!({"coe": "swarm", "image_id": "i"});
            body[field] = value.clone();
            assert!(
                create(body, ApiGeneration::Current).is_err(),
                "{field}={value} should be refused"
            );
        }
    }

    #[test]
    fn dns_nameserver_rules_differ_per_generation() {
        let list = json!({"coe": "swarm", "image_id": "i", "keypair_id": "k",
                          "dns_nameserver": "8.8.8.8,1.1.1.1"});
        assert!(create(list.clone(), ApiGeneration::Current).is_ok());
        assert!(create(list, ApiGeneration::Seed).is_err());
        let bad = json!({"coe": "swarm", "image_id": "i", "dns_nameserver": "dns.example"});
        assert_eq!(
            create(bad, ApiGeneration::Current).unwrap_err().message,
            "Invalid input for field/attribute dns_nameserver. Value: 'dns.example'. Expected a single dns address or comma separated dns list"
        );
    }

    #[test]
    fn devicemapper_needs_three_gigabytes() {
        let small = json!({"coe": "kubernetes", "image_id": "i",
                           "docker_storage_driver": "devicemapper", "docker_volume_size": 2});
        assert!(create(small, ApiGeneration::Current).is_err());
        let enough = json!({"coe": "kubernetes", "image_id": "i",
                            "docker_storage_driver": "devicemapper", "docker_volume_size": 3});
        assert!(create(enough, ApiGeneration::Current).is_ok());
    }

    #[test]
    fn network_driver_matrix_applies_on_create() {
        let flannel_on_mesos =
            json!({"coe": "mesos", "image_id": "i", "network_driver": "flannel"});
        assert!(create(flannel_on_mesos, ApiGeneration::Current).is_err());
        let flannel_on_swarm = json!({"coe": "swarm", "image_id": "i", "network_driver": "flannel",
                   "labels": {"flannel_backend": "vxlan"}});
        assert!(create(flannel_on_swarm, ApiGeneration::Current).is_ok());
    }

    #[test]
    fn cluster_distro_is_never_taken_from_the_request() {
        let template = create(
            json!({"coe": "swarm", "image_id": "i", "cluster_distro": "fedora-atomic"}),
            ApiGeneration::Current,
        )
        .unwrap();
        assert_eq!(template.cluster_distro, None);
    }

    #[test]
    fn visibility_covers_own_and_public_not_hidden() {
        let mut template = swarm();
        assert!(template.is_visible_to("project-a"));
        assert!(!template.is_visible_to("project-b"));
        template.public = true;
        assert!(template.is_visible_to("project-b"));
        template.hidden = true;
        assert!(!template.is_visible_to("project-b"));
    }

    #[test]
    fn patch_document_lists_the_generation_fields_only() {
        let template = swarm();
        let current = template.patch_document(ApiGeneration::Current);
        assert!(current.get("hidden").is_some());
        assert!(current.get("ssh_authorized_key").is_none());
        assert!(current.get("project_id").is_none());
        let seed = template.patch_document(ApiGeneration::Seed);
        assert!(seed.get("hidden").is_none());
        assert!(seed.get("ssh_authorized_key").is_some());
    }
}

/// The patch rules of a cluster template in one API generation.
#[derive(Debug, Clone, Copy)]
pub struct TemplatePatchRules(pub ApiGeneration);

impl crate::patch::PatchTarget for TemplatePatchRules {
    fn is_known(&self, attribute: &str) -> bool {
        field_spec(attribute, self.0).is_some()
    }

    fn is_internal(&self, attribute: &str) -> bool {
        matches!(attribute, "uuid")
            || field_spec(attribute, self.0).is_some_and(|spec| spec.kind == FieldKind::Internal)
    }

    fn is_removable(&self, attribute: &str) -> bool {
        field_spec(attribute, self.0).is_some_and(|spec| spec.is_removable(self.0))
    }
}

#[cfg(test)]
mod patch_tests {
    use super::fixtures::*;
    use super::*;
    use crate::patch::{apply_patch, decode_patch};
    use serde_json::json;

    fn patch(
        template: &ClusterTemplate,
        operations: Value,
        generation: ApiGeneration,
    ) -> Result<ClusterTemplate, DomainError> {
        let operations = decode_patch(&operations)?;
        let document = apply_patch(
            &template.patch_document(generation),
            &operations,
            &TemplatePatchRules(generation),
            generation,
        )?;
        template.with_patched_document(
            &document,
            generation,
            &TemplateRules::default(),
            owner().now,
        )
    }

    #[test]
    fn patch_changes_values_and_revalidates() {
        let template = swarm();
        let updated = patch(
            &template,
            json!([{"op": "replace", "path": "/docker_volume_size", "value": 7},
                   {"op": "add", "path": "/labels/smoke", "value": "2"}]),
            ApiGeneration::Current,
        )
        .unwrap();
        assert_eq!(updated.docker_volume_size, Some(7));
        assert_eq!(updated.labels["smoke"], "2");
        assert_eq!(updated.uuid, template.uuid);
        assert!(updated.updated_at.is_some());
        assert_eq!(
            template.changed_fields(&updated),
            vec!["docker_volume_size", "labels"]
        );
        let invalid = patch(
            &template,
            json!([{"op": "replace", "path": "/network_driver", "value": "calico"}]),
            ApiGeneration::Current,
        );
        assert!(invalid.is_err());
    }

    #[test]
    fn internal_and_mandatory_attributes_are_protected() {
        let template = swarm();
        for (operations, expected) in [
            (
                json!([{"op": "replace", "path": "/uuid", "value": "x"}]),
                "internal",
            ),
            (
                json!([{"op": "replace", "path": "/project_id", "value": "x"}]),
                "internal",
            ),
            (json!([{"op": "remove", "path": "/image_id"}]), "mandatory"),
            (
                json!([{"op": "remove", "path": "/tls_disabled"}]),
                "mandatory",
            ),
        ] {
            let error = patch(&template, operations.clone(), ApiGeneration::Current).unwrap_err();
            assert!(
                error.message.contains(expected),
                "{operations}: {}",
                error.message
            );
        }
    }

    #[test]
    fn removing_an_optional_attribute_restores_its_default() {
        let mut template = swarm();
        template.floating_ip_enabled = false;
        template.flavor_id = Some("m1.small".to_string());
        let updated = patch(
            &template,
            json!([{"op": "remove", "path": "/floating_ip_enabled"},
                   {"op": "remove", "path": "/flavor_id"}]),
            ApiGeneration::Current,
        )
        .unwrap();
        assert!(updated.floating_ip_enabled);
        assert_eq!(updated.flavor_id, None);
    }

    #[test]
    fn labels_can_be_replaced_with_a_python_dict_string() {
        let updated = patch(
            &swarm(),
            json!([{"op": "replace", "path": "/labels", "value": "{'a': 'b'}"}]),
            ApiGeneration::Current,
        )
        .unwrap();
        assert_eq!(updated.labels.get("a").map(String::as_str), Some("b"));
    }

    #[test]
    fn seed_patch_keeps_current_only_attributes() {
        let mut template = swarm();
        template.keypair_id = Some("k".to_string());
        template.hidden = true;
        let updated = patch(
            &template,
            json!([{"op": "replace", "path": "/name", "value": "renamed"}]),
            ApiGeneration::Seed,
        )
        .unwrap();
        assert!(updated.hidden);
        assert_eq!(updated.name.as_deref(), Some("renamed"));
    }
}
