//! Labels: free-form `key=value` settings on templates, and the rules for the keys that
//! drivers interpret.
//!
//! The flannel labels follow the 2016 user guide: `flannel_network_cidr` (default
//! 10.100.0.0/16), `flannel_network_subnetlen` (default 24) and `flannel_backend` (`udp`,
//! `vxlan`, `host-gw`; default `udp`). The seed code's `flannel_use_vxlan` is accepted too and
//! must agree with `flannel_backend` when both are given.

use crate::fields::display_value;
use crate::{ApiGeneration, DomainError};
use ipnet::Ipv4Net;
use serde_json::Value;
use std::collections::BTreeMap;

/// Labels as stored: every value is a string.
pub type Labels = BTreeMap<String, String>;

pub const DEFAULT_FLANNEL_NETWORK_CIDR: &str = "10.100.0.0/16";
pub const DEFAULT_FLANNEL_NETWORK_SUBNETLEN: u8 = 24;
pub const DEFAULT_FLANNEL_BACKEND: FlannelBackend = FlannelBackend::Udp;

/// The flannel backends the user guide documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlannelBackend {
    Udp,
    Vxlan,
    HostGw,
}

impl FlannelBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            FlannelBackend::Udp => "udp",
            FlannelBackend::Vxlan => "vxlan",
            FlannelBackend::HostGw => "host-gw",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "udp" => Some(FlannelBackend::Udp),
            "vxlan" => Some(FlannelBackend::Vxlan),
            "host-gw" => Some(FlannelBackend::HostGw),
            _ => None,
        }
    }
}

/// The flannel settings a template's labels resolve to, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlannelSettings {
    pub network_cidr: Ipv4Net,
    pub network_subnetlen: u8,
    pub backend: FlannelBackend,
}

/// Renders a scalar label value the way upstream stores it (Python's `str()`).
fn label_value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Bool(true) => Some("True".to_string()),
        Value::Bool(false) => Some("False".to_string()),
        Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                Some(integer.to_string())
            } else {
                let float = number.as_f64()?;
                if float.fract() == 0.0 && float.is_finite() {
                    Some(format!("{float:.1}"))
                } else {
                    Some(float.to_string())
                }
            }
        }
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Decodes the `labels` attribute. The seed API takes string values only; the current API
/// also takes numbers and booleans and stores them as strings.
pub fn decode_labels(value: &Value, generation: ApiGeneration) -> Result<Labels, DomainError> {
    let object = match value {
        Value::Null => return Ok(Labels::new()),
        Value::Object(object) => object,
        Value::String(text) if generation == ApiGeneration::Current => {
            return decode_labels(&parse_python_dict(text)?, generation)
        }
        other => {
            return Err(DomainError::invalid_field(
                "labels",
                display_value(other),
                "Wrong type. Expected a dictionary of labels.",
            ))
        }
    };
    let mut labels = Labels::new();
    for (key, item) in object {
        let text = match (generation, item) {
            (ApiGeneration::Seed, Value::String(text)) => Some(text.clone()),
            (ApiGeneration::Seed, _) => None,
            (ApiGeneration::Current, item) => label_value_text(item),
        };
        let Some(text) = text else {
            return Err(DomainError::invalid_field(
                "labels",
                Value::Object(object.clone()),
                &format!("Label {key} has a value of the wrong type; expected a string."),
            ));
        };
        labels.insert(key.clone(), text);
    }
    Ok(labels)
}

/// Parses a Python dict literal such as `{'a': 'b', 'n': 3}`, which the current API accepts
/// for `replace /labels` (upstream evaluates it with `ast.literal_eval`).
pub fn parse_python_dict(text: &str) -> Result<Value, DomainError> {
    let invalid = || {
        DomainError::invalid_field(
            "labels",
            text,
            "Wrong type. Expected a dictionary of labels.",
        )
    };
    if let Ok(value @ Value::Object(_)) = serde_json::from_str::<Value>(text) {
        return Ok(value);
    }
    // Rewrite the Python literal into JSON: quotes, True/False/None.
    let mut json = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(character) = chars.next() {
        match character {
            '\'' | '"' => {
                let quote = character;
                json.push('"');
                loop {
                    match chars.next() {
                        None => return Err(invalid()),
                        Some('\\') => {
                            let escaped = chars.next().ok_or_else(invalid)?;
                            if escaped == '\'' {
                                json.push('\'');
                            } else {
                                json.push('\\');
                                json.push(escaped);
                            }
                        }
                        Some(inner) if inner == quote => break,
                        Some('"') => json.push_str("\\\""),
                        Some(inner) => json.push(inner),
                    }
                }
                json.push('"');
            }
            letter if letter.is_ascii_alphabetic() => {
                let mut word = String::from(letter);
                while let Some(next) = chars.peek().copied() {
                    if next.is_ascii_alphanumeric() || next == '_' {
                        word.push(next);
                        chars.next();
                    } else {
                        break;
                    }
                }
                match word.as_str() {
                    "True" => json.push_str("true"),
                    "False" => json.push_str("false"),
                    "None" => json.push_str("null"),
                    _ => return Err(invalid()),
                }
            }
            other => json.push(other),
        }
    }
    match serde_json::from_str::<Value>(&json) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(invalid()),
    }
}

