//! The Kubernetes add-ons a `k8s_fedora_coreos_v1` cluster's masters apply, chosen by the
//! cluster's labels with spec §9.4's defaults, each rendered as one `v1` `List` that the
//! masters' configure script applies with `kubectl apply` (idempotent, so every master may):
//!
//! - `flannel` (network_driver flannel): the pod network, with the seed's
//!   `flannel_network_cidr`, `flannel_network_subnetlen` and `flannel_backend`;
//! - `openstack-cloud-controller-manager` (`cloud_provider_enabled`): nodes, routes and
//!   `LoadBalancer` services in the cloud;
//! - `cinder-csi` (`cinder_csi_enabled`): persistent volumes as Cinder volumes, marked with
//!   the cluster's uuid (`--cluster`), which is how a cluster delete finds the volumes to
//!   remove;
//! - `k8s-keystone-auth` (`keystone_auth_enabled`): Keystone tokens as Kubernetes
//!   credentials, the apiserver's webhook (policy: `keystone_auth_default_policy`, else the
//!   cluster's project members may do anything);
//! - `cluster-autoscaler` (`auto_scaling_enabled`, [`crate::autoscaler`]).
//!
//! The cloud-facing ones authenticate as the cluster's trustee within its trust. Other
//! labelled components (calico, ingress controllers, monitoring) are not deployed by this
//! driver yet. That the manifests run is for a real cloud to show; here they are
//! checked for shape.

use crate::autoscaler::{self, quoted, AutoscalerSettings};
use crate::definition::{is_true, label, NodeAccess};
use magnum_driver::ClusterSpec;
use serde_json::{json, Value};

const NAMESPACE: &str = "kube-system";

/// One add-on: its file name under the masters' add-on directory and its manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Addon {
    pub name: &'static str,
    pub manifest: Value,
}

/// The trustee's credentials in the gcfg form the OpenStack cloud provider and the Cinder
/// CSI plugin read (values quoted).
fn cloud_conf(access: &NodeAccess) -> String {
    format!(
        "[Global]\nauth-url = {}\nuser-id = {}\npassword = {}\ntrust-id = {}\nregion = {}\n\n\
         [LoadBalancer]\nuse-octavia = true\n\n[BlockStorage]\nbs-version = v3\n",
        quoted(&access.auth_url),
        quoted(&access.trustee_user_id),
        quoted(access.trustee_password.expose()),
        quoted(&access.trust_id),
        quoted(&access.region_name),
    )
}

/// `image` from `default_prefix`, or from the `container_infra_prefix` mirror.
fn image(spec: &ClusterSpec, default_prefix: &str, name: &str, tag: &str) -> String {
    let prefix = label(&spec.labels, "container_infra_prefix")
        .filter(|prefix| !prefix.is_empty())
        .unwrap_or(default_prefix);
    format!("{prefix}{name}:{tag}")
}

/// A label's value, else spec §9.4's default.
fn tag<'a>(spec: &'a ClusterSpec, key: &str, default: &'a str) -> &'a str {
    label(&spec.labels, key).unwrap_or(default)
}

fn enabled(spec: &ClusterSpec, key: &str, default: bool) -> bool {
    label(&spec.labels, key).map(is_true).unwrap_or(default)
}

fn list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "items": items})
}

fn service_account(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
           "metadata": {"name": name, "namespace": NAMESPACE}})
}

/// A ClusterRole with `rules` and its binding to the service account of the same name.
fn cluster_role(name: &str, rules: Value) -> [Value; 2] {
    [
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": name}, "rules": rules}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": name},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": name},
               "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]}),
    ]
}

fn cloud_config_secret(name: &str, access: &NodeAccess) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": name, "namespace": NAMESPACE},
           "stringData": {"cloud.conf": cloud_conf(access)}})
}

const MASTER_TOLERATIONS: &str = r#"[
    {"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"},
    {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
    {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true",
     "effect": "NoSchedule"},
    {"key": "CriticalAddonsOnly", "operator": "Exists"}
]"#;

fn master_tolerations() -> Value {
    serde_json::from_str(MASTER_TOLERATIONS).unwrap_or(Value::Null)
}

