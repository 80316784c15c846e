//! The Kubernetes cluster-autoscaler with its Magnum cloud provider, as a Kubernetes
//! cluster of the `k8s_fedora_coreos_v1` driver runs it when the label
//! `auto_scaling_enabled` is true (upstream's way of autoscaling Kubernetes clusters).
//!
//! The autoscaler runs on the masters and resizes the cluster's worker nodegroups through
//! magnum's own API (`POST /v1/clusters/{id}/actions/resize`), authenticated as the
//! cluster's trustee within its trust, within each group's `min_node_count` and
//! `max_node_count` (found by auto-discovery of the worker nodegroups; the default group's
//! bounds come from the cluster's labels of the same names). Rendered here as one `v1`
//! `List` that the first master applies with `kubectl apply`.

use serde_json::{json, Value};

/// The cluster-autoscaler image when the `autoscaler_tag` label names no version (spec
/// §9.4's default).
pub const DEFAULT_AUTOSCALER_TAG: &str = "v1.18.1";

/// Where the autoscaler's image (built with the Magnum cloud provider) comes from when
/// `container_infra_prefix` names no mirror.
const DEFAULT_IMAGE_PREFIX: &str = "docker.io/openstackmagnum/";

/// What the autoscaler needs to know of its cluster.
pub struct AutoscalerSettings<'a> {
    pub cluster_uuid: &'a str,
    pub auth_url: &'a str,
    pub region_name: &'a str,
    pub trustee_user_id: &'a str,
    pub trustee_password: &'a str,
    pub trust_id: &'a str,
    /// The `autoscaler_tag` label, else [`DEFAULT_AUTOSCALER_TAG`].
    pub tag: &'a str,
    /// The `container_infra_prefix` label, when it names a mirror.
    pub image_prefix: Option<&'a str>,
}

impl std::fmt::Debug for AutoscalerSettings<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoscalerSettings")
            .field("cluster_uuid", &self.cluster_uuid)
            .field("auth_url", &self.auth_url)
            .field("trustee_user_id", &self.trustee_user_id)
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

/// `value` as a quoted gcfg string (the syntax of the OpenStack cloud provider's, Cinder
/// CSI's and the autoscaler's cloud configuration).
pub(crate) fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The autoscaler's cloud configuration: the trustee's credentials, read by the Magnum
/// cloud provider (gcfg syntax, values quoted).
fn cloud_config(settings: &AutoscalerSettings) -> String {
    format!(
        "[Global]\nauth-url = {}\nuser-id = {}\npassword = {}\ntrust-id = {}\nregion = {}\n",
        quoted(settings.auth_url),
        quoted(settings.trustee_user_id),
        quoted(settings.trustee_password),
        quoted(settings.trust_id),
        quoted(settings.region_name),
    )
}