fn label_error(key: &str, value: &str, expectation: &str) -> DomainError {
    DomainError::invalid(format!(
        "Invalid value '{value}' for label {key}: {expectation}"
    ))
}

/// Resolves the flannel labels, checking each value and their consistency.
pub fn flannel_settings(labels: &Labels) -> Result<FlannelSettings, DomainError> {
    let network_cidr = match labels.get("flannel_network_cidr") {
        None => DEFAULT_FLANNEL_NETWORK_CIDR
            .parse::<Ipv4Net>()
            .map_err(|_| DomainError::invalid("built-in flannel network is invalid"))?,
        Some(text) => text.parse::<Ipv4Net>().map_err(|_| {
            label_error(
                "flannel_network_cidr",
                text,
                "expected an IPv4 network in CIDR notation such as 10.100.0.0/16",
            )
        })?,
    };
    let network_subnetlen = match labels.get("flannel_network_subnetlen") {
        None => DEFAULT_FLANNEL_NETWORK_SUBNETLEN,
        Some(text) => {
            let length = text
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|length| *length <= 30);
            let Some(length) = length else {
                return Err(label_error(
                    "flannel_network_subnetlen",
                    text,
                    "expected a prefix length between 1 and 30",
                ));
            };
            length
        }
    };
    if network_subnetlen <= network_cidr.prefix_len() {
        return Err(label_error(
            "flannel_network_subnetlen",
            &network_subnetlen.to_string(),
            &format!(
                "the per-host subnet must be smaller than the flannel network {network_cidr}, so its prefix length must be greater than {}",
                network_cidr.prefix_len()
            ),
        ));
    }
    let backend_label = match labels.get("flannel_backend") {
        None => None,
        Some(text) => Some(FlannelBackend::parse(text).ok_or_else(|| {
            label_error(
                "flannel_backend",
                text,
                "expected one of udp, vxlan, host-gw",
            )
        })?),
    };
    let use_vxlan = match labels.get("flannel_use_vxlan") {
        None => None,
        Some(text) => Some(match text.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(label_error(
                    "flannel_use_vxlan",
                    text,
                    "expected true or false",
                ))
            }
        }),
    };
    let backend = match (backend_label, use_vxlan) {
        (Some(backend), Some(vxlan)) if vxlan != (backend == FlannelBackend::Vxlan) => {
            return Err(DomainError::invalid(format!(
                "Labels flannel_backend={} and flannel_use_vxlan={} contradict each other; give only flannel_backend.",
                backend.as_str(),
                vxlan
            )))
        }
        (Some(backend), _) => backend,
        (None, Some(true)) => FlannelBackend::Vxlan,
        (None, Some(false)) | (None, None) => DEFAULT_FLANNEL_BACKEND,
    };
    Ok(FlannelSettings {
        network_cidr,
        network_subnetlen,
        backend,
    })
}

const MESOS_ISOLATION_VALUES: [&str; 10] = [
    "filesystem/posix",
    "filesystem/linux",
    "filesystem/shared",
    "posix/cpu",
    "posix/mem",
    "posix/disk",
    "cgroups/cpu",
    "cgroups/mem",
    "docker/runtime",
    "namespaces/pid",
];