/// The pod network: flannel with the kube subnet manager (the controller manager allocates
/// each node's pod CIDR).
pub fn flannel(spec: &ClusterSpec, pods_cidr: &str, subnet_length: &str, backend: &str) -> Value {
    let name = "flannel";
    let subnet_length: u32 = subnet_length.parse().unwrap_or(24);
    let net_conf = json!({
        "Network": pods_cidr,
        "SubnetLen": subnet_length,
        "Backend": {"Type": backend},
    });
    let cni_conf = json!({
        "name": "cbr0",
        "cniVersion": "0.3.1",
        "plugins": [
            {"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    });
    let [role, binding] = cluster_role(
        name,
        json!([
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
        ]),
    );
    let flannel_image = image(
        spec,
        "quay.io/coreos/",
        "flannel",
        tag(spec, "flannel_tag", "v0.15.1"),
    );
    let cni_image = image(
        spec,
        "quay.io/coreos/",
        "flannel-cni",
        tag(spec, "flannel_cni_tag", "v0.3.0"),
    );
    let host_path = |path: &str| json!({"path": path});
    list(vec![
        service_account(name),
        role,
        binding,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "kube-flannel-cfg", "namespace": NAMESPACE},
               "data": {"net-conf.json": net_conf.to_string(),
                        "cni-conf.json": cni_conf.to_string()}}),
        json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "kube-flannel", "namespace": NAMESPACE},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "hostNetwork": true,
                        "priorityClassName": "system-node-critical",
                        "serviceAccountName": name,
                        "tolerations": [{"operator": "Exists", "effect": "NoSchedule"}],
                        "initContainers": [{
                            "name": "install-cni",
                            "image": cni_image,
                            "command": ["cp"],
                            "args": ["-f", "/etc/kube-flannel/cni-conf.json",
                                     "/etc/cni/net.d/10-flannel.conflist"],
                            "volumeMounts": [
                                {"name": "cni", "mountPath": "/etc/cni/net.d"},
                                {"name": "flannel-cfg", "mountPath": "/etc/kube-flannel/"},
                            ],
                        }],
                        "containers": [{
                            "name": "kube-flannel",
                            "image": flannel_image,
                            "command": ["/opt/bin/flanneld"],
                            "args": ["--ip-masq", "--kube-subnet-mgr"],
                            "resources": {"requests": {"cpu": "100m", "memory": "50Mi"},
                                          "limits": {"cpu": "100m", "memory": "50Mi"}},
                            "securityContext": {"privileged": false,
                                                "capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}},
                            "env": [
                                {"name": "POD_NAME",
                                 "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                {"name": "POD_NAMESPACE",
                                 "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                            ],
                            "volumeMounts": [
                                {"name": "run", "mountPath": "/run/flannel"},
                                {"name": "flannel-cfg", "mountPath": "/etc/kube-flannel/"},
                                {"name": "xtables-lock", "mountPath": "/run/xtables.lock"},
                            ],
                        }],
                        "volumes": [
                            {"name": "run", "hostPath": host_path("/run/flannel")},
                            {"name": "cni", "hostPath": host_path("/etc/cni/net.d")},
                            {"name": "flannel-cfg", "configMap": {"name": "kube-flannel-cfg"}},
                            {"name": "xtables-lock",
                             "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}},
                        ],
                    },
                },
            },
        }),
    ])
}

