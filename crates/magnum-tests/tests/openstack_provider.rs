//! The openstack provider next to the docker provider, with a real Keystone: magnumd in
//! keystone mode validates templates by asking the cloud's services for the caller, found
//! through the real catalog. Glance, Nova, Neutron and Octavia are `CloudApiDouble`
//! (they cannot run here); Keystone is real.

use crate::common::cloud_double::{CloudApiDouble, CloudContents};
use crate::common::openstack::RealOpenStack;
use crate::common::{Api, Magnumd, Options};
use serde_json::{json, Value};

fn kubernetes(name: &str, image: &str) -> Value {
    json!({"name": name, "coe": "kubernetes", "image_id": image,
           "external_network_id": "public", "flavor_id": "m1.small",
           "master_flavor_id": "m1.large", "keypair_id": "mykey",
           "fixed_network": "private", "fixed_subnet": "private-subnet",
           "network_driver": "flannel", "labels": {"provider": "openstack"}})
}

#[tokio::test]
async fn templates_of_the_openstack_provider_are_checked_in_the_cloud_for_the_caller() {
    let Some(openstack) = RealOpenStack::from_env() else {
        return;
    };
    let double = CloudApiDouble::start(CloudContents::typical()).await;
    let region = openstack.register_region(&double).await;
    let tenant = openstack.tenant().await;
    let magnumd = Magnumd::start_with(Options {
        auth_strategy: "keystone",
        provider: "docker,openstack",
        extra_config: openstack.magnumd_config(&region),
        ..Options::default()
    })
    .await;
    let (token, _) = openstack
        .token(&tenant.user_name, &tenant.password, &tenant.project_name)
        .await;
    let api = Api::new(&magnumd.base_url(), Some(token));

    // The image's os_distro in Glance chooses the driver.
    let coreos = api
        .post(
            "/v1/clustertemplates",
            kubernetes("k8s-coreos", "fedora-coreos-40"),
        )
        .await;
    assert_eq!(coreos.status, 201, "{}", coreos.text);
    assert_eq!(coreos.body["cluster_distro"], "fedora-coreos");
    assert_eq!(coreos.body["project_id"], tenant.project_id.as_str());
    let atomic = api
        .post(
            "/v1/clustertemplates",
            kubernetes("k8s-atomic", "5b5e7a4e-0b5e-4c5f-9d1e-6a0f3f0e0c02"),
        )
        .await;
    assert_eq!(atomic.status, 201, "{}", atomic.text);
    assert_eq!(atomic.body["cluster_distro"], "fedora-atomic");
    assert!(double.requests("image") >= 2);
    assert!(double.requests("compute") >= 2);
    assert!(double.requests("network") >= 2);

    // Each thing that cannot be found gets the spec's answer.
    let refusals = [
        (
            json!({"image_id": "no-distro"}),
            400,
            "Image no-distro doesn't contain os_distro field.",
        ),
        (
            json!({"image_id": "missing"}),
            400,
            "Image missing could not be found.",
        ),
        (
            json!({"image_id": "twin"}),
            409,
            "Multiple images exist with same name twin. Please use the image id instead.",
        ),
        (
            json!({"flavor_id": "m9.huge"}),
            400,
            "Unable to find flavor m9.huge.",
        ),
        (
            json!({"master_flavor_id": "m9.huge"}),
            400,
            "Unable to find flavor m9.huge.",
        ),
        (
            json!({"external_network_id": "private"}),
            400,
            "Unable to find external network private.",
        ),
        (
            json!({"fixed_network": "nowhere"}),
            400,
            "Unable to find fixed network nowhere.",
        ),
        (
            json!({"fixed_subnet": "nowhere"}),
            400,
            "Unable to find fixed subnet nowhere.",
        ),
    ];
    for (index, (change, status, message)) in refusals.into_iter().enumerate() {
        let mut body = kubernetes(&format!("refused-{index}"), "fedora-coreos-40");
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        let refused = api.post("/v1/clustertemplates", body).await;
        assert_eq!(refused.status, status, "{change}: {}", refused.text);
        assert_eq!(refused.error_detail(), message, "{change}");
    }

    // A service that cannot be asked is 503, without its address.
    double.set_down("image", true);
    let unavailable = api
        .post(
            "/v1/clustertemplates",
            kubernetes("k8s-later", "fedora-coreos-40"),
        )
        .await;
    assert_eq!(unavailable.status, 503, "{}", unavailable.text);
    assert!(
        unavailable.error_detail().contains("Glance"),
        "{}",
        unavailable.text
    );
    assert!(
        !unavailable.text.contains("127.0.0.1"),
        "{}",
        unavailable.text
    );
    double.set_down("image", false);

    // The docker provider serves templates without the label, side by side.
    let swarm = api
        .post(
            "/v1/clustertemplates",
            json!({"name": "swarm", "coe": "swarm", "image_id": "magnum-node:bookworm",
                   "external_network_id": "local", "network_driver": "docker"}),
        )
        .await;
    assert_eq!(swarm.status, 201, "{}", swarm.text);
    // And a Kubernetes template without the label is refused by it, with the way out.
    let unlabelled = api
        .post(
            "/v1/clustertemplates",
            json!({"name": "k8s-docker", "coe": "kubernetes", "image_id": "fedora-coreos-40",
                   "external_network_id": "public"}),
        )
        .await;
    assert_eq!(unlabelled.status, 400, "{}", unlabelled.text);
    assert!(
        unlabelled
            .error_detail()
            .contains("label provider=openstack"),
        "{}",
        unlabelled.text
    );
}

