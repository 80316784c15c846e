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
    let setup = CloudSetup::start(openstack, "", None).await;
    let (double, tenant) = (&setup.double, &setup.tenant);
    let api = Api::new(&setup.magnumd.base_url(), Some(setup.token.clone()));

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

    // So is a cluster create whose keypair Nova cannot be asked about; nothing is stored.
    double.set_down("compute", true);
    let no_nova = api
        .post(
            "/v1/clusters",
            json!({"name": "during-the-outage", "cluster_template_id": "k8s-coreos",
                   "keypair": "mykey", "node_count": 1}),
        )
        .await;
    assert_eq!(no_nova.status, 503, "{}", no_nova.text);
    assert!(no_nova.error_detail().contains("Nova"), "{}", no_nova.text);
    double.set_down("compute", false);
    let clusters = api.get("/v1/clusters").await;
    assert_eq!(clusters.body["clusters"], json!([]), "{}", clusters.text);

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

/// A tenant of the real Keystone with magnumd (keystone mode, docker and openstack
/// providers) looking its cloud services up in a region of the test's own.
struct CloudSetup {
    openstack: RealOpenStack,
    double: CloudApiDouble,
    /// The test's own region of the catalog.
    region: String,
    tenant: crate::common::openstack::Tenant,
    token: String,
    magnumd: Magnumd,
}

impl CloudSetup {
    /// `heat_region`: where magnumd looks Heat up (the real one is in RegionOne).
    async fn start(
        openstack: RealOpenStack,
        extra_config: &str,
        heat_region: Option<&str>,
    ) -> CloudSetup {
        let double = CloudApiDouble::start(CloudContents::typical()).await;
        let region = openstack.register_region(&double).await;
        let tenant = openstack.tenant().await;
        let mut config = format!(
            "{}[conductor]\npoll_interval = 1\n{extra_config}",
            openstack.magnumd_config(&region)
        );
        if let Some(heat_region) = heat_region {
            config = config.replace(
                "[heat_client]\nregion_name = RegionOne\n",
                &format!("[heat_client]\nregion_name = {heat_region}\n"),
            );
            if heat_region == "own" {
                openstack
                    .add_endpoint(
                        &region,
                        "orchestration",
                        "http://127.0.0.1:9/v1/%(tenant_id)s",
                    )
                    .await;
                config = config.replace(
                    "[heat_client]\nregion_name = own\n",
                    &format!("[heat_client]\nregion_name = {region}\n"),
                );
            }
        }
        let magnumd = Magnumd::start_with(Options {
            auth_strategy: "keystone",
            provider: "docker,openstack",
            extra_config: config,
            ..Options::default()
        })
        .await;
        let (token, _) = openstack
            .token(&tenant.user_name, &tenant.password, &tenant.project_name)
            .await;
        CloudSetup {
            openstack,
            double,
            region,
            tenant,
            token,
            magnumd,
        }
    }

    fn api(&self) -> Api {
        Api::new(&self.magnumd.base_url(), Some(self.token.clone()))
            .with_header("OpenStack-API-Version", "container-infra latest")
    }

    /// A Kubernetes template on Fedora CoreOS and a cluster of it (1 master, 2 workers); the
    /// cluster's uuid.
    async fn create_cluster(&self) -> String {
        self.create_cluster_of("fedora-coreos-40", json!({})).await
    }

    /// A Kubernetes template of `image` and a cluster of it (1 master, 2 workers, and
    /// `extra` fields); the cluster's uuid.
    async fn create_cluster_of(&self, image: &str, extra: Value) -> String {
        let api = self.api();
        let template_name = format!("k8s-{image}");
        if api
            .get(&format!("/v1/clustertemplates/{template_name}"))
            .await
            .status
            == 404
        {
            let template = api
                .post("/v1/clustertemplates", kubernetes(&template_name, image))
                .await;
            assert_eq!(template.status, 201, "{}", template.text);
        }
        let mut request = json!({"name": "kube", "cluster_template_id": template_name,
                                 "master_count": 1, "node_count": 2, "keypair": "mykey",
                                 "create_timeout": 10});
        for (key, value) in extra.as_object().into_iter().flatten() {
            request[key] = value.clone();
        }
        let created = api.post("/v1/clusters", request).await;
        assert_eq!(created.status, 202, "{}", created.text);
        created.body["uuid"].as_str().unwrap().to_string()
    }