/// The OpenStack cloud controller manager, on the masters.
pub fn cloud_controller_manager(spec: &ClusterSpec, access: &NodeAccess) -> Value {
    let name = "cloud-controller-manager";
    let [role, binding] = cluster_role(
        name,
        json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "verbs": ["get", "create", "update"]},
            {"apiGroups": [""], "resources": ["events"],
             "verbs": ["create", "patch", "update"]},
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["*"]},
            {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
            {"apiGroups": [""], "resources": ["services"],
             "verbs": ["list", "patch", "update", "watch"]},
            {"apiGroups": [""], "resources": ["services/status"], "verbs": ["patch"]},
            {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["create", "get"]},
            {"apiGroups": [""], "resources": ["persistentvolumes"],
             "verbs": ["*"]},
            {"apiGroups": [""], "resources": ["endpoints"],
             "verbs": ["create", "get", "list", "watch", "update"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "get", "watch"]},
        ]),
    );
    list(vec![
        service_account(name),
        role,
        binding,
        cloud_config_secret("cloud-config", access),
        json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "openstack-cloud-controller-manager", "namespace": NAMESPACE},
            "spec": {
                "selector": {"matchLabels": {"k8s-app": "openstack-cloud-controller-manager"}},
                "template": {
                    "metadata": {"labels": {"k8s-app": "openstack-cloud-controller-manager"}},
                    "spec": {
                        "hostNetwork": true,
                        "serviceAccountName": name,
                        "nodeSelector": {"magnum.openstack.org/role": "master"},
                        "tolerations": master_tolerations(),
                        "containers": [{
                            "name": "openstack-cloud-controller-manager",
                            "image": image(spec, "docker.io/k8scloudprovider/",
                                           "openstack-cloud-controller-manager",
                                           tag(spec, "cloud_provider_tag", "v1.23.1")),
                            "args": [
                                "/bin/openstack-cloud-controller-manager",
                                "--v=1",
                                format!("--cluster-name={}", spec.uuid),
                                "--cloud-config=/etc/config/cloud.conf",
                                "--cloud-provider=openstack",
                                "--use-service-account-credentials=true",
                                "--bind-address=127.0.0.1",
                            ],
                            "resources": {"requests": {"cpu": "200m"}},
                            "volumeMounts": [
                                {"name": "cloud-config-volume", "mountPath": "/etc/config",
                                 "readOnly": true},
                            ],
                        }],
                        "volumes": [
                            {"name": "cloud-config-volume", "secret": {"secretName": "cloud-config"}},
                        ],
                    },
                },
            },
        }),
    ])
}

