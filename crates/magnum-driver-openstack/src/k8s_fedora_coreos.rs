//! `k8s_fedora_coreos_v1`, tuple (vm, fedora-coreos, kubernetes): the Heat stack of a
//! Kubernetes cluster of Fedora CoreOS servers. The templates and the node's configure
//! script are files of this crate (`templates/k8s_fedora_coreos_v1/`); this module maps a
//! [`ClusterSpec`] onto the template's parameters (spec §9.4, with its defaults) and renders
//! the nodes' Ignition configurations.

use crate::addons;
use crate::definition::{
    is_true, label, node_labels, nodegroup_parameters, ClusterStackOutputs, StackDefinition,
};
pub use crate::definition::{NodeAccess, RenderedStack};
use crate::ignition::{self, NodeFile};
use magnum_driver::{ClusterSpec, DriverError, NodeGroupSpec};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub const NAME: &str = "k8s_fedora_coreos_v1";

const CLUSTER_TEMPLATE: &str = include_str!("../templates/k8s_fedora_coreos_v1/kubecluster.yaml");
const MASTER_TEMPLATE: &str = include_str!("../templates/k8s_fedora_coreos_v1/kubemaster.yaml");
const MINION_TEMPLATE: &str = include_str!("../templates/k8s_fedora_coreos_v1/kubeminion.yaml");
const NODEGROUP_TEMPLATE: &str =
    include_str!("../templates/k8s_fedora_coreos_v1/kubenodegroup.yaml");
const CONFIGURE_NODE: &str =
    include_str!("../templates/k8s_fedora_coreos_v1/fragments/configure-node.sh");

/// The Kubernetes version when the `kube_tag` label names none.
pub const DEFAULT_KUBE_TAG: &str = "v1.23.3-rancher1";
const DEFAULT_FIXED_SUBNET_CIDR: &str = "10.0.0.0/24";

/// The parameters whose change needs a stack update (the others are set at create).
pub const UPDATED_PARAMETERS: &[&str] = &[
    "number_of_masters",
    "number_of_minions",
    "master_image",
    "minion_image",
    "master_flavor",
    "minion_flavor",
    "kube_tag",
];