/// Checks every label whose value the drivers interpret; unknown keys pass through untouched.
pub fn validate_labels(labels: &Labels) -> Result<(), DomainError> {
    let flannel_keys = [
        "flannel_network_cidr",
        "flannel_network_subnetlen",
        "flannel_backend",
        "flannel_use_vxlan",
    ];
    if flannel_keys.iter().any(|key| labels.contains_key(*key)) {
        flannel_settings(labels)?;
    }
    if let Some(strategy) = labels.get("swarm_strategy") {
        if !["spread", "binpack", "random"].contains(&strategy.as_str()) {
            return Err(label_error(
                "swarm_strategy",
                strategy,
                "expected one of spread, binpack, random",
            ));
        }
    }
    let isolation: Vec<&str> = labels
        .get("mesos_slave_isolation")
        .map(|text| {
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if let Some(unknown) = isolation
        .iter()
        .find(|item| !MESOS_ISOLATION_VALUES.contains(item))
    {
        return Err(label_error(
            "mesos_slave_isolation",
            unknown,
            &format!(
                "expected a comma list of {}",
                MESOS_ISOLATION_VALUES.join(", ")
            ),
        ));
    }
    if let Some(providers) = labels.get("mesos_slave_image_providers") {
        for provider in providers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            if !["docker", "appc"].contains(&provider) {
                return Err(label_error(
                    "mesos_slave_image_providers",
                    provider,
                    "expected a comma list of docker, appc",
                ));
            }
            if provider == "docker" && !isolation.contains(&"docker/runtime") {
                return Err(DomainError::invalid(
                    "Docker runtime isolator has to be specified if 'docker' is included in 'mesos_slave_image_providers'. Please add 'docker/runtime' to 'mesos_slave_isolation' labels.",
                ));
            }
        }
    }
    if let Some(variables) = labels.get("mesos_slave_executor_env_variables") {
        if serde_json::from_str::<Value>(variables).is_err() {
            return Err(label_error(
                "mesos_slave_executor_env_variables",
                variables,
                "expected a JSON document",
            ));
        }
    }
    if let Some(size) = labels.get("boot_volume_size") {
        let bound = crate::limits::MAX_DOCKER_VOLUME_SIZE_GB;
        if !size
            .trim()
            .parse::<i64>()
            .is_ok_and(|size| (0..=bound).contains(&size))
        {
            return Err(label_error(
                "boot_volume_size",
                size,
                &format!("expected an integer from 0 to {bound}"),
            ));
        }
    }
    for key in ["min_node_count", "max_node_count"] {
        label_count(labels, key)?;
    }
    if let (Some(min), Some(max)) = (
        label_count(labels, "min_node_count")?,
        label_count(labels, "max_node_count")?,
    ) {
        if max < min {
            return Err(label_error(
                "max_node_count",
                &max.to_string(),
                "expected at least min_node_count",
            ));
        }
    }
    Ok(())
}

/// A node count carried by a label (`min_node_count`, `max_node_count`), within
/// [`crate::limits::MAX_NODE_COUNT`]; `None` when the label is absent.
pub fn label_count(labels: &Labels, key: &str) -> Result<Option<i64>, DomainError> {
    let Some(text) = labels.get(key) else {
        return Ok(None);
    };
    let bound = crate::limits::MAX_NODE_COUNT;
    match text.trim().parse::<i64>() {
        Ok(count) if (0..=bound).contains(&count) => Ok(Some(count)),
        _ => Err(label_error(
            key,
            text,
            &format!("expected an integer from 0 to {bound}"),
        )),
    }
}

/// Whether a label names a component's version (`kube_tag`, `etcd_tag`, `*_version`).
pub fn is_version_label(key: &str) -> bool {
    key.ends_with("_tag") || key.ends_with("_version")
}

/// Moves a cluster's version labels from one template's to another's, as an upgrade (or
/// its rollback) does: every version label `to` names takes its value there; one only
/// `from` named goes, unless the cluster had set a value of its own. Other labels stay.
pub fn switch_version_labels(labels: &mut Labels, from: &Labels, to: &Labels) {
    for (key, value) in from.iter().filter(|(key, _)| is_version_label(key)) {
        if !to.contains_key(key) && labels.get(key) == Some(value) {
            labels.remove(key);
        }
    }
    for (key, value) in to.iter().filter(|(key, _)| is_version_label(key)) {
        labels.insert(key.clone(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn flannel_defaults_are_those_of_the_user_guide() {
        let settings = flannel_settings(&Labels::new()).unwrap();
        assert_eq!(settings.network_cidr.to_string(), "10.100.0.0/16");
        assert_eq!(settings.network_subnetlen, 24);
        assert_eq!(settings.backend, FlannelBackend::Udp);
    }

    #[test]
    fn flannel_backend_and_use_vxlan_are_both_understood() {
        let vxlan = flannel_settings(&labels(&[("flannel_use_vxlan", "true")])).unwrap();
        assert_eq!(vxlan.backend, FlannelBackend::Vxlan);
        let host_gw = flannel_settings(&labels(&[("flannel_backend", "host-gw")])).unwrap();
        assert_eq!(host_gw.backend, FlannelBackend::HostGw);
        assert!(flannel_settings(&labels(&[
            ("flannel_backend", "udp"),
            ("flannel_use_vxlan", "true")
        ]))
        .is_err());
        assert!(flannel_settings(&labels(&[
            ("flannel_backend", "vxlan"),
            ("flannel_use_vxlan", "true")
        ]))
        .is_ok());
    }

    #[test]
    fn flannel_values_are_checked() {
        for bad in [
            ("flannel_network_cidr", "10.100.0.0"),
            ("flannel_network_cidr", "300.1.0.0/16"),
            ("flannel_network_subnetlen", "abc"),
            ("flannel_network_subnetlen", "16"),
            ("flannel_network_subnetlen", "31"),
            ("flannel_backend", "gre"),
            ("flannel_use_vxlan", "maybe"),
        ] {
            assert!(validate_labels(&labels(&[bad])).is_err(), "{bad:?}");
        }
        assert!(validate_labels(&labels(&[
            ("flannel_network_cidr", "10.0.0.0/8"),
            ("flannel_network_subnetlen", "16")
        ]))
        .is_ok());
    }

    #[test]
    fn mesos_and_swarm_labels_are_checked() {
        assert!(validate_labels(&labels(&[("swarm_strategy", "spread")])).is_ok());
        assert!(validate_labels(&labels(&[("swarm_strategy", "fastest")])).is_err());
        assert!(validate_labels(&labels(&[("mesos_slave_image_providers", "docker")])).is_err());
        assert!(validate_labels(&labels(&[
            ("mesos_slave_image_providers", "docker"),
            ("mesos_slave_isolation", "docker/runtime,filesystem/linux")
        ]))
        .is_ok());
        assert!(validate_labels(&labels(&[(
            "mesos_slave_executor_env_variables",
            "{not json"
        )]))
        .is_err());
    }

    #[test]
    fn current_api_stores_scalar_label_values_as_strings() {
        let decoded = decode_labels(
            &json!({"a": "x", "n": 3, "flag": true, "f": 2.0}),
            ApiGeneration::Current,
        )
        .unwrap();
        assert_eq!(decoded["n"], "3");
        assert_eq!(decoded["flag"], "True");
        assert_eq!(decoded["f"], "2.0");
        assert!(decode_labels(&json!({"n": 3}), ApiGeneration::Seed).is_err());
        assert!(decode_labels(&json!({"n": [1]}), ApiGeneration::Current).is_err());
    }

    #[test]
    fn python_dict_literals_are_accepted_for_labels() {
        let decoded = decode_labels(
            &json!("{'kube_tag': 'v1.23.3', 'n': 2, 'x': True}"),
            ApiGeneration::Current,
        )
        .unwrap();
        assert_eq!(decoded["kube_tag"], "v1.23.3");
        assert_eq!(decoded["n"], "2");
        assert_eq!(decoded["x"], "True");
        assert!(parse_python_dict("{'a': b}").is_err());
        assert!(parse_python_dict("['a']").is_err());
    }

    #[test]
    fn an_upgrade_switches_only_version_labels() {
        let labels = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect()
        };
        let old = labels(&[
            ("kube_tag", "v1.23.3"),
            ("etcd_tag", "v3.4.6"),
            ("flannel_backend", "vxlan"),
        ]);
        let new = labels(&[("kube_tag", "v1.27.4"), ("flannel_backend", "host-gw")]);
        let mut cluster = labels(&[
            ("kube_tag", "v1.23.3"),
            ("etcd_tag", "v3.4.6"),
            ("flannel_backend", "udp"),
        ]);
        switch_version_labels(&mut cluster, &old, &new);
        assert_eq!(
            cluster,
            labels(&[("kube_tag", "v1.27.4"), ("flannel_backend", "udp")])
        );
        // Back again: the old template's versions return.
        switch_version_labels(&mut cluster, &new, &old);
        assert_eq!(
            cluster,
            labels(&[
                ("kube_tag", "v1.23.3"),
                ("etcd_tag", "v3.4.6"),
                ("flannel_backend", "udp")
            ])
        );
        // A version the cluster set itself stays when the new template does not name it.
        let mut own = labels(&[("etcd_tag", "v3.5.0")]);
        switch_version_labels(&mut own, &old, &new);
        assert_eq!(
            own,
            labels(&[("etcd_tag", "v3.5.0"), ("kube_tag", "v1.27.4")])
        );
    }
}