/// The Cinder CSI plugin: its controller on the masters and its node plugin everywhere.
pub fn cinder_csi(spec: &ClusterSpec, access: &NodeAccess) -> Value {
    let controller = "csi-cinder-controller-sa";
    let node = "csi-cinder-node-sa";
    let plugin = image(
        spec,
        "docker.io/k8scloudprovider/",
        "cinder-csi-plugin",
        tag(spec, "cinder_csi_plugin_tag", "v1.23.0"),
    );
    let sidecar = |name: &str, key: &str, default: &str| {
        image(spec, "quay.io/k8scsi/", name, tag(spec, key, default))
    };
    let socket_mount = json!({"name": "socket-dir", "mountPath": "/csi"});
    let secret_mount =
        json!({"name": "secret-cinderplugin", "mountPath": "/etc/config", "readOnly": true});
    let plugin_args = |endpoint: &str| {
        json!([
            "/bin/cinder-csi-plugin",
            format!("--endpoint={endpoint}"),
            "--cloud-config=/etc/config/cloud.conf",
            format!("--cluster={}", spec.uuid),
        ])
    };
    let [controller_role, controller_binding] = cluster_role(
        controller,
        json!([
            {"apiGroups": [""], "resources": ["persistentvolumes"],
             "verbs": ["get", "list", "watch", "create", "delete", "patch"]},
            {"apiGroups": [""], "resources": ["persistentvolumeclaims"],
             "verbs": ["get", "list", "watch", "update"]},
            {"apiGroups": [""], "resources": ["persistentvolumeclaims/status"],
             "verbs": ["patch"]},
            {"apiGroups": [""], "resources": ["events"],
             "verbs": ["list", "watch", "create", "update", "patch"]},
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["storage.k8s.io"],
             "resources": ["storageclasses", "csinodes", "volumeattachments",
                           "volumeattachments/status"],
             "verbs": ["get", "list", "watch", "patch", "update"]},
            {"apiGroups": ["snapshot.storage.k8s.io"],
             "resources": ["volumesnapshots", "volumesnapshotcontents",
                           "volumesnapshotclasses", "volumesnapshotcontents/status"],
             "verbs": ["get", "list", "watch", "create", "update", "delete", "patch"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "verbs": ["get", "watch", "list", "delete", "update", "create"]},
        ]),
    );
    let [node_role, node_binding] = cluster_role(
        node,
        json!([{"apiGroups": [""], "resources": ["events"],
                "verbs": ["get", "list", "watch", "create", "update", "patch"]}]),
    );
    let controller_sidecars = [
        ("csi-attacher", "csi_attacher_tag", "v3.3.0"),
        ("csi-provisioner", "csi_provisioner_tag", "v3.0.0"),
        ("csi-snapshotter", "csi_snapshotter_tag", "v4.2.1"),
        ("csi-resizer", "csi_resizer_tag", "v1.3.0"),
    ]
    .into_iter()
    .map(|(name, key, default)| {
        json!({"name": name, "image": sidecar(name, key, default),
               "args": ["--csi-address=$(ADDRESS)", "--timeout=3m", "--leader-election=true"],
               "env": [{"name": "ADDRESS", "value": "/var/lib/csi/sockets/pluginproxy/csi.sock"}],
               "volumeMounts": [{"name": "socket-dir",
                                 "mountPath": "/var/lib/csi/sockets/pluginproxy/"}]})
    });
    let mut controller_containers: Vec<Value> = controller_sidecars.collect();
    controller_containers.push(json!({
        "name": "cinder-csi-plugin",
        "image": plugin,
        "args": plugin_args("unix://csi/csi.sock"),
        "volumeMounts": [
            {"name": "socket-dir", "mountPath": "/csi"},
            secret_mount.clone(),
        ],
    }));
    let registrar = sidecar(
        "csi-node-driver-registrar",
        "csi_node_driver_registrar_tag",
        "v2.4.0",
    );
    list(vec![
        service_account(controller),
        controller_role,
        controller_binding,
        service_account(node),
        node_role,
        node_binding,
        cloud_config_secret("cloud-config-cinder", access),
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
               "metadata": {"name": "cinder.csi.openstack.org"},
               "spec": {"attachRequired": true, "podInfoOnMount": true,
                        "volumeLifecycleModes": ["Persistent", "Ephemeral"]}}),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "csi-cinder-controllerplugin", "namespace": NAMESPACE},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "csi-cinder-controllerplugin"}},
                "template": {
                    "metadata": {"labels": {"app": "csi-cinder-controllerplugin"}},
                    "spec": {
                        "serviceAccountName": controller,
                        "nodeSelector": {"magnum.openstack.org/role": "master"},
                        "tolerations": master_tolerations(),
                        "containers": controller_containers,
                        "volumes": [
                            {"name": "socket-dir", "emptyDir": {}},
                            {"name": "secret-cinderplugin",
                             "secret": {"secretName": "cloud-config-cinder"}},
                        ],
                    },
                },
            },
        }),
        json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "csi-cinder-nodeplugin", "namespace": NAMESPACE},
            "spec": {
                "selector": {"matchLabels": {"app": "csi-cinder-nodeplugin"}},
                "template": {
                    "metadata": {"labels": {"app": "csi-cinder-nodeplugin"}},
                    "spec": {
                        "serviceAccountName": node,
                        "hostNetwork": true,
                        "tolerations": [{"operator": "Exists"}],
                        "containers": [
                            {"name": "node-driver-registrar", "image": registrar,
                             "args": ["--csi-address=$(ADDRESS)",
                                      "--kubelet-registration-path=$(DRIVER_REG_SOCK_PATH)"],
                             "env": [
                                 {"name": "ADDRESS", "value": "/csi/csi.sock"},
                                 {"name": "DRIVER_REG_SOCK_PATH",
                                  "value": "/var/lib/kubelet/plugins/cinder.csi.openstack.org/csi.sock"},
                             ],
                             "volumeMounts": [
                                 socket_mount.clone(),
                                 {"name": "registration-dir", "mountPath": "/registration"},
                             ]},
                            {"name": "cinder-csi-plugin", "image": plugin,
                             "args": plugin_args("unix://csi/csi.sock"),
                             "securityContext": {"privileged": true,
                                                 "allowPrivilegeEscalation": true,
                                                 "capabilities": {"add": ["SYS_ADMIN"]}},
                             "volumeMounts": [
                                 socket_mount,
                                 {"name": "kubelet-dir", "mountPath": "/var/lib/kubelet",
                                  "mountPropagation": "Bidirectional"},
                                 {"name": "pods-probe-dir", "mountPath": "/dev",
                                  "mountPropagation": "HostToContainer"},
                                 secret_mount,
                             ]},
                        ],
                        "volumes": [
                            {"name": "socket-dir", "hostPath": {
                                "path": "/var/lib/kubelet/plugins/cinder.csi.openstack.org",
                                "type": "DirectoryOrCreate"}},
                            {"name": "registration-dir", "hostPath": {
                                "path": "/var/lib/kubelet/plugins_registry/", "type": "Directory"}},
                            {"name": "kubelet-dir", "hostPath": {
                                "path": "/var/lib/kubelet", "type": "Directory"}},
                            {"name": "pods-probe-dir", "hostPath": {
                                "path": "/dev", "type": "Directory"}},
                            {"name": "secret-cinderplugin",
                             "secret": {"secretName": "cloud-config-cinder"}},
                        ],
                    },
                },
            },
        }),
    ])
}