/// What a nodegroup's stack takes from the cluster stack's parameters.
const NODEGROUP_COPIED: &[&str] = &[
    "cluster_uuid",
    "ssh_key_name",
    "external_network",
    "floating_ip_enabled",
    "docker_volume_size",
    "boot_volume_size",
    "kube_tag",
];

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
    let external_network = spec.network.external_network.clone().ok_or_else(|| {
        DriverError::Permanent("Required parameter external_network not provided.".into())
    })?;
    let labels = &spec.labels;
    let fixed_subnet_cidr = label(labels, "fixed_subnet_cidr").unwrap_or(DEFAULT_FIXED_SUBNET_CIDR);
    let no_proxy = match spec.network.no_proxy.as_deref() {
        Some(list) if !list.is_empty() => format!("{list},{fixed_subnet_cidr}"),
        _ => fixed_subnet_cidr.to_string(),
    };
    let network_driver = spec.network.network_driver.as_deref().unwrap_or("flannel");
    let pods_cidr = match network_driver {
        "calico" => label(labels, "calico_ipv4pool"),
        _ => label(labels, "flannel_network_cidr"),
    }
    .unwrap_or("10.100.0.0/16");
    let tls_disabled = spec.tls_disabled;
    let floating_ip_enabled = spec.network.floating_ip_enabled;
    let node_count = spec.worker_count().unwrap_or(workers.node_count);
    let mut parameters = Map::new();
    let mut set = |key: &str, value: String| {
        parameters.insert(key.to_string(), Value::String(value));
    };
    set("cluster_uuid", spec.uuid.clone());
    set("ssh_key_name", spec.keypair.clone().unwrap_or_default());
    set("external_network", external_network);
    set(
        "fixed_network",
        spec.network.fixed_network.clone().unwrap_or_default(),
    );
    set(
        "fixed_network_name",
        spec.network
            .fixed_network
            .clone()
            .unwrap_or_else(|| format!("{}-private", spec.name)),
    );
    set(
        "fixed_subnet",
        spec.network.fixed_subnet.clone().unwrap_or_default(),
    );
    set("fixed_subnet_cidr", fixed_subnet_cidr.to_string());
    set(
        "dns_nameserver",
        spec.network
            .dns_nameserver
            .clone()
            .unwrap_or_else(|| "8.8.8.8".to_string()),
    );
    set(
        "http_proxy",
        spec.network.http_proxy.clone().unwrap_or_default(),
    );
    set(
        "https_proxy",
        spec.network.https_proxy.clone().unwrap_or_default(),
    );
    set("no_proxy", no_proxy);
    set("master_image", masters.image.clone());
    set("minion_image", workers.image.clone());
    if let Some(flavor) = &masters.flavor {
        set("master_flavor", flavor.clone());
    }
    if let Some(flavor) = &workers.flavor {
        set("minion_flavor", flavor.clone());
    }
    set("number_of_masters", masters.node_count.to_string());
    set("number_of_minions", workers.node_count.to_string());
    set("master_nodegroup_name", masters.name.clone());
    set("worker_nodegroup_name", workers.name.clone());
    set("minions_to_remove", spec.nodes_to_remove.join(","));
    set("network_driver", network_driver.to_string());
    set(
        "portal_network_cidr",
        label(labels, "service_cluster_ip_range")
            .unwrap_or("10.254.0.0/16")
            .to_string(),
    );
    set("flannel_network_cidr", pods_cidr.to_string());
    set("calico_ipv4pool", pods_cidr.to_string());
    for (key, default) in [
        ("flannel_network_subnetlen", "24"),
        ("flannel_backend", "vxlan"),
        ("kube_tag", DEFAULT_KUBE_TAG),
        ("etcd_tag", "v3.4.6"),
        ("container_runtime", "host-docker"),
        ("boot_volume_size", "0"),
        ("etcd_volume_size", "0"),
        ("octavia_provider", "amphora"),
        ("octavia_lb_algorithm", "ROUND_ROBIN"),
        (
            "cloud_provider_enabled",
            if access.cluster_user_trust {
                "true"
            } else {
                "false"
            },
        ),
        ("cinder_csi_enabled", "true"),
        ("keystone_auth_enabled", "true"),
        ("auto_scaling_enabled", "false"),
        ("min_node_count", "0"),
    ] {
        set(key, label(labels, key).unwrap_or(default).to_string());
    }
    set(
        "max_node_count",
        label(labels, "max_node_count")
            .map(str::to_string)
            .unwrap_or_else(|| node_count.saturating_add(1).to_string()),
    );
    set(
        "docker_volume_size",
        spec.docker_volume_size.unwrap_or(0).to_string(),
    );
    set(
        "docker_storage_driver",
        spec.docker_storage_driver
            .clone()
            .unwrap_or_else(|| "overlay2".to_string()),
    );
    set("tls_disabled", tls_disabled.to_string());
    set(
        "kubernetes_port",
        if tls_disabled { "8080" } else { "6443" }.to_string(),
    );
    set("master_lb_enabled", spec.master_lb_enabled.to_string());
    set("floating_ip_enabled", floating_ip_enabled.to_string());
    set(
        "master_lb_floating_ip_enabled",
        label(labels, "master_lb_floating_ip_enabled")
            .map(|value| is_true(value).to_string())
            .unwrap_or_else(|| floating_ip_enabled.to_string()),
    );
    set("magnum_url", access.magnum_url.clone());
    set("auth_url", access.auth_url.clone());
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

