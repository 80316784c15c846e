//! `k8s_fedora_atomic_v1`, tuple (vm, fedora-atomic, kubernetes): the seed's Kubernetes
//! driver. Its Heat templates and the node's configure script are files of this crate
//! (`templates/k8s_fedora_atomic_v1/`); this module maps a [`ClusterSpec`] onto the
//! parameters of spec §9.3, with the seed image's software versions (Kubernetes 1.0.4,
//! etcd 2.0.10, flannel 0.5.0) as defaults, and renders the nodes' cloud-config.
//!
//! Where it departs from the seed, on purpose:
//! - The seed passed the caller's own token (`user_token`) into the stack, where it expired
//!   within hours. Nodes here authenticate as the cluster's trustee within its trust, as
//!   upstream did later (`trustee_user_id`, `trustee_password`, `trust_id`).
//! - `auth_url` is Keystone v3: v2 is gone from every current Keystone. `username` and
//!   `tenant_name` carry the owner's user and project ids, which Keystone accepts where the
//!   names were.
//! - The API load balancer is Octavia's (current Heat turns LBaaS v1 into silent no-ops).
//! - The wait conditions time out with the cluster's create_timeout when it has one.

use crate::cloud_config;
use crate::definition::{
    is_true, label, node_labels, nodegroup_parameters, output, ClusterStackOutputs, NodeAccess,
    RenderedStack, StackDefinition,
};
use crate::ignition::{self, NodeFile};
use magnum_driver::{ClusterSpec, DriverError, NodeGroupSpec};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub const NAME: &str = "k8s_fedora_atomic_v1";

const CLUSTER_TEMPLATE: &str = include_str!("../templates/k8s_fedora_atomic_v1/kubecluster.yaml");
const MASTER_TEMPLATE: &str = include_str!("../templates/k8s_fedora_atomic_v1/kubemaster.yaml");
const MINION_TEMPLATE: &str = include_str!("../templates/k8s_fedora_atomic_v1/kubeminion.yaml");
const NODEGROUP_TEMPLATE: &str =
    include_str!("../templates/k8s_fedora_atomic_v1/kubenodegroup.yaml");
const CONFIGURE_NODE: &str =
    include_str!("../templates/k8s_fedora_atomic_v1/fragments/configure-node.sh");

/// The seed image's versions (its "Kubernetes on Fedora Atomic" table).
pub const DEFAULT_KUBE_TAG: &str = "v1.0.4";
pub const DEFAULT_ETCD_TAG: &str = "v2.0.10";
pub const DEFAULT_FLANNEL_TAG: &str = "v0.5.0";
/// The seed template's wait condition timeout, in seconds.
const DEFAULT_WAIT_CONDITION_TIMEOUT: i64 = 6000;

/// The parameters whose change needs a stack update.
pub const UPDATED_PARAMETERS: &[&str] = &[
    "number_of_minions",
    "server_image",
    "master_flavor",
    "minion_flavor",
    "kube_tag",
];

/// What a nodegroup's stack takes from the cluster stack's parameters.
const NODEGROUP_COPIED: &[&str] = &[
    "bay_uuid",
    "ssh_key_name",
    "external_network",
    "floating_ip_enabled",
    "docker_volume_size",
    "wait_condition_timeout",
    "kube_tag",
];

fn required(value: Option<String>, parameter: &str) -> Result<String, DriverError> {
    value.filter(|value| !value.is_empty()).ok_or_else(|| {
        DriverError::Permanent(format!("Required parameter {parameter} not provided."))
    })
}

/// The flannel backend: the `flannel_backend` label, else the seed's `flannel_use_vxlan`
/// (true: vxlan), else the seed's default, udp.
fn flannel_backend(labels: &magnum_core::labels::Labels) -> String {
    match (
        label(labels, "flannel_backend"),
        label(labels, "flannel_use_vxlan"),
    ) {
        (Some(backend), _) => backend.to_string(),
        (None, Some(use_vxlan)) if is_true(use_vxlan) => "vxlan".to_string(),
        _ => "udp".to_string(),
    }
}