/// Where the masters' kube-apiserver asks k8s-keystone-auth (its webhook) about tokens.
pub const KEYSTONE_AUTH_LISTEN: &str = "127.0.0.1:8443";

/// The default policy of k8s-keystone-auth: the members of the cluster's project may do
/// anything in the cluster, as upstream's default lets the project administer its own
/// cluster.
fn keystone_auth_policy(project_id: &str) -> Value {
    json!([{
        "resource": {"verbs": ["*"], "resources": ["*"], "version": "*", "namespace": "*"},
        "match": [
            {"type": "role", "values": ["member"]},
            {"type": "project", "values": [project_id]},
        ],
    }, {
        "nonresource": {"verbs": ["*"], "path": "*"},
        "match": [
            {"type": "role", "values": ["member"]},
            {"type": "project", "values": [project_id]},
        ],
    }])
}

/// k8s-keystone-auth on the masters: Keystone tokens as Kubernetes credentials (the
/// apiserver's authentication and authorization webhook), with its policy in a ConfigMap.
pub fn keystone_auth(spec: &ClusterSpec, access: &NodeAccess) -> Value {
    let name = "k8s-keystone-auth";
    let [role, binding] = cluster_role(
        name,
        json!([{"apiGroups": [""], "resources": ["configmaps"],
                "verbs": ["get", "list", "watch"]}]),
    );
    let policy = label(&spec.labels, "keystone_auth_default_policy")
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .unwrap_or_else(|| keystone_auth_policy(&spec.credentials.project_id));
    list(vec![
        service_account(name),
        role,
        binding,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "k8s-keystone-auth-policy", "namespace": NAMESPACE},
               "data": {"policies": policy.to_string()}}),
        json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "selector": {"matchLabels": {"k8s-app": name}},
                "template": {
                    "metadata": {"labels": {"k8s-app": name}},
                    "spec": {
                        "hostNetwork": true,
                        "serviceAccountName": name,
                        "nodeSelector": {"magnum.openstack.org/role": "master"},
                        "tolerations": master_tolerations(),
                        "containers": [{
                            "name": name,
                            "image": image(spec, "docker.io/k8scloudprovider/", name,
                                           tag(spec, "k8s_keystone_auth_tag", "v1.18.0")),
                            "args": [
                                "./bin/k8s-keystone-auth",
                                "--tls-cert-file=/etc/kubernetes/certs/keystone-auth.crt",
                                "--tls-private-key-file=/etc/kubernetes/certs/keystone-auth.key",
                                "--policy-configmap-name=k8s-keystone-auth-policy",
                                format!("--keystone-url={}", access.auth_url),
                                format!("--listen={KEYSTONE_AUTH_LISTEN}"),
                            ],
                            "volumeMounts": [
                                {"name": "certs", "mountPath": "/etc/kubernetes/certs",
                                 "readOnly": true},
                            ],
                        }],
                        "volumes": [
                            {"name": "certs", "hostPath": {"path": "/etc/kubernetes/certs",
                                                           "type": "Directory"}},
                        ],
                    },
                },
            },
        }),
    ])
}