/// Everything the autoscaler needs in the cluster, as one `v1` `List`.
pub fn manifest(settings: &AutoscalerSettings) -> Value {
    let name = "cluster-autoscaler";
    let namespace = "kube-system";
    let metadata = json!({"name": name, "namespace": namespace});
    let image = format!(
        "{}cluster-autoscaler:{}",
        settings.image_prefix.unwrap_or(DEFAULT_IMAGE_PREFIX),
        settings.tag
    );
    let rules = json!([
        {"apiGroups": [""], "resources": ["events", "endpoints"], "verbs": ["create", "patch"]},
        {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["update"]},
        {"apiGroups": [""], "resources": ["endpoints"], "resourceNames": [name],
         "verbs": ["get", "update"]},
        {"apiGroups": [""], "resources": ["nodes"],
         "verbs": ["watch", "list", "get", "update"]},
        {"apiGroups": [""],
         "resources": ["namespaces", "pods", "services", "replicationcontrollers",
                       "persistentvolumeclaims", "persistentvolumes", "configmaps"],
         "verbs": ["watch", "list", "get"]},
        {"apiGroups": ["extensions", "apps"],
         "resources": ["daemonsets", "replicasets", "statefulsets"],
         "verbs": ["watch", "list", "get"]},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"],
         "verbs": ["watch", "list"]},
        {"apiGroups": ["storage.k8s.io"],
         "resources": ["storageclasses", "csinodes", "csidrivers", "csistoragecapacities"],
         "verbs": ["watch", "list", "get"]},
        {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"],
         "verbs": ["watch", "list", "get"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["create", "get", "update"]},
    ]);
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "serviceAccountName": name,
                    "nodeSelector": {"magnum.openstack.org/role": "master"},
                    "tolerations": [
                        {"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"},
                        {"key": "node-role.kubernetes.io/control-plane",
                         "effect": "NoSchedule"},
                        {"key": "CriticalAddonsOnly", "operator": "Exists"},
                    ],
                    "containers": [{
                        "name": name,
                        "image": image,
                        "command": [
                            "./cluster-autoscaler",
                            "--cloud-provider=magnum",
                            format!("--cluster-name={}", settings.cluster_uuid),
                            "--cloud-config=/config/cloud-config",
                            "--node-group-auto-discovery=magnum:role=worker",
                            "--scale-down-unneeded-time=10m",
                            "--scale-down-delay-after-add=10m",
                            "--logtostderr=true",
                            "--v=2",
                        ],
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "300Mi"},
                            "limits": {"cpu": "500m", "memory": "600Mi"},
                        },
                        "volumeMounts": [
                            {"name": "cloud-config", "mountPath": "/config", "readOnly": true},
                        ],
                    }],
                    "volumes": [
                        {"name": "cloud-config", "secret": {"secretName": "cluster-autoscaler-cloud-config"}},
                    ],
                },
            },
        },
    });
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": name}, "rules": rules},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": name},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                         "name": name},
             "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]},
            {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": "cluster-autoscaler-cloud-config", "namespace": namespace},
             "stringData": {"cloud-config": cloud_config(settings)}},
            deployment,
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AutoscalerSettings<'static> {
        AutoscalerSettings {
            cluster_uuid: "5d12f6fd-a196-4bf0-ae4c-1f639a523a52",
            auth_url: "http://keystone:5000/v3",
            region_name: "RegionOne",
            trustee_user_id: "trustee",
            trustee_password: "p\"w",
            trust_id: "trust",
            tag: DEFAULT_AUTOSCALER_TAG,
            image_prefix: None,
        }
    }

    fn item<'a>(list: &'a Value, kind: &str) -> &'a Value {
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|item| item["kind"] == kind)
            .unwrap_or(&Value::Null)
    }

    #[test]
    fn the_autoscaler_resizes_the_clusters_worker_groups_through_magnum_as_the_trustee() {
        let list = manifest(&settings());
        assert_eq!(list["kind"], "List");
        let deployment = item(&list, "Deployment");
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            container["image"],
            "docker.io/openstackmagnum/cluster-autoscaler:v1.18.1"
        );
        let command: Vec<&str> = container["command"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for wanted in [
            "--cloud-provider=magnum",
            "--cluster-name=5d12f6fd-a196-4bf0-ae4c-1f639a523a52",
            "--node-group-auto-discovery=magnum:role=worker",
            "--cloud-config=/config/cloud-config",
        ] {
            assert!(command.contains(&wanted), "{wanted}: {command:?}");
        }
        let config = item(&list, "Secret")["stringData"]["cloud-config"]
            .as_str()
            .unwrap_or_default();
        assert!(config.starts_with("[Global]\n"), "{config}");
        assert!(config.contains("trust-id = \"trust\"\n"), "{config}");
        assert!(config.contains("password = \"p\\\"w\"\n"), "{config}");
        let binding = item(&list, "ClusterRoleBinding");
        assert_eq!(binding["subjects"][0]["name"], "cluster-autoscaler");
        assert_eq!(
            deployment["spec"]["template"]["spec"]["nodeSelector"]["magnum.openstack.org/role"],
            "master"
        );
    }

    #[test]
    fn a_mirror_and_a_tag_choose_the_image() {
        let mut mirrored = settings();
        mirrored.image_prefix = Some("mirror.example.org/k8s/");
        mirrored.tag = "v1.28.0";
        let list = manifest(&mirrored);
        assert_eq!(
            item(&list, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"],
            "mirror.example.org/k8s/cluster-autoscaler:v1.28.0"
        );
    }
}