/// The template's parameters for `spec`, without the nodes' user data.
pub fn parameters(
    spec: &ClusterSpec,
    access: &NodeAccess,
) -> Result<Map<String, Value>, DriverError> {
    let masters = spec
        .masters()
        .ok_or_else(|| DriverError::Permanent("The cluster has no master nodegroup.".into()))?;
    let workers = spec
        .worker_groups()
        .next()
        .ok_or_else(|| DriverError::Permanent("The cluster has no worker nodegroup.".into()))?;
    let external_network = required(spec.network.external_network.clone(), "external_network")?;
    let discovery_url = required(spec.discovery_url.clone(), "discovery_url")?;
    let labels = &spec.labels;
    let tls_disabled = spec.tls_disabled;
    let mut parameters = Map::new();
    let mut set = |key: &str, value: String| {
        parameters.insert(key.to_string(), Value::String(value));
    };
    set("bay_uuid", spec.uuid.clone());
    set("ssh_key_name", spec.keypair.clone().unwrap_or_default());
    set("server_image", spec.image.clone());
    set(
        "dns_nameserver",
        spec.network
            .dns_nameserver
            .clone()
            .unwrap_or_else(|| "8.8.8.8".to_string()),
    );
    for (key, value) in [
        ("http_proxy", &spec.network.http_proxy),
        ("https_proxy", &spec.network.https_proxy),
        ("no_proxy", &spec.network.no_proxy),
    ] {
        set(key, value.clone().unwrap_or_default());
    }
    set("number_of_masters", masters.node_count.to_string());
    set("number_of_minions", workers.node_count.to_string());
    if let Some(flavor) = &masters.flavor {
        set("master_flavor", flavor.clone());
    }
    if let Some(flavor) = &workers.flavor {
        set("minion_flavor", flavor.clone());
    }
    set("master_nodegroup_name", masters.name.clone());
    set("worker_nodegroup_name", workers.name.clone());
    set("external_network", external_network);
    set(
        "fixed_network",
        spec.network.fixed_network.clone().unwrap_or_default(),
    );
    set("fixed_network_name", format!("{}-private", spec.name));
    set(
        "fixed_subnet",
        spec.network.fixed_subnet.clone().unwrap_or_default(),
    );
    set(
        "network_driver",
        spec.network
            .network_driver
            .clone()
            .unwrap_or_else(|| "flannel".to_string()),
    );
    set("tls_disabled", tls_disabled.to_string());
    set("discovery_url", discovery_url);
    for (key, default) in [
        ("flannel_network_cidr", "10.100.0.0/16"),
        ("flannel_network_subnetlen", "24"),
        ("fixed_network_cidr", "10.0.0.0/24"),
        ("kube_allow_priv", "true"),
        ("kube_tag", DEFAULT_KUBE_TAG),
        ("etcd_tag", DEFAULT_ETCD_TAG),
        ("flannel_tag", DEFAULT_FLANNEL_TAG),
    ] {
        set(key, label(labels, key).unwrap_or(default).to_string());
    }
    let backend = flannel_backend(labels);
    set("flannel_use_vxlan", (backend == "vxlan").to_string());
    set("flannel_backend", backend);
    set(
        "portal_network_cidr",
        label(labels, "service_cluster_ip_range")
            .unwrap_or("10.254.0.0/16")
            .to_string(),
    );
    set("minions_to_remove", spec.nodes_to_remove.join(","));
    if let Some(size) = spec.docker_volume_size {
        set("docker_volume_size", size.to_string());
    }
    if let Some(driver) = &spec.docker_storage_driver {
        set("docker_storage_driver", driver.clone());
    }
    let (protocol, port) = if tls_disabled {
        ("HTTP", "8080")
    } else {
        ("TCP", "6443")
    };
    set("loadbalancing_protocol", protocol.to_string());
    set("kubernetes_port", port.to_string());
    set("master_lb_enabled", spec.master_lb_enabled.to_string());
    set(
        "floating_ip_enabled",
        spec.network.floating_ip_enabled.to_string(),
    );
    set(
        "wait_condition_timeout",
        if spec.create_timeout > 0 {
            spec.create_timeout.saturating_mul(60)
        } else {
            DEFAULT_WAIT_CONDITION_TIMEOUT
        }
        .to_string(),
    );
    set("magnum_url", access.magnum_url.clone());
    set("auth_url", access.auth_url.clone());
    set("username", spec.credentials.user_id.clone());
    set("tenant_name", spec.credentials.project_id.clone());
    set("region_name", access.region_name.clone());
    set("trustee_user_id", access.trustee_user_id.clone());
    set("trustee_username", access.trustee_username.clone());
    set(
        "trustee_password",
        access.trustee_password.expose().to_string(),
    );
    set("trust_id", access.trust_id.clone());
    Ok(parameters)
}