#[tokio::test]
async fn the_openstack_provider_needs_keystone_mode() {
    let state = tempfile::tempdir().unwrap();
    let config = state.path().join("magnum.conf");
    std::fs::write(
        &config,
        format!(
            "[DEFAULT]\nstate_path = {}\n[drivers]\nenabled_providers = docker, openstack\n",
            state.path().display()
        ),
    )
    .unwrap();
    let output = std::process::Command::new(crate::common::binary("magnumd"))
        .args(["--config-file", config.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the openstack provider needs [api] auth_strategy = keystone"),
        "{stderr}"
    );
}

/// A Kubernetes cluster on the openstack provider is a Heat stack in the owner's project,
/// made and changed through the cluster's trust, and deleting the cluster leaves no stack,
/// trust or trustee behind. (The environment of the tests' Heat turns servers, networks,
/// volumes and load balancers into no-op resources; everything else is Heat's real work.)
#[tokio::test]
async fn a_kubernetes_cluster_is_a_heat_stack_made_changed_and_removed_through_its_trust() {
    let Some(openstack) = RealOpenStack::from_env() else {
        return;
    };
    let double = CloudApiDouble::start(CloudContents::typical()).await;
    let region = openstack.register_region(&double).await;
    let tenant = openstack.tenant().await;
    let magnumd = Magnumd::start_with(Options {
        auth_strategy: "keystone",
        provider: "docker,openstack",
        extra_config: format!(
            "{}[conductor]\npoll_interval = 1\n",
            openstack.magnumd_config(&region)
        ),
        ..Options::default()
    })
    .await;
    let (token, _) = openstack
        .token(&tenant.user_name, &tenant.password, &tenant.project_name)
        .await;
    let api = Api::new(&magnumd.base_url(), Some(token.clone()))
        .with_header("OpenStack-API-Version", "container-infra latest");
    let template = api
        .post(
            "/v1/clustertemplates",
            kubernetes("k8s", "fedora-coreos-40"),
        )
        .await;
    assert_eq!(template.status, 201, "{}", template.text);
    let created = api
        .post(
            "/v1/clusters",
            json!({"name": "kube", "cluster_template_id": "k8s", "master_count": 1,
                   "node_count": 2, "keypair": "mykey", "create_timeout": 10}),
        )
        .await;
    assert_eq!(created.status, 202, "{}", created.text);
    let uuid = created.body["uuid"].as_str().unwrap().to_string();
    let trustee = format!("{uuid}_{}", tenant.project_id);
    assert!(openstack.user_exists(&trustee).await);

    let settled = |wanted: &'static str| {
        let api = api.clone();
        let uuid = uuid.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            loop {
                let shown = api.get(&format!("/v1/clusters/{uuid}")).await;
                if shown.status == 404 || shown.body["status"] == wanted {
                    return shown;
                }
                assert!(
                    !shown.body["status"]
                        .as_str()
                        .unwrap_or("")
                        .ends_with("FAILED"),
                    "{}",
                    shown.text
                );
                assert!(std::time::Instant::now() < deadline, "{}", shown.text);
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    };
    let complete = settled("CREATE_COMPLETE").await;
    assert_eq!(
        complete.body["status"], "CREATE_COMPLETE",
        "{}",
        complete.text
    );
    assert_eq!(complete.body["coe_version"], "v1.23.3");
    let stack_name = format!("magnum-{uuid}");
    let stack = openstack
        .heat_stack(&token, &tenant.project_id, &stack_name)
        .await
        .expect("the stack lives in the owner's project");
    assert_eq!(stack["stack_status"], "CREATE_COMPLETE");
    assert_eq!(stack["parameters"]["number_of_minions"], "2");
    assert_eq!(stack["parameters"]["master_image"], "fedora-coreos-40");
    assert_eq!(stack["parameters"]["minion_flavor"], "m1.small");
    // At microversion 1.13 and later the stack id is shown as cluster_id.
    assert_eq!(complete.body["cluster_id"], stack["id"]);

    let resized = api
        .post(
            &format!("/v1/clusters/{uuid}/actions/resize"),
            json!({"node_count": 3}),
        )
        .await;
    assert_eq!(resized.status, 202, "{}", resized.text);
    let updated = settled("UPDATE_COMPLETE").await;
    assert_eq!(updated.body["node_count"], 3, "{}", updated.text);
    let stack = openstack
        .heat_stack(&token, &tenant.project_id, &stack_name)
        .await
        .unwrap();
    assert_eq!(stack["stack_status"], "UPDATE_COMPLETE");
    assert_eq!(stack["parameters"]["number_of_minions"], "3");

    let deleted = api.delete(&format!("/v1/clusters/{uuid}")).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let gone = settled("DELETE_COMPLETE").await;
    assert_eq!(gone.status, 404, "{}", gone.text);
    let stack = openstack
        .heat_stack(&token, &tenant.project_id, &stack_name)
        .await;
    assert!(
        stack
            .as_ref()
            .is_none_or(|stack| stack["stack_status"] == "DELETE_COMPLETE"),
        "{stack:?}"
    );
    assert!(
        !openstack.user_exists(&trustee).await,
        "the trustee is removed"
    );
}