/// The Ignition configuration of the nodes of `role` (`master` or `worker`), whose kubelets
/// add `node_labels` (`k=v,…`) to their own, with `extra_files` (the masters' add-ons).
fn user_data(
    parameters: &Map<String, Value>,
    role: &str,
    node_labels: &str,
    extra_files: Vec<NodeFile>,
) -> Result<String, DriverError> {
    let text = |key: &str| {
        parameters
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let environment = ignition::environment_file(&[
        ("ROLE", role.to_string()),
        ("CLUSTER_UUID", text("cluster_uuid")),
        ("MAGNUM_URL", text("magnum_url")),
        ("AUTH_URL", text("auth_url")),
        ("REGION_NAME", text("region_name")),
        ("TRUSTEE_USER_ID", text("trustee_user_id")),
        ("TRUSTEE_PASSWORD", text("trustee_password")),
        ("TRUST_ID", text("trust_id")),
        ("TLS_DISABLED", text("tls_disabled")),
        ("KUBE_TAG", text("kube_tag")),
        ("ETCD_TAG", text("etcd_tag")),
        ("CONTAINER_RUNTIME", text("container_runtime")),
        ("NETWORK_DRIVER", text("network_driver")),
        ("FLANNEL_NETWORK_CIDR", text("flannel_network_cidr")),
        (
            "FLANNEL_NETWORK_SUBNETLEN",
            text("flannel_network_subnetlen"),
        ),
        ("FLANNEL_BACKEND", text("flannel_backend")),
        ("CALICO_IPV4POOL", text("calico_ipv4pool")),
        ("PORTAL_NETWORK_CIDR", text("portal_network_cidr")),
        ("KUBERNETES_PORT", text("kubernetes_port")),
        ("HTTP_PROXY", text("http_proxy")),
        ("HTTPS_PROXY", text("https_proxy")),
        ("NO_PROXY", text("no_proxy")),
        ("CLOUD_PROVIDER_ENABLED", text("cloud_provider_enabled")),
        ("CINDER_CSI_ENABLED", text("cinder_csi_enabled")),
        ("KEYSTONE_AUTH_ENABLED", text("keystone_auth_enabled")),
        ("AUTO_SCALING_ENABLED", text("auto_scaling_enabled")),
        ("DOCKER_STORAGE_DRIVER", text("docker_storage_driver")),
        ("NODE_LABELS", node_labels.to_string()),
    ]);
    let unit = "[Unit]\nDescription=Configure this node of a magnum-rs Kubernetes cluster\n\
                Wants=network-online.target\nAfter=network-online.target\n\
                ConditionPathExists=!/etc/magnum/configured\n\n[Service]\nType=oneshot\n\
                ExecStart=/usr/local/bin/magnum-configure-node\n\
                ExecStartPost=/usr/bin/touch /etc/magnum/configured\nRemainAfterExit=yes\n\n\
                [Install]\nWantedBy=multi-user.target\n";
    let mut files = vec![
        NodeFile {
            path: "/etc/magnum/cluster.env".to_string(),
            mode: 0o600,
            contents: environment,
        },
        NodeFile {
            path: "/usr/local/bin/magnum-configure-node".to_string(),
            mode: 0o755,
            contents: CONFIGURE_NODE.to_string(),
        },
    ];
    files.extend(extra_files);
    let config = ignition::config(&files, &[("magnum-configure-node.service", unit)]);
    serde_json::to_string(&config).map_err(|error| {
        DriverError::Permanent(format!("cannot encode the nodes' Ignition: {error}"))
    })
}

/// The add-ons the masters apply ([`addons`]), as files of their Ignition (mode 0600: the
/// cloud-facing ones hold the trustee's password).
fn master_addons(
    spec: &ClusterSpec,
    access: &NodeAccess,
    parameters: &Map<String, Value>,
) -> Vec<NodeFile> {
    addons::master_addons(spec, access, parameters)
        .into_iter()
        .map(|addon| NodeFile {
            path: format!("/etc/kubernetes/addons/{}.json", addon.name),
            mode: 0o600,
            contents: addon.manifest.to_string(),
        })
        .collect()
}

/// The whole stack for `spec`.
pub fn render(spec: &ClusterSpec, access: &NodeAccess) -> Result<RenderedStack, DriverError> {
    let mut parameters = parameters(spec, access)?;
    let master_user_data = user_data(
        &parameters,
        "master",
        "",
        master_addons(spec, access, &parameters),
    )?;
    let default_workers = spec.worker_groups().next().map(node_labels);
    let minion_user_data = user_data(
        &parameters,
        "worker",
        default_workers.as_deref().unwrap_or_default(),
        Vec::new(),
    )?;
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
/// `cluster_outputs`.
pub fn render_nodegroup(
    spec: &ClusterSpec,
    group: &NodeGroupSpec,
    cluster_outputs: &BTreeMap<String, Value>,
    access: &NodeAccess,
) -> Result<RenderedStack, DriverError> {
    let cluster = parameters(spec, access)?;
    let outputs = ClusterStackOutputs::read(cluster_outputs)?;
    let mut parameters = nodegroup_parameters(
        &cluster,
        NODEGROUP_COPIED,
        group,
        &outputs,
        &spec.nodes_to_remove,
    );
    parameters.insert(
        "minion_user_data".to_string(),
        Value::String(user_data(
            &cluster,
            "worker",
            &node_labels(group),
            Vec::new(),
        )?),
    );
    Ok(RenderedStack {
        template: NODEGROUP_TEMPLATE.to_string(),
        files: BTreeMap::from([("kubeminion.yaml".to_string(), MINION_TEMPLATE.to_string())]),
        parameters,
    })
}

/// The driver's definition.
#[derive(Debug, Clone, Copy, Default)]
pub struct FedoraCoreos;

impl StackDefinition for FedoraCoreos {
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
        sample_spec(3, labels)
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

    fn parameter(parameters: &Map<String, Value>, key: &str) -> String {
        parameters[key].as_str().unwrap_or_default().to_string()
    }

    #[test]
    fn the_spec_maps_onto_the_templates_parameters_with_the_spec_defaults() {
        let parameters = parameters(&spec(&[]), &access()).unwrap_or_default();
        let expected = [
            ("ssh_key_name", "mykey"),
            ("external_network", "public"),
            ("fixed_network", ""),
            ("fixed_network_name", "kube-private"),
            ("fixed_subnet_cidr", "10.0.0.0/24"),
            ("no_proxy", "example.org,10.0.0.0/24"),
            ("dns_nameserver", "8.8.8.8"),
            ("master_flavor", "m1.large"),
            ("minion_flavor", "m1.small"),
            ("number_of_masters", "1"),
            ("number_of_minions", "3"),
            ("network_driver", "flannel"),
            ("flannel_network_cidr", "10.100.0.0/16"),
            ("flannel_backend", "vxlan"),
            ("portal_network_cidr", "10.254.0.0/16"),
            ("kube_tag", DEFAULT_KUBE_TAG),
            ("kubernetes_port", "6443"),
            ("tls_disabled", "false"),
            ("max_node_count", "4"),
            ("master_lb_floating_ip_enabled", "true"),
            ("cloud_provider_enabled", "false"),
            ("docker_volume_size", "0"),
            ("magnum_url", "http://magnum:9511/v1"),
            ("trustee_password", "derived"),
            ("trust_id", "trust"),
        ];
        for (key, value) in expected {
            assert_eq!(parameter(&parameters, key), value, "{key}");
        }
    }

    #[test]
    fn labels_and_settings_change_the_parameters() {
        let mut calico = spec(&[
            ("calico_ipv4pool", "192.168.0.0/16"),
            ("kube_tag", "v1.27.4"),
            ("master_lb_floating_ip_enabled", "false"),
            ("service_cluster_ip_range", "10.96.0.0/12"),
        ]);
        calico.network.network_driver = Some("calico".to_string());
        calico.tls_disabled = true;
        calico.nodes_to_remove = vec!["0".to_string(), "2".to_string()];
        let parameters = parameters(&calico, &access()).unwrap_or_default();
        assert_eq!(parameter(&parameters, "calico_ipv4pool"), "192.168.0.0/16");
        assert_eq!(parameter(&parameters, "kube_tag"), "v1.27.4");
        assert_eq!(parameter(&parameters, "kubernetes_port"), "8080");
        assert_eq!(
            parameter(&parameters, "master_lb_floating_ip_enabled"),
            "false"
        );
        assert_eq!(
            parameter(&parameters, "portal_network_cidr"),
            "10.96.0.0/12"
        );
        assert_eq!(parameter(&parameters, "minions_to_remove"), "0,2");

        let mut nowhere = spec(&[]);
        nowhere.network.external_network = None;
        assert_eq!(
            parameters_error(&nowhere),
            "Required parameter external_network not provided."
        );
    }

    fn parameters_error(spec: &ClusterSpec) -> String {
        match parameters(spec, &access()) {
            Err(error) => error.to_string(),
            Ok(_) => String::new(),
        }
    }

    #[test]
    fn nodes_get_an_ignition_config_with_their_role_and_the_configure_script() {
        let rendered = render(&spec(&[]), &access()).unwrap_or_else(|_| RenderedStack {
            template: String::new(),
            files: BTreeMap::new(),
            parameters: Map::new(),
        });
        for (key, role) in [
            ("master_user_data", "master"),
            ("minion_user_data", "worker"),
        ] {
            let config: Value =
                serde_json::from_str(&parameter(&rendered.parameters, key)).unwrap_or_default();
            assert_eq!(
                config["ignition"]["version"],
                crate::ignition::IGNITION_VERSION
            );
            let environment = config["storage"]["files"][0]["contents"]["source"]
                .as_str()
                .unwrap_or_default();
            let decoded = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                environment.trim_start_matches("data:;base64,"),
            )
            .unwrap_or_default();
            let text = String::from_utf8(decoded).unwrap_or_default();
            assert!(text.contains(&format!("ROLE='{role}'")), "{text}");
            assert!(text.contains("TRUST_ID='trust'"), "{text}");
            assert_eq!(config["storage"]["files"][0]["mode"], 0o600);
            assert_eq!(
                config["storage"]["files"][1]["path"],
                "/usr/local/bin/magnum-configure-node"
            );
        }
        assert_eq!(rendered.files.len(), 2);
    }

    fn cluster_outputs() -> BTreeMap<String, Value> {
        BTreeMap::from([
            ("fixed_network".to_string(), Value::from("net-1")),
            ("fixed_subnet".to_string(), Value::from("subnet-1")),
            ("secgroup_minion".to_string(), Value::from("sg-1")),
            ("api_private_address".to_string(), Value::from("10.0.0.5")),
        ])
    }

    #[test]
    fn a_nodegroup_stack_takes_its_group_and_the_cluster_stacks_network() {
        let mut spec = spec(&[("kube_tag", "v1.27.4")]);
        let mut group = spec.nodegroups[1].clone();
        group.name = "gpu".to_string();
        group.uuid = Some("ng-uuid".to_string());
        group.is_default = false;
        group.node_count = 4;
        group.flavor = Some("g1.xlarge".to_string());
        group.image = "fedora-coreos-41".to_string();
        group.node_labels = BTreeMap::from([("tier".to_string(), "gpu".to_string())]);
        spec.nodegroups.push(group.clone());
        spec.nodes_to_remove = vec!["gpu-node-0".to_string()];
        let rendered = render_nodegroup(&spec, &group, &cluster_outputs(), &access())
            .unwrap_or_else(|error| panic!("{error}"));
        let expected = [
            ("cluster_uuid", spec.uuid.as_str()),
            ("nodegroup_name", "gpu"),
            ("number_of_minions", "4"),
            ("minion_flavor", "g1.xlarge"),
            ("minion_image", "fedora-coreos-41"),
            ("kube_tag", "v1.27.4"),
            ("existing_network", "net-1"),
            ("existing_subnet", "subnet-1"),
            ("existing_security_group", "sg-1"),
            ("existing_master_private_ip", "10.0.0.5"),
            ("minions_to_remove", "gpu-node-0"),
            ("ssh_key_name", "mykey"),
            ("external_network", "public"),
        ];
        for (key, value) in expected {
            assert_eq!(parameter(&rendered.parameters, key), value, "{key}");
        }
        // The parameters are exactly the template's (Heat refuses unknown ones).
        let template: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&rendered.template).unwrap_or_default();
        for key in rendered.parameters.keys() {
            assert!(
                template["parameters"].get(key.as_str()).is_some(),
                "{key} is not a parameter of the nodegroup template"
            );
        }
        assert!(rendered.files.contains_key("kubeminion.yaml"));
        let config: Value =
            serde_json::from_str(&parameter(&rendered.parameters, "minion_user_data"))
                .unwrap_or_default();
        let environment = config["storage"]["files"][0]["contents"]["source"]
            .as_str()
            .unwrap_or_default();
        let decoded = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            environment.trim_start_matches("data:;base64,"),
        )
        .unwrap_or_default();
        let text = String::from_utf8(decoded).unwrap_or_default();
        assert!(text.contains("NODE_LABELS='tier=gpu'"), "{text}");
        assert!(text.contains("ROLE='worker'"), "{text}");

        let mut missing = cluster_outputs();
        missing.remove("api_private_address");
        let refused = render_nodegroup(&spec, &group, &missing, &access());
        assert!(
            matches!(&refused, Err(DriverError::Permanent(reason)) if reason.contains("api_private_address")),
            "{refused:?}"
        );
    }

    fn ignition_paths(rendered: &RenderedStack, key: &str) -> Vec<String> {
        let config: Value =
            serde_json::from_str(&parameter(&rendered.parameters, key)).unwrap_or_default();
        config["storage"]["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|file| file["path"].as_str().map(str::to_string))
            .collect()
    }

    #[test]
    fn masters_of_an_autoscaled_cluster_get_the_cluster_autoscaler() {
        let addon = "/etc/kubernetes/addons/cluster-autoscaler.json".to_string();
        let autoscaled = render(
            &spec(&[
                ("auto_scaling_enabled", "true"),
                ("autoscaler_tag", "v1.28.0"),
            ]),
            &access(),
        )
        .unwrap_or_else(|error| panic!("{error}"));
        assert!(ignition_paths(&autoscaled, "master_user_data").contains(&addon));
        assert!(!ignition_paths(&autoscaled, "minion_user_data").contains(&addon));
        let config: Value =
            serde_json::from_str(&parameter(&autoscaled.parameters, "master_user_data"))
                .unwrap_or_default();
        let file = config["storage"]["files"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|file| file["path"] == addon.as_str())
            .cloned()
            .unwrap_or_default();
        assert_eq!(file["mode"], 0o600, "it holds the trustee's password");
        let source = file["contents"]["source"].as_str().unwrap_or_default();
        let decoded = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            source.trim_start_matches("data:;base64,"),
        )
        .unwrap_or_default();
        let manifest: Value = serde_json::from_slice(&decoded).unwrap_or_default();
        assert_eq!(manifest["kind"], "List");
        assert!(manifest.to_string().contains("cluster-autoscaler:v1.28.0"));

        let fixed = render(&spec(&[]), &access()).unwrap_or_else(|error| panic!("{error}"));
        let paths = ignition_paths(&fixed, "master_user_data");
        assert!(!paths.contains(&addon));
        // The defaults: flannel and Cinder CSI.
        assert!(paths.contains(&"/etc/kubernetes/addons/flannel.json".to_string()));
        assert!(paths.contains(&"/etc/kubernetes/addons/cinder-csi.json".to_string()));
    }
}