/// The add-ons the cluster's labels and settings ask for, in the order they are applied.
/// `parameters` are the cluster stack's (pod network, flannel settings).
pub fn master_addons(
    spec: &ClusterSpec,
    access: &NodeAccess,
    parameters: &serde_json::Map<String, Value>,
) -> Vec<Addon> {
    let text = |key: &str| {
        parameters
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut addons = Vec::new();
    if text("network_driver") == "flannel" {
        addons.push(Addon {
            name: "flannel",
            manifest: flannel(
                spec,
                &text("flannel_network_cidr"),
                &text("flannel_network_subnetlen"),
                &text("flannel_backend"),
            ),
        });
    }
    if enabled(spec, "cloud_provider_enabled", access.cluster_user_trust) {
        addons.push(Addon {
            name: "openstack-cloud-controller-manager",
            manifest: cloud_controller_manager(spec, access),
        });
    }
    if enabled(spec, "cinder_csi_enabled", true) {
        addons.push(Addon {
            name: "cinder-csi",
            manifest: cinder_csi(spec, access),
        });
    }
    if enabled(spec, "keystone_auth_enabled", true) {
        addons.push(Addon {
            name: "k8s-keystone-auth",
            manifest: keystone_auth(spec, access),
        });
    }
    if enabled(spec, "auto_scaling_enabled", false) {
        let labels = &spec.labels;
        addons.push(Addon {
            name: "cluster-autoscaler",
            manifest: autoscaler::manifest(&AutoscalerSettings {
                cluster_uuid: &spec.uuid,
                auth_url: &access.auth_url,
                region_name: &access.region_name,
                trustee_user_id: &access.trustee_user_id,
                trustee_password: access.trustee_password.expose(),
                trust_id: &access.trust_id,
                tag: label(labels, "autoscaler_tag").unwrap_or(autoscaler::DEFAULT_AUTOSCALER_TAG),
                image_prefix: label(labels, "container_infra_prefix")
                    .filter(|prefix| !prefix.is_empty()),
            }),
        });
    }
    addons
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnum_driver::test_doubles::sample_spec;

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

    fn parameters(network_driver: &str) -> serde_json::Map<String, Value> {
        [
            ("network_driver", network_driver),
            ("flannel_network_cidr", "10.100.0.0/16"),
            ("flannel_network_subnetlen", "26"),
            ("flannel_backend", "host-gw"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), Value::from(value)))
        .collect()
    }

    fn names(addons: &[Addon]) -> Vec<&'static str> {
        addons.iter().map(|addon| addon.name).collect()
    }

    /// Every item of a List: a kind, a name, and a namespace where it is namespaced.
    fn well_formed(list: &Value) {
        assert_eq!(list["kind"], "List");
        for item in list["items"].as_array().into_iter().flatten() {
            assert!(item["apiVersion"].is_string(), "{item}");
            assert!(item["kind"].is_string(), "{item}");
            assert!(item["metadata"]["name"].is_string(), "{item}");
        }
    }

    fn find<'a>(list: &'a Value, kind: &str) -> &'a Value {
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|item| item["kind"] == kind)
            .unwrap_or(&Value::Null)
    }

    #[test]
    fn the_labels_choose_the_addons_with_the_spec_defaults() {
        let defaults = master_addons(&sample_spec(2, &[]), &access(), &parameters("flannel"));
        assert_eq!(
            names(&defaults),
            ["flannel", "cinder-csi", "k8s-keystone-auth"]
        );
        let everything = master_addons(
            &sample_spec(
                2,
                &[
                    ("cloud_provider_enabled", "true"),
                    ("auto_scaling_enabled", "true"),
                ],
            ),
            &access(),
            &parameters("calico"),
        );
        assert_eq!(
            names(&everything),
            [
                "openstack-cloud-controller-manager",
                "cinder-csi",
                "k8s-keystone-auth",
                "cluster-autoscaler"
            ]
        );
        let none = master_addons(
            &sample_spec(
                2,
                &[
                    ("cinder_csi_enabled", "false"),
                    ("keystone_auth_enabled", "false"),
                ],
            ),
            &access(),
            &parameters("calico"),
        );
        assert!(none.is_empty());
        for addon in defaults.iter().chain(&everything) {
            well_formed(&addon.manifest);
        }
    }

    #[test]
    fn flannel_takes_the_seeds_network_labels() {
        let spec = sample_spec(2, &[("flannel_tag", "v0.20.0")]);
        let list = flannel(&spec, "10.100.0.0/16", "26", "host-gw");
        let config = &find(&list, "ConfigMap")["data"]["net-conf.json"];
        let config: Value =
            serde_json::from_str(config.as_str().unwrap_or_default()).unwrap_or_default();
        assert_eq!(config["Network"], "10.100.0.0/16");
        assert_eq!(config["SubnetLen"], 26);
        assert_eq!(config["Backend"]["Type"], "host-gw");
        let daemonset = find(&list, "DaemonSet");
        assert_eq!(
            daemonset["spec"]["template"]["spec"]["containers"][0]["image"],
            "quay.io/coreos/flannel:v0.20.0"
        );
    }

    #[test]
    fn cinder_volumes_are_marked_with_the_cluster_and_made_as_the_trustee() {
        let spec = sample_spec(2, &[("container_infra_prefix", "mirror.example.org/")]);
        let list = cinder_csi(&spec, &access());
        let text = list.to_string();
        assert!(text.contains(&format!("--cluster={}", spec.uuid)), "{text}");
        assert!(text.contains("mirror.example.org/cinder-csi-plugin:v1.23.0"));
        assert!(text.contains("mirror.example.org/csi-attacher:v3.3.0"));
        let conf = find(&list, "Secret")["stringData"]["cloud.conf"]
            .as_str()
            .unwrap_or_default();
        assert!(conf.contains("trust-id = \"trust\""), "{conf}");
        assert!(conf.contains("user-id = \"trustee\""), "{conf}");
        assert_eq!(
            find(&list, "CSIDriver")["metadata"]["name"],
            "cinder.csi.openstack.org"
        );
    }

    #[test]
    fn the_cloud_controller_manager_runs_on_the_masters_for_this_cluster() {
        let spec = sample_spec(2, &[]);
        let list = cloud_controller_manager(&spec, &access());
        let pod = &find(&list, "DaemonSet")["spec"]["template"]["spec"];
        assert_eq!(pod["nodeSelector"]["magnum.openstack.org/role"], "master");
        let args = pod["containers"][0]["args"].to_string();
        assert!(
            args.contains(&format!("--cluster-name={}", spec.uuid)),
            "{args}"
        );
        assert!(pod["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .ends_with("openstack-cloud-controller-manager:v1.23.1"));
    }

    #[test]
    fn keystone_auth_lets_the_clusters_project_in_unless_a_policy_is_given() {
        let mut spec = sample_spec(2, &[]);
        spec.credentials.project_id = "project-a".to_string();
        let list = keystone_auth(&spec, &access());
        let policy: Value = serde_json::from_str(
            find(&list, "ConfigMap")["data"]["policies"]
                .as_str()
                .unwrap_or_default(),
        )
        .unwrap_or_default();
        assert_eq!(policy[0]["match"][1]["values"][0], "project-a");
        let args = find(&list, "DaemonSet")["spec"]["template"]["spec"]["containers"][0]["args"]
            .to_string();
        assert!(
            args.contains("--keystone-url=http://keystone:5000/v3"),
            "{args}"
        );
        assert!(args.contains(KEYSTONE_AUTH_LISTEN), "{args}");

        let own = r#"[{"resource": {"verbs": ["get"], "resources": ["pods"], "version": "*", "namespace": "default"}, "match": [{"type": "user", "values": ["alice"]}]}]"#;
        let spec = sample_spec(2, &[("keystone_auth_default_policy", own)]);
        let list = keystone_auth(&spec, &access());
        let policy: Value = serde_json::from_str(
            find(&list, "ConfigMap")["data"]["policies"]
                .as_str()
                .unwrap_or_default(),
        )
        .unwrap_or_default();
        assert_eq!(policy[0]["match"][0]["values"][0], "alice");
    }
}