/// The cloud-config of the nodes (masters and workers alike: each learns its role from its
/// server's metadata); the kubelets add `node_labels` (`k=v,…`) to their own.
fn user_data(parameters: &Map<String, Value>, node_labels: &str) -> String {
    let text = |key: &str| {
        parameters
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let environment = ignition::environment_file(&[
        ("BAY_UUID", text("bay_uuid")),
        ("DISCOVERY_URL", text("discovery_url")),
        ("MAGNUM_URL", text("magnum_url")),
        ("AUTH_URL", text("auth_url")),
        ("REGION_NAME", text("region_name")),
        ("TRUSTEE_USER_ID", text("trustee_user_id")),
        ("TRUSTEE_PASSWORD", text("trustee_password")),
        ("TRUST_ID", text("trust_id")),
        ("TLS_DISABLED", text("tls_disabled")),
        ("KUBE_TAG", text("kube_tag")),
        ("ETCD_TAG", text("etcd_tag")),
        ("FLANNEL_TAG", text("flannel_tag")),
        ("NETWORK_DRIVER", text("network_driver")),
        ("FLANNEL_NETWORK_CIDR", text("flannel_network_cidr")),
        (
            "FLANNEL_NETWORK_SUBNETLEN",
            text("flannel_network_subnetlen"),
        ),
        ("FLANNEL_BACKEND", text("flannel_backend")),
        ("PORTAL_NETWORK_CIDR", text("portal_network_cidr")),
        ("KUBERNETES_PORT", text("kubernetes_port")),
        ("KUBE_ALLOW_PRIV", text("kube_allow_priv")),
        ("HTTP_PROXY", text("http_proxy")),
        ("HTTPS_PROXY", text("https_proxy")),
        ("NO_PROXY", text("no_proxy")),
        (
            "DOCKER_VOLUME_SIZE",
            parameters
                .get("docker_volume_size")
                .and_then(Value::as_str)
                .unwrap_or("25")
                .to_string(),
        ),
        (
            "DOCKER_STORAGE_DRIVER",
            parameters
                .get("docker_storage_driver")
                .and_then(Value::as_str)
                .unwrap_or("devicemapper")
                .to_string(),
        ),
        ("NODE_LABELS", node_labels.to_string()),
    ]);
    cloud_config::user_data(&cloud_config::document(
        &[
            NodeFile {
                path: "/etc/sysconfig/heat-params".to_string(),
                mode: 0o600,
                contents: environment,
            },
            NodeFile {
                path: "/usr/local/bin/magnum-configure-node".to_string(),
                mode: 0o755,
                contents: CONFIGURE_NODE.to_string(),
            },
        ],
        &[&["/usr/local/bin/magnum-configure-node"]],
    ))
}

/// The whole stack for `spec`.
pub fn render(spec: &ClusterSpec, access: &NodeAccess) -> Result<RenderedStack, DriverError> {
    let mut parameters = parameters(spec, access)?;
    let default_workers = spec.worker_groups().next().map(node_labels);
    let master_user_data = user_data(&parameters, "");
    let minion_user_data = user_data(&parameters, default_workers.as_deref().unwrap_or_default());
    parameters.insert(
        "master_user_data".to_string(),
        Value::String(master_user_data),
    );
    parameters.insert(
        "minion_user_data".to_string(),
        Value::String(minion_user_data),
    );
    Ok(RenderedStack {
        template: CLUSTER_TEMPLATE.to_string(),
        files: BTreeMap::from([
            ("kubemaster.yaml".to_string(), MASTER_TEMPLATE.to_string()),
            ("kubeminion.yaml".to_string(), MINION_TEMPLATE.to_string()),
        ]),
        parameters,
    })
}

/// The stack of `group`, a non-default worker nodegroup, on the cluster stack's
/// `cluster_outputs` (its workers also reach etcd there, for flannel).
pub fn render_nodegroup(
    spec: &ClusterSpec,
    group: &NodeGroupSpec,
    cluster_outputs: &BTreeMap<String, Value>,
    access: &NodeAccess,
) -> Result<RenderedStack, DriverError> {
    let mut cluster = parameters(spec, access)?;
    let outputs = ClusterStackOutputs::read(cluster_outputs)?;
    if let Some(size) = group.docker_volume_size {
        cluster.insert(
            "docker_volume_size".to_string(),
            Value::String(size.to_string()),
        );
    }
    let mut parameters = nodegroup_parameters(
        &cluster,
        NODEGROUP_COPIED,
        group,
        &outputs,
        &spec.nodes_to_remove,
    );
    parameters.insert(
        "existing_etcd_address".to_string(),
        Value::String(output(cluster_outputs, "etcd_private_address")?),
    );
    parameters.insert(
        "minion_user_data".to_string(),
        Value::String(user_data(&cluster, &node_labels(group))),
    );
    Ok(RenderedStack {
        template: NODEGROUP_TEMPLATE.to_string(),
        files: BTreeMap::from([("kubeminion.yaml".to_string(), MINION_TEMPLATE.to_string())]),
        parameters,
    })
}

/// The driver's definition.
#[derive(Debug, Clone, Copy, Default)]
pub struct FedoraAtomic;

impl StackDefinition for FedoraAtomic {
    fn name(&self) -> &'static str {
        NAME
    }

    fn render(
        &self,
        spec: &ClusterSpec,
        access: &NodeAccess,
    ) -> Result<RenderedStack, DriverError> {
        render(spec, access)
    }

    fn updated_parameters(&self) -> &'static [&'static str] {
        UPDATED_PARAMETERS
    }

    fn uses_etcd_discovery(&self) -> bool {
        true
    }

    fn render_nodegroup(
        &self,
        spec: &ClusterSpec,
        group: &NodeGroupSpec,
        cluster_outputs: &BTreeMap<String, Value>,
        access: &NodeAccess,
    ) -> Result<RenderedStack, DriverError> {
        render_nodegroup(spec, group, cluster_outputs, access)
    }

    fn template_files(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("kubecluster.yaml", CLUSTER_TEMPLATE),
            ("kubemaster.yaml", MASTER_TEMPLATE),
            ("kubeminion.yaml", MINION_TEMPLATE),
            ("kubenodegroup.yaml", NODEGROUP_TEMPLATE),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnum_driver::test_doubles::sample_spec;

    fn spec(labels: &[(&str, &str)]) -> ClusterSpec {
        let mut spec = sample_spec(3, labels);
        spec.image = "fedora-atomic-29".to_string();
        spec.discovery_url = Some("http://magnum:9511/v1/discovery/abc".to_string());
        spec.credentials.user_id = "owner-id".to_string();
        spec.credentials.project_id = "project-id".to_string();
        spec
    }

    fn access() -> NodeAccess {
        NodeAccess {
            magnum_url: "http://magnum:9511/v1".to_string(),
            auth_url: "http://keystone:5000/v3".to_string(),
            region_name: "RegionOne".to_string(),
            trustee_user_id: "trustee".to_string(),
            trustee_username: "5d12_p".to_string(),
            trustee_password: magnum_config::Secret::new("derived"),
            trust_id: "trust".to_string(),
            cluster_user_trust: false,
        }
    }

    fn parameter(parameters: &Map<String, Value>, key: &str) -> Option<String> {
        parameters
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// Spec §9.3's table for Kubernetes on Fedora Atomic: each Heat parameter from its
    /// source, and the template defaults where the source is empty.
    #[test]
    fn golden_the_seed_tables_mapping() {
        let parameters = parameters(&spec(&[]), &access()).unwrap_or_default();
        let golden = [
            // Common to the seed definitions.
            ("ssh_key_name", Some("mykey")),
            ("server_image", Some("fedora-atomic-29")),
            ("dns_nameserver", Some("8.8.8.8")),
            ("http_proxy", Some("")),
            ("https_proxy", Some("")),
            ("no_proxy", Some("example.org")),
            ("number_of_masters", Some("1")),
            // Kubernetes.
            ("master_flavor", Some("m1.large")),
            ("minion_flavor", Some("m1.small")),
            ("number_of_minions", Some("3")),
            ("external_network", Some("public")),
            ("network_driver", Some("flannel")),
            ("tls_disabled", Some("false")),
            ("discovery_url", Some("http://magnum:9511/v1/discovery/abc")),
            ("flannel_network_cidr", Some("10.100.0.0/16")),
            ("flannel_network_subnetlen", Some("24")),
            ("flannel_use_vxlan", Some("false")),
            ("flannel_backend", Some("udp")),
            ("minions_to_remove", Some("")),
            // Atomic only.
            ("bay_uuid", Some("5d12f6fd-a196-4bf0-ae4c-1f639a523a52")),
            ("docker_volume_size", None),
            ("auth_url", Some("http://keystone:5000/v3")),
            ("username", Some("owner-id")),
            ("tenant_name", Some("project-id")),
            ("magnum_url", Some("http://magnum:9511/v1")),
            ("loadbalancing_protocol", Some("TCP")),
            ("kubernetes_port", Some("6443")),
            // The other template parameters, with the seed's defaults.
            ("fixed_network_cidr", Some("10.0.0.0/24")),
            ("portal_network_cidr", Some("10.254.0.0/16")),
            ("kube_allow_priv", Some("true")),
            ("wait_condition_timeout", Some("3600")),
            ("kube_tag", Some("v1.0.4")),
            ("etcd_tag", Some("v2.0.10")),
            ("flannel_tag", Some("v0.5.0")),
            // The trust that replaces the seed's user_token.
            ("user_token", None),
            ("trustee_user_id", Some("trustee")),
            ("trustee_password", Some("derived")),
            ("trust_id", Some("trust")),
        ];
        for (key, value) in golden {
            assert_eq!(
                parameter(&parameters, key).as_deref(),
                value,
                "parameter {key}"
            );
        }
    }

    #[test]
    fn tls_disabled_labels_and_scale_in_change_the_parameters() {
        let mut changed = spec(&[
            ("flannel_use_vxlan", "true"),
            ("flannel_network_cidr", "10.200.0.0/16"),
            ("kube_tag", "v1.2.0"),
        ]);
        changed.tls_disabled = true;
        changed.docker_volume_size = Some(10);
        changed.create_timeout = 0;
        changed.nodes_to_remove = vec!["1".to_string()];
        let parameters = parameters(&changed, &access()).unwrap_or_default();
        for (key, value) in [
            ("loadbalancing_protocol", "HTTP"),
            ("kubernetes_port", "8080"),
            ("flannel_use_vxlan", "true"),
            ("flannel_backend", "vxlan"),
            ("flannel_network_cidr", "10.200.0.0/16"),
            ("kube_tag", "v1.2.0"),
            ("docker_volume_size", "10"),
            ("wait_condition_timeout", "6000"),
            ("minions_to_remove", "1"),
        ] {
            assert_eq!(parameter(&parameters, key).as_deref(), Some(value), "{key}");
        }
        let host_gw = parameters_of(&spec(&[("flannel_backend", "host-gw")]));
        assert_eq!(
            parameter(&host_gw, "flannel_backend").as_deref(),
            Some("host-gw")
        );
        assert_eq!(
            parameter(&host_gw, "flannel_use_vxlan").as_deref(),
            Some("false")
        );
    }

    fn parameters_of(spec: &ClusterSpec) -> Map<String, Value> {
        parameters(spec, &access()).unwrap_or_default()
    }

    #[test]
    fn the_external_network_and_the_discovery_url_are_required() {
        let mut no_discovery = spec(&[]);
        no_discovery.discovery_url = None;
        let mut no_network = spec(&[]);
        no_network.network.external_network = None;
        for (spec, message) in [
            (
                no_discovery,
                "Required parameter discovery_url not provided.",
            ),
            (
                no_network,
                "Required parameter external_network not provided.",
            ),
        ] {
            match parameters(&spec, &access()) {
                Err(error) => assert_eq!(error.to_string(), message),
                Ok(_) => panic!("accepted without: {message}"),
            }
        }
    }

    #[test]
    fn nodes_get_a_cloud_config_with_the_settings_and_the_configure_script() {
        let rendered = render(&spec(&[]), &access()).unwrap_or_else(|_| RenderedStack {
            template: String::new(),
            files: BTreeMap::new(),
            parameters: Map::new(),
        });
        let user_data = parameter(&rendered.parameters, "master_user_data").unwrap_or_default();
        assert!(user_data.starts_with("#cloud-config\n"));
        let document: Value = serde_json::from_str(user_data.trim_start_matches("#cloud-config\n"))
            .unwrap_or_default();
        let environment = document["write_files"][0]["content"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(document["write_files"][0]["permissions"], "0600");
        assert!(environment.contains("DISCOVERY_URL='http://magnum:9511/v1/discovery/abc'"));
        assert!(environment.contains("TRUST_ID='trust'"));
        assert!(environment.contains("DOCKER_VOLUME_SIZE='25'"));
        assert_eq!(
            document["runcmd"][0][0],
            "/usr/local/bin/magnum-configure-node"
        );
        assert_eq!(rendered.files.len(), 2);
    }

    #[test]
    fn a_nodegroup_stack_joins_the_clusters_network_api_and_etcd() {
        let mut spec = spec(&[]);
        let mut group = spec.nodegroups[1].clone();
        group.name = "batch".to_string();
        group.uuid = Some("ng-uuid".to_string());
        group.is_default = false;
        group.node_count = 2;
        group.docker_volume_size = Some(50);
        spec.nodegroups.push(group.clone());
        let outputs = BTreeMap::from([
            ("fixed_network".to_string(), Value::from("net-1")),
            ("fixed_subnet".to_string(), Value::from("subnet-1")),
            ("secgroup_minion".to_string(), Value::from("sg-1")),
            ("api_private_address".to_string(), Value::from("10.0.0.5")),
            ("etcd_private_address".to_string(), Value::from("10.0.0.6")),
        ]);
        let rendered = render_nodegroup(&spec, &group, &outputs, &access())
            .unwrap_or_else(|error| panic!("{error}"));
        for (key, value) in [
            ("bay_uuid", spec.uuid.as_str()),
            ("number_of_minions", "2"),
            ("docker_volume_size", "50"),
            ("existing_master_private_ip", "10.0.0.5"),
            ("existing_etcd_address", "10.0.0.6"),
            ("minion_image", "fedora-coreos-40"),
        ] {
            assert_eq!(
                parameter(&rendered.parameters, key).as_deref(),
                Some(value),
                "{key}"
            );
        }
        let template: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&rendered.template).unwrap_or_default();
        for key in rendered.parameters.keys() {
            assert!(
                template["parameters"].get(key.as_str()).is_some(),
                "{key} is not a parameter of the nodegroup template"
            );
        }
        let user_data = parameter(&rendered.parameters, "minion_user_data").unwrap_or_default();
        assert!(user_data.starts_with("#cloud-config"), "{user_data}");
    }
}