    /// The cluster once its status is `wanted` (or it is gone); fails past two minutes.
    async fn settled(&self, uuid: &str, wanted: &str) -> crate::common::Reply {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let shown = self.api().get(&format!("/v1/clusters/{uuid}")).await;
            if shown.status == 404 || shown.body["status"] == wanted {
                return shown;
            }
            assert!(std::time::Instant::now() < deadline, "{}", shown.text);
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
}

/// Killed while Heat builds the stack, magnumd picks the cluster up again after a restart
/// and finds the stack it asked for (by its name) instead of making a second one.
#[tokio::test]
async fn magnumd_killed_while_heat_builds_finds_its_stack_again() {
    let Some(openstack) = RealOpenStack::from_env() else {
        return;
    };
    let mut setup = CloudSetup::start(openstack, "", None).await;
    let uuid = setup.create_cluster().await;
    let stack_name = format!("magnum-{uuid}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while setup
        .openstack
        .heat_stack(&setup.token, &setup.tenant.project_id, &stack_name)
        .await
        .is_none()
    {
        assert!(std::time::Instant::now() < deadline, "no stack was created");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    setup.magnumd.kill_hard();
    setup.magnumd.restart();
    let complete = setup.settled(&uuid, "CREATE_COMPLETE").await;
    assert_eq!(
        complete.body["status"], "CREATE_COMPLETE",
        "{}",
        complete.text
    );
    let stack = setup
        .openstack
        .heat_stack(&setup.token, &setup.tenant.project_id, &stack_name)
        .await
        .unwrap();
    assert_eq!(
        complete.body["cluster_id"], stack["id"],
        "one stack, the first"
    );
    let deleted = setup.api().delete(&format!("/v1/clusters/{uuid}")).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(setup.settled(&uuid, "DELETE_COMPLETE").await.status, 404);
}

/// A Heat that cannot be reached fails the create with the reason once the retries are
/// spent, never hanging.
#[tokio::test]
async fn an_unreachable_heat_fails_the_create_with_the_reason() {
    let Some(openstack) = RealOpenStack::from_env() else {
        return;
    };
    let setup = CloudSetup::start(
        openstack,
        "max_attempts = 2\nretry_delay = 1\n",
        Some("own"),
    )
    .await;
    let uuid = setup.create_cluster().await;
    let failed = setup.settled(&uuid, "CREATE_FAILED").await;
    assert_eq!(failed.body["status"], "CREATE_FAILED", "{}", failed.text);
    let reason = failed.body["status_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("Heat"), "{reason}");
    assert!(reason.contains("could not be reached"), "{reason}");
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
    let setup = CloudSetup::start(openstack, "", None).await;
    let (openstack, tenant, token, api) =
        (&setup.openstack, &setup.tenant, &setup.token, setup.api());
    let uuid = setup.create_cluster().await;
    let trustee = format!("{uuid}_{}", tenant.project_id);
    assert!(openstack.user_exists(&trustee).await);
    let settled = |wanted: &'static str| setup.settled(&uuid, wanted);
    let complete = settled("CREATE_COMPLETE").await;
    assert_eq!(
        complete.body["status"], "CREATE_COMPLETE",
        "{}",
        complete.text
    );
    assert_eq!(complete.body["coe_version"], "v1.23.3");
    let stack_name = format!("magnum-{uuid}");
    let stack = openstack
        .heat_stack(token, &tenant.project_id, &stack_name)
        .await
        .expect("the stack lives in the owner's project");
    assert_eq!(stack["stack_status"], "CREATE_COMPLETE");
    assert_eq!(stack["parameters"]["number_of_minions"], "2");
    assert_eq!(stack["parameters"]["master_image"], "fedora-coreos-40");
    assert_eq!(stack["parameters"]["minion_flavor"], "m1.small");
    // At microversion 1.13 and later the stack id is shown as cluster_id.
    assert_eq!(complete.body["cluster_id"], stack["id"]);
    check_the_three_cas_and_who_may_sign_what(&setup, &uuid).await;

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
        .heat_stack(token, &tenant.project_id, &stack_name)
        .await
        .unwrap();
    assert_eq!(stack["stack_status"], "UPDATE_COMPLETE");
    assert_eq!(stack["parameters"]["number_of_minions"], "3");

    // An upgrade to a template with a newer kube_tag is a stack update that Heat rolls
    // through the nodes one at a time (their user data carries the version).
    let mut next = kubernetes("k8s-next", "fedora-coreos-40");
    next["labels"]["kube_tag"] = json!("v1.27.4");
    let template = api.post("/v1/clustertemplates", next).await;
    assert_eq!(template.status, 201, "{}", template.text);
    let upgraded = api
        .post(
            &format!("/v1/clusters/{uuid}/actions/upgrade"),
            json!({"cluster_template": "k8s-next"}),
        )
        .await;
    assert_eq!(upgraded.status, 202, "{}", upgraded.text);
    let updated = settled("UPDATE_COMPLETE").await;
    assert_eq!(updated.body["coe_version"], "v1.27.4", "{}", updated.text);
    let stack = openstack
        .heat_stack(token, &tenant.project_id, &stack_name)
        .await
        .unwrap();
    assert_eq!(stack["stack_status"], "UPDATE_COMPLETE");
    assert_eq!(stack["parameters"]["kube_tag"], "v1.27.4");

    // What Kubernetes made in the cloud for this cluster (a LoadBalancer service's load
    // balancer, a persistent volume) goes with it; another cluster's stays.
    let other = "0b7f2d86-6d6e-4f4b-9f0e-2a2f4c1d9e11";
    setup.double.add(
        &[
            json!({"id": "lb-web", "provisioning_status": "ACTIVE",
                   "description": format!("Kubernetes external service default/web from cluster {uuid}")}),
            json!({"id": "lb-other", "provisioning_status": "ACTIVE",
                   "description": format!("Kubernetes external service default/web from cluster {other}")}),
        ],
        &[
            json!({"id": "pv-data", "status": "available",
                   "metadata": {"cinder.csi.openstack.org/cluster": uuid}}),
            json!({"id": "pv-other", "status": "available",
                   "metadata": {"cinder.csi.openstack.org/cluster": other}}),
        ],
    );
    let deleted = api.delete(&format!("/v1/clusters/{uuid}")).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let gone = settled("DELETE_COMPLETE").await;
    assert_eq!(gone.status, 404, "{}", gone.text);
    let (load_balancers, volumes) = setup.double.leftovers();
    assert_eq!(load_balancers.len(), 1, "{load_balancers:?}");
    assert_eq!(load_balancers[0]["id"], "lb-other");
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    assert_eq!(volumes[0]["id"], "pv-other");
    let stack = openstack
        .heat_stack(token, &tenant.project_id, &stack_name)
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

/// The seed's driver, k8s_fedora_atomic_v1, through magnumd: the cluster gets a discovery
/// URL of magnumd's own discovery service (a token for its masters' etcd) unless the user
/// names one, the stack gets spec §9.3's parameters, scaling in passes the nodes to remove
/// to the workers' ResourceGroup, and the delete takes the token with the cluster.
#[tokio::test]
async fn a_fedora_atomic_cluster_bootstraps_etcd_through_magnumds_discovery_service() {
    let Some(openstack) = RealOpenStack::from_env() else {
        return;
    };
    let setup = CloudSetup::start(openstack, "", None).await;
    let (openstack, tenant, token, api) =
        (&setup.openstack, &setup.tenant, &setup.token, setup.api());
    let uuid = setup
        .create_cluster_of("5b5e7a4e-0b5e-4c5f-9d1e-6a0f3f0e0c02", json!({}))
        .await;
    let complete = setup.settled(&uuid, "CREATE_COMPLETE").await;
    assert_eq!(
        complete.body["status"], "CREATE_COMPLETE",
        "{}",
        complete.text
    );
    assert_eq!(complete.body["coe_version"], "v1.0.4");
    let discovery_url = complete.body["discovery_url"].as_str().unwrap().to_string();
    assert!(
        discovery_url.starts_with(&format!("{}/v1/discovery/", setup.magnumd.base_url())),
        "{discovery_url}"
    );
    // etcd, with no Magnum credentials, learns the size of its cluster there.
    let size = Api::anonymous(&discovery_url).get("/_config/size").await;
    assert_eq!(size.status, 200, "{}", size.text);
    assert_eq!(size.body["node"]["value"], "1");

    let stack_name = format!("magnum-{uuid}");
    let stack = openstack
        .heat_stack(token, &tenant.project_id, &stack_name)
        .await
        .unwrap();
    for (parameter, value) in [
        ("discovery_url", discovery_url.as_str()),
        ("bay_uuid", uuid.as_str()),
        ("server_image", "5b5e7a4e-0b5e-4c5f-9d1e-6a0f3f0e0c02"),
        ("number_of_minions", "2"),
        ("kube_tag", "v1.0.4"),
        ("tenant_name", tenant.project_id.as_str()),
        ("loadbalancing_protocol", "TCP"),
    ] {
        assert_eq!(stack["parameters"][parameter], value, "{parameter}");
    }

    let resized = api
        .post(
            &format!("/v1/clusters/{uuid}/actions/resize"),
            json!({"node_count": 1, "nodes_to_remove": ["0"]}),
        )
        .await;
    assert_eq!(resized.status, 202, "{}", resized.text);
    let updated = setup.settled(&uuid, "UPDATE_COMPLETE").await;
    assert_eq!(updated.body["node_count"], 1, "{}", updated.text);
    let stack = openstack
        .heat_stack(token, &tenant.project_id, &stack_name)
        .await
        .unwrap();
    assert_eq!(stack["parameters"]["number_of_minions"], "1");
    assert_eq!(stack["parameters"]["minions_to_remove"], "0");

    let deleted = api.delete(&format!("/v1/clusters/{uuid}")).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(setup.settled(&uuid, "DELETE_COMPLETE").await.status, 404);
    let forgotten = Api::anonymous(&discovery_url).get("/_config/size").await;
    assert_eq!(forgotten.status, 404, "the token goes with the cluster");

    // A discovery URL the user names is used as it is.
    let named = setup
        .create_cluster_of(
            "5b5e7a4e-0b5e-4c5f-9d1e-6a0f3f0e0c02",
            json!({"name": "named", "discovery_url": "https://discovery.example/abc"}),
        )
        .await;
    let shown = api.get(&format!("/v1/clusters/{named}")).await;
    assert_eq!(shown.body["discovery_url"], "https://discovery.example/abc");
    setup.settled(&named, "CREATE_COMPLETE").await;
    let stack = openstack
        .heat_stack(token, &tenant.project_id, &format!("magnum-{named}"))
        .await
        .unwrap();
    assert_eq!(
        stack["parameters"]["discovery_url"],
        "https://discovery.example/abc"
    );
    assert_eq!(
        api.delete(&format!("/v1/clusters/{named}")).await.status,
        204
    );
    assert_eq!(setup.settled(&named, "DELETE_COMPLETE").await.status, 404);
}

/// A server Heat cannot make fails the create with Heat's own reason for the failed
/// resource, and one that never finishes fails it at create_timeout; both stacks go with
/// their clusters. (The tests' Heat fails servers of flavor fail.flavor and never finishes
/// those of slow.flavor.)
#[tokio::test]
async fn a_failing_server_and_a_slow_one_fail_the_create_with_heats_reason_and_the_timeout() {
    let Some(openstack) = RealOpenStack::from_env() else {
        return;
    };
    let setup = CloudSetup::start(openstack, "", None).await;
    let api = setup.api();
    for (name, flavor) in [("failing", "fail.flavor"), ("slow", "slow.flavor")] {
        let mut template = kubernetes(name, "fedora-coreos-40");
        template["flavor_id"] = json!(flavor);
        let created = api.post("/v1/clustertemplates", template).await;
        assert_eq!(created.status, 201, "{}", created.text);
    }
    let create = |template: &'static str| {
        let api = api.clone();
        async move {
            let created = api
                .post(
                    "/v1/clusters",
                    json!({"name": template, "cluster_template_id": template,
                           "master_count": 1, "node_count": 1, "create_timeout": 1}),
                )
                .await;
            assert_eq!(created.status, 202, "{}", created.text);
            created.body["uuid"].as_str().unwrap().to_string()
        }
    };
    let failing = create("failing").await;
    let slow = create("slow").await;

    let failed = setup.settled(&failing, "CREATE_FAILED").await;
    assert_eq!(failed.body["status"], "CREATE_FAILED", "{}", failed.text);
    let reason = failed.body["status_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("Test Resource failed"), "{reason}");

    let timed_out = setup.settled(&slow, "CREATE_FAILED").await;
    assert_eq!(
        timed_out.body["status"], "CREATE_FAILED",
        "{}",
        timed_out.text
    );
    let reason = timed_out.body["status_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("timed out"), "{reason}");

    for uuid in [&failing, &slow] {
        let deleted = api.delete(&format!("/v1/clusters/{uuid}")).await;
        assert_eq!(deleted.status, 204, "{}", deleted.text);
        assert_eq!(setup.settled(uuid, "DELETE_COMPLETE").await.status, 404);
        let stack = setup
            .openstack
            .heat_stack(
                &setup.token,
                &setup.tenant.project_id,
                &format!("magnum-{uuid}"),
            )
            .await;
        assert!(
            stack
                .as_ref()
                .is_none_or(|stack| stack["stack_status"] == "DELETE_COMPLETE"),
            "{stack:?}"
        );
    }
}

/// A CSR made by the stock openssl, in `directory`.
fn openssl_csr(directory: &std::path::Path, name: &str, subject: &str) -> String {
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
        ])
        .arg("-keyout")
        .arg(directory.join(format!("{name}.key")))
        .arg("-out")
        .arg(directory.join(format!("{name}.csr")))
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::read_to_string(directory.join(format!("{name}.csr"))).unwrap()
}

/// Whether the stock openssl verifies `certificate` against `ca` (both PEM).
fn openssl_verifies(directory: &std::path::Path, ca: &Value, certificate: &Value) -> bool {
    std::fs::write(directory.join("ca.pem"), ca.as_str().unwrap()).unwrap();
    std::fs::write(directory.join("cert.pem"), certificate.as_str().unwrap()).unwrap();
    std::process::Command::new("openssl")
        .args(["verify", "-CAfile", "ca.pem", "cert.pem"])
        .current_dir(directory)
        .output()
        .unwrap()
        .status
        .success()
}

/// A Kubernetes cluster has the default, etcd and front-proxy CAs (spec §7.1); its nodes,
/// authenticated as the cluster's trustee, get their own subjects signed by the CA they
/// name; a member of the project may not name a node.
async fn check_the_three_cas_and_who_may_sign_what(setup: &CloudSetup, uuid: &str) {
    let api = setup.api();
    let mut pems = Vec::new();
    for kind in [
        "",
        "?ca_cert_type=kubernetes",
        "?ca_cert_type=etcd",
        "?ca_cert_type=front-proxy",
        "?ca_cert_type=front_proxy",
    ] {
        let shown = api.get(&format!("/v1/certificates/{uuid}{kind}")).await;
        assert_eq!(shown.status, 200, "{kind}: {}", shown.text);
        pems.push(shown.body["pem"].clone());
    }
    assert_eq!(pems[0], pems[1]);
    assert_eq!(pems[3], pems[4]);
    assert_ne!(pems[0], pems[2]);
    assert_ne!(pems[0], pems[3]);
    assert_ne!(pems[2], pems[3]);
    let bogus = api
        .get(&format!("/v1/certificates/{uuid}?ca_cert_type=vault"))
        .await;
    assert_eq!(bogus.status, 400);

    let work = tempfile::tempdir().unwrap();
    let node_csr = openssl_csr(
        work.path(),
        "node",
        "/CN=system:node:kube-minion-0/O=system:nodes",
    );
    let trustee = Api::new(
        &setup.magnumd.base_url(),
        Some(
            setup
                .openstack
                .trustee_token(
                    setup.magnumd.state_dir.path(),
                    uuid,
                    &setup.tenant.project_id,
                )
                .await,
        ),
    );
    let signed = trustee
        .post(
            "/v1/certificates",
            json!({"cluster_uuid": uuid, "csr": node_csr, "ca_cert_type": "etcd"}),
        )
        .await;
    assert_eq!(signed.status, 201, "{}", signed.text);
    assert!(openssl_verifies(work.path(), &pems[2], &signed.body["pem"]));
    assert!(!openssl_verifies(
        work.path(),
        &pems[0],
        &signed.body["pem"]
    ));
    let member = api
        .post(
            "/v1/certificates",
            json!({"cluster_uuid": uuid, "csr": node_csr}),
        )
        .await;
    assert_eq!(member.status, 403, "{}", member.text);
}

/// The stock `openstack coe cluster config` of a member of the cluster's project writes a
/// kubeconfig whose CA is the cluster's and whose client certificate (CN=admin,
/// O=system:masters, from the key the client made) verifies against it.
#[tokio::test]
async fn the_stock_client_writes_a_kubeconfig_for_a_member_of_the_project() {
    let Some(openstack_cli) = crate::common::cli::openstack() else {
        return;
    };
    let Some(openstack) = RealOpenStack::from_env() else {
        return;
    };
    let setup = CloudSetup::start(openstack, "", None).await;
    setup
        .openstack
        .add_endpoint(
            &setup.region,
            "container-infra",
            &format!("{}/v1", setup.magnumd.base_url()),
        )
        .await;
    let uuid = setup.create_cluster().await;
    let complete = setup.settled(&uuid, "CREATE_COMPLETE").await;
    assert_eq!(
        complete.body["status"], "CREATE_COMPLETE",
        "{}",
        complete.text
    );

    let directory = tempfile::tempdir().unwrap();
    let tenant = &setup.tenant;
    let environment = [
        (
            "OS_AUTH_URL",
            format!("{}/v3", setup.openstack.keystone_url),
        ),
        ("OS_USERNAME", tenant.user_name.clone()),
        ("OS_PASSWORD", tenant.password.clone()),
        ("OS_PROJECT_NAME", tenant.project_name.clone()),
        ("OS_USER_DOMAIN_ID", "default".to_string()),
        ("OS_PROJECT_DOMAIN_ID", "default".to_string()),
        ("OS_REGION_NAME", setup.region.clone()),
        ("OS_IDENTITY_API_VERSION", "3".to_string()),
        ("SHELL", "/bin/bash".to_string()),
    ];
    let directory_text = directory.path().display().to_string();
    let written = tokio::task::spawn_blocking(move || {
        crate::common::cli::run(
            &openstack_cli,
            &environment,
            &["coe", "cluster", "config", &uuid, "--dir", &directory_text],
        )
    })
    .await
    .unwrap();
    assert!(
        written.status.success(),
        "{}{}",
        crate::common::cli::stdout(&written),
        crate::common::cli::stderr(&written)
    );
    assert!(crate::common::cli::stdout(&written).contains("export KUBECONFIG="));
    let config: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(directory.path().join("config")).unwrap())
            .unwrap();
    let decode = |value: &Value| {
        let bytes = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            value.as_str().unwrap(),
        )
        .unwrap();
        Value::String(String::from_utf8(bytes).unwrap())
    };
    let ca = decode(&config["clusters"][0]["cluster"]["certificate-authority-data"]);
    let shown_ca = setup
        .api()
        .get(&format!(
            "/v1/certificates/{}",
            complete.body["uuid"].as_str().unwrap()
        ))
        .await;
    assert_eq!(ca, shown_ca.body["pem"]);
    let certificate = decode(&config["users"][0]["user"]["client-certificate-data"]);
    assert!(openssl_verifies(directory.path(), &ca, &certificate));
    let subject = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in", "cert.pem"])
        .current_dir(directory.path())
        .output()
        .unwrap();
    let subject = String::from_utf8_lossy(&subject.stdout).to_string();
    assert!(subject.contains("CN = admin"), "{subject}");
    assert!(subject.contains("O = system:masters"), "{subject}");

    let uuid = complete.body["uuid"].as_str().unwrap();
    assert_eq!(
        setup
            .api()
            .delete(&format!("/v1/clusters/{uuid}"))
            .await
            .status,
        204
    );
    assert_eq!(setup.settled(uuid, "DELETE_COMPLETE").await.status, 404);
}

/// The output `key` of a Heat stack as Heat shows it.
fn stack_output(stack: &Value, key: &str) -> Value {
    stack["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|output| output["output_key"] == key)
        .map(|output| output["output_value"].clone())
        .unwrap_or(Value::Null)
}

/// A non-default nodegroup is a Heat stack of its own (spec §3.5): made once the cluster's
/// stack is there, on that stack's network, security group and API address; resized in its
/// own stack without touching the cluster's; removed with the nodegroup, and with the
/// cluster before the cluster's stack.
#[tokio::test]
async fn a_nodegroup_is_a_stack_of_its_own_on_the_clusters_network() {
    let Some(openstack) = RealOpenStack::from_env() else {
        return;
    };
    let setup = CloudSetup::start(openstack, "", None).await;
    let (openstack, tenant, token, api) =
        (&setup.openstack, &setup.tenant, &setup.token, setup.api());
    let uuid = setup.create_cluster().await;
    let complete = setup.settled(&uuid, "CREATE_COMPLETE").await;
    assert_eq!(
        complete.body["status"], "CREATE_COMPLETE",
        "{}",
        complete.text
    );
    // The tests' Heat makes up addresses for ports and floating IPs: the outputs are read.
    let api_address = complete.body["api_address"].as_str().unwrap_or_default();
    assert!(
        api_address.starts_with("https://172.24.4.1"),
        "{api_address}"
    );
    assert!(api_address.ends_with(":6443"), "{api_address}");
    assert_eq!(complete.body["node_addresses"].as_array().unwrap().len(), 2);
    let cluster_stack = openstack
        .heat_stack(token, &tenant.project_id, &format!("magnum-{uuid}"))
        .await
        .unwrap();

    let created = api
        .post(
            &format!("/v1/clusters/{uuid}/nodegroups"),
            json!({"name": "gpu pool", "node_count": 2, "flavor_id": "m1.large",
                   "node_labels": {"tier": "gpu"}}),
        )
        .await;
    assert_eq!(created.status, 202, "{}", created.text);
    let group_uuid = created.body["uuid"].as_str().unwrap().to_string();
    let updated = setup.settled(&uuid, "UPDATE_COMPLETE").await;
    assert_eq!(
        updated.body["status"], "UPDATE_COMPLETE",
        "{}",
        updated.text
    );
    assert_eq!(
        updated.body["node_addresses"].as_array().unwrap().len(),
        4,
        "{}",
        updated.text
    );
    let group_stack_name = format!("magnum-{uuid}-ng-{group_uuid}");
    let group_stack = openstack
        .heat_stack(token, &tenant.project_id, &group_stack_name)
        .await
        .expect("the nodegroup has its own stack in the owner's project");
    assert_eq!(group_stack["stack_status"], "CREATE_COMPLETE");
    let parameters = &group_stack["parameters"];
    assert_eq!(parameters["number_of_minions"], "2");
    assert_eq!(parameters["minion_flavor"], "m1.large");
    assert_eq!(parameters["nodegroup_name"], "gpu pool");
    for (parameter, output) in [
        ("existing_network", "fixed_network"),
        ("existing_subnet", "fixed_subnet"),
        ("existing_security_group", "secgroup_minion"),
        ("existing_master_private_ip", "api_private_address"),
    ] {
        let wanted = stack_output(&cluster_stack, output);
        assert!(wanted.is_string(), "{output}: {wanted}");
        assert_eq!(parameters[parameter], wanted, "{parameter}");
    }
    let group = api
        .get(&format!("/v1/clusters/{uuid}/nodegroups/{group_uuid}"))
        .await;
    assert_eq!(group.body["status"], "CREATE_COMPLETE", "{}", group.text);
    assert_eq!(group.body["stack_id"], group_stack["id"]);
    assert_eq!(group.body["node_addresses"].as_array().unwrap().len(), 2);

    // Resizing the group changes its stack only.
    let resized = api
        .post(
            &format!("/v1/clusters/{uuid}/actions/resize"),
            json!({"node_count": 1, "nodegroup": "gpu pool"}),
        )
        .await;
    assert_eq!(resized.status, 202, "{}", resized.text);
    let updated = setup.settled(&uuid, "UPDATE_COMPLETE").await;
    assert_eq!(
        updated.body["status"], "UPDATE_COMPLETE",
        "{}",
        updated.text
    );
    let group_stack = openstack
        .heat_stack(token, &tenant.project_id, &group_stack_name)
        .await
        .unwrap();
    assert_eq!(group_stack["stack_status"], "UPDATE_COMPLETE");
    assert_eq!(group_stack["parameters"]["number_of_minions"], "1");
    let cluster_stack = openstack
        .heat_stack(token, &tenant.project_id, &format!("magnum-{uuid}"))
        .await
        .unwrap();
    assert_eq!(cluster_stack["parameters"]["number_of_minions"], "2");
    assert_eq!(cluster_stack["stack_status"], "CREATE_COMPLETE");

    // Deleting the group deletes its stack.
    let deleted = api
        .delete(&format!("/v1/clusters/{uuid}/nodegroups/{group_uuid}"))
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let updated = setup.settled(&uuid, "UPDATE_COMPLETE").await;
    assert_eq!(
        updated.body["status"], "UPDATE_COMPLETE",
        "{}",
        updated.text
    );
    let gone = api
        .get(&format!("/v1/clusters/{uuid}/nodegroups/{group_uuid}"))
        .await;
    assert_eq!(gone.status, 404, "{}", gone.text);
    let group_stack = openstack
        .heat_stack(token, &tenant.project_id, &group_stack_name)
        .await;
    assert!(
        group_stack
            .as_ref()
            .is_none_or(|stack| stack["stack_status"] == "DELETE_COMPLETE"),
        "{group_stack:?}"
    );

    // A cluster deleted with a nodegroup loses both stacks.
    let created = api
        .post(
            &format!("/v1/clusters/{uuid}/nodegroups"),
            json!({"name": "spare", "node_count": 1}),
        )
        .await;
    assert_eq!(created.status, 202, "{}", created.text);
    let spare_stack_name = format!(
        "magnum-{uuid}-ng-{}",
        created.body["uuid"].as_str().unwrap()
    );
    let updated = setup.settled(&uuid, "UPDATE_COMPLETE").await;
    assert_eq!(
        updated.body["status"], "UPDATE_COMPLETE",
        "{}",
        updated.text
    );
    let deleted = api.delete(&format!("/v1/clusters/{uuid}")).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(setup.settled(&uuid, "DELETE_COMPLETE").await.status, 404);
    for name in [spare_stack_name, format!("magnum-{uuid}")] {
        let stack = openstack.heat_stack(token, &tenant.project_id, &name).await;
        assert!(
            stack
                .as_ref()
                .is_none_or(|stack| stack["stack_status"] == "DELETE_COMPLETE"),
            "{name}: {stack:?}"
        );
    }
}

/// Keystone gone while a cluster is created (after the caller's token was checked): the
/// cluster's trust cannot be made, so the create is answered 503 at once, with no cluster
/// row or trustee left; with Keystone back, the same create succeeds.
#[tokio::test]
async fn keystone_unavailable_at_cluster_create_is_a_503_and_leaves_nothing() {
    let Some(openstack) = RealOpenStack::from_env() else {
        return;
    };
    let keystone = crate::common::outage::CuttableLink::start(
        openstack
            .keystone_url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string(),
    );
    let mut through_the_link = openstack.clone();
    through_the_link.keystone_url = format!("http://{}", keystone.address);
    // Tokens checked once are trusted for a while, so that the API gets as far as the trust.
    let setup = CloudSetup::start(
        through_the_link,
        "[keystone_authtoken]\ntoken_cache_time = 600\n",
        None,
    )
    .await;
    let api = setup.api();
    let template = api
        .post(
            "/v1/clustertemplates",
            kubernetes("k8s-outage", "fedora-coreos-40"),
        )
        .await;
    assert_eq!(template.status, 201, "{}", template.text);
    let request = json!({"name": "kube", "cluster_template_id": "k8s-outage",
                         "master_count": 1, "node_count": 1, "keypair": "mykey"});

    keystone.cut();
    let refused = api.post("/v1/clusters", request.clone()).await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    let message = refused.body["errors"][0]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("Keystone"), "{}", refused.text);
    assert!(
        !refused.text.contains(&keystone.address.to_string()),
        "{}",
        refused.text
    );
    let listed = api.get("/v1/clusters").await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.body["clusters"], json!([]), "no half-made cluster");

    keystone.restore();
    let created = api.post("/v1/clusters", request).await;
    assert_eq!(created.status, 202, "{}", created.text);
    let uuid = created.body["uuid"].as_str().unwrap().to_string();
    let trustee = format!("{uuid}_{}", setup.tenant.project_id);
    assert!(setup.openstack.user_exists(&trustee).await);
    let deleted = api.delete(&format!("/v1/clusters/{uuid}")).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(setup.settled(&uuid, "DELETE_COMPLETE").await.status, 404);
}

/// What the cloud cannot give or the deployment does not allow is refused at create with
/// the reason, before anything is made (spec §9.4): the cloud provider without `[trust]
/// cluster_user_trust`, an unknown ingress controller, and a load balancer (for the API or
/// the octavia ingress controller) where the catalog lists no Octavia.
#[tokio::test]
async fn settings_the_cloud_cannot_honour_are_refused_at_create() {
    let Some(openstack) = RealOpenStack::from_env() else {
        return;
    };
    // Octavia is looked for in RegionOne, where the catalog has none.
    let setup = CloudSetup::start(
        openstack,
        "[octavia_client]\nregion_name = RegionOne\n",
        None,
    )
    .await;
    let api = setup.api();
    let template = api
        .post(
            "/v1/clustertemplates",
            kubernetes("k8s-refusals", "fedora-coreos-40"),
        )
        .await;
    assert_eq!(template.status, 201, "{}", template.text);
    let cluster = |extra: Value| {
        let mut request = json!({"name": "kube", "cluster_template_id": "k8s-refusals",
                                 "master_count": 1, "node_count": 1, "keypair": "mykey"});
        for (key, value) in extra.as_object().into_iter().flatten() {
            request[key] = value.clone();
        }
        request
    };
    for (extra, wanted) in [
        (
            json!({"labels": {"cloud_provider_enabled": "true"}}),
            "cluster_user_trust",
        ),
        (
            json!({"labels": {"ingress_controller": "contour"}}),
            "ingress_controller",
        ),
        (
            json!({"labels": {"ingress_controller": "octavia"}}),
            "Octavia",
        ),
        (json!({"master_lb_enabled": true}), "Octavia"),
    ] {
        let refused = api.post("/v1/clusters", cluster(extra.clone())).await;
        assert_eq!(refused.status, 400, "{extra}: {}", refused.text);
        assert!(refused.text.contains(wanted), "{extra}: {}", refused.text);
    }
    let listed = api.get("/v1/clusters").await;
    assert_eq!(listed.body["clusters"], json!([]), "{}", listed.text);
}
