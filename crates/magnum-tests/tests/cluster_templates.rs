//! `/v1/clustertemplates`: create, read, list, page, patch, delete, and every rejection.

use crate::common::{Api, Magnumd};
use serde_json::{json, Value};

fn swarm(name: &str) -> Value {
    json!({"name": name, "coe": "swarm", "image_id": "fedora-atomic", "external_network_id": "public"})
}

#[tokio::test]
async fn create_show_patch_delete_round_trip() {
    let magnumd = Magnumd::start().await;
    let admin = magnumd.admin().await;
    let created = admin
        .post(
            "/v1/clustertemplates",
            json!({"name": "k8s", "coe": "kubernetes", "image_id": "fedora-coreos",
                   "external_network_id": "public", "keypair_id": null, "flavor_id": "m1.small",
                   "docker_storage_driver": "overlay2", "dns_nameserver": "8.8.8.8",
                   "labels": {"kube_tag": "v1.23.3", "flannel_backend": "vxlan", "n": 3}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let uuid = created.body["uuid"].as_str().unwrap().to_string();
    assert_eq!(
        created.header("location"),
        Some(format!("{}/v1/clustertemplates/{uuid}", magnumd.base_url()).as_str())
    );
    let body = &created.body;
    assert_eq!(body["network_driver"], "flannel");
    assert_eq!(body["server_type"], "vm");
    assert_eq!(body["floating_ip_enabled"], true);
    assert_eq!(body["public"], false);
    assert_eq!(body["hidden"], false);
    assert_eq!(body["labels"]["n"], "3");
    assert!(body["keypair_id"].is_null());
    assert!(body["updated_at"].is_null());
    assert!(body["project_id"].is_string() && body["user_id"].is_string());
    assert_eq!(
        body["links"][0]["href"],
        format!("{}/v1/clustertemplates/{uuid}", magnumd.base_url())
    );
    assert_eq!(
        body["links"][1]["href"],
        format!("{}/clustertemplates/{uuid}", magnumd.base_url())
    );
    assert!(body.get("id").is_none() && body.get("ssh_authorized_key").is_none());

    let by_uuid = admin.get(&format!("/v1/clustertemplates/{uuid}")).await;
    let by_name = admin.get("/v1/clustertemplates/k8s").await;
    assert_eq!(by_uuid.status, 200);
    assert_eq!(by_uuid.body, by_name.body);
    assert_eq!(by_uuid.body, created.body);
    // A list shows each template as a GET does (and keeps the encoded item for later pages).
    let listed = admin.get("/v1/clustertemplates").await;
    assert_eq!(listed.body["clustertemplates"][0], created.body);

    let patched = admin
        .patch(
            "/v1/clustertemplates/k8s",
            json!([{"op": "replace", "path": "/docker_volume_size", "value": 7},
                   {"op": "add", "path": "/labels/smoke", "value": "2"},
                   {"op": "remove", "path": "/flavor_id"}]),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["docker_volume_size"], 7);
    assert_eq!(patched.body["labels"]["smoke"], "2");
    assert!(patched.body["flavor_id"].is_null());
    assert!(patched.body["updated_at"].is_string());
    assert_eq!(
        admin
            .get(&format!("/v1/clustertemplates/{uuid}"))
            .await
            .body,
        patched.body
    );
    // The list shows the new revision, never the item encoded for the old one.
    for path in ["/v1/clustertemplates", "/v1/clustertemplates/detail"] {
        let listed = admin.get(path).await;
        assert_eq!(listed.body["clustertemplates"][0], patched.body, "{path}");
    }

    assert_eq!(
        admin
            .delete(&format!("/v1/clustertemplates/{uuid}"))
            .await
            .status,
        204
    );
    let gone = admin.get(&format!("/v1/clustertemplates/{uuid}")).await;
    assert_eq!(gone.status, 404);
    assert_eq!(
        gone.error_detail(),
        format!("ClusterTemplate {uuid} could not be found.")
    );
    assert_eq!(admin.delete("/v1/clustertemplates/k8s").await.status, 404);
    assert_eq!(
        admin
            .patch("/v1/clustertemplates/k8s", json!([]))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_name_is_generated_when_none_is_given() {
    let magnumd = Magnumd::start().await;
    let admin = magnumd.admin().await;
    let created = admin
        .post(
            "/v1/clustertemplates",
            json!({"coe": "mesos", "image_id": "ubuntu"}),
        )
        .await;
    assert_eq!(created.status, 201);
    let name = created.body["name"].as_str().unwrap();
    assert!(
        name.ends_with("-template") && name.split('-').count() == 3,
        "{name}"
    );
    assert_eq!(created.body["network_driver"], "docker");
}

/// Every validation rule of spec §3.1/§3.2, with the status and message it must produce.
#[tokio::test]
async fn every_validation_rule_rejects_with_its_status_and_message() {
    let magnumd = Magnumd::start().await;
    let admin = magnumd.admin().await;
    let base = swarm("v");
    // Bodies missing a mandatory attribute are sent as they are.
    for (body, message) in [
        (
            json!({"image_id": "i"}),
            "Invalid input for field/attribute coe. Value: 'None'. Mandatory field missing.",
        ),
        (
            json!({"coe": "swarm"}),
            "Invalid input for field/attribute image_id. Value: 'None'. Mandatory field missing.",
        ),
        (
            json!({"coe": "swarm", "image_id": null}),
            "Invalid input for field/attribute image_id. Value: 'None'. Mandatory field missing.",
        ),
    ] {
        let reply = admin.post("/v1/clustertemplates", body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert_eq!(reply.error_detail(), message);
    }
    // The others change one valid body.
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"coe": "nomad", "image_id": "i"}), 400, "Invalid input for field/attribute coe. Value: 'nomad'."),
        (json!({"colour": "blue"}), 400, "Unknown attribute for argument cluster_template: colour"),
        (json!({"project_id": "x"}), 400, "Unknown attribute for argument cluster_template: project_id"),
        (json!({"name": ""}), 400, "Value should have a minimum character requirement of 1"),
        (json!({"name": "x".repeat(256)}), 400, "Value should have a maximum character requirement of 255"),
        (json!({"apiserver_port": 1023}), 400, "Value should be greater or equal to 1024"),
        (json!({"apiserver_port": 65536}), 400, "Value should be lower or equal to 65535"),
        (json!({"docker_volume_size": 0}), 400, "Value should be greater or equal to 1"),
        (json!({"docker_volume_size": "lots"}), 400, "Invalid input for field/attribute docker_volume_size. Value: 'lots'."),
        (json!({"tls_disabled": "perhaps"}), 400, "Invalid input for field/attribute tls_disabled."),
        (json!({"server_type": "lpar"}), 400, "Invalid input for field/attribute server_type. Value: 'lpar'. Value should be one of: vm, bm"),
        (json!({"dns_nameserver": "dns.example"}), 400, "Expected a single dns address or comma separated dns list"),
        (json!({"uuid": "not-a-uuid"}), 400, "Expected a uuid"),
        (json!({"labels": ["a"]}), 400, "Invalid input for field/attribute labels."),
        (json!({"labels": {"a": {"nested": 1}}}), 400, "Label a has a value of the wrong type"),
        (json!({"network_driver": "calico"}), 400, "Network driver type calico is not supported, expecting a docker/flannel/unspecified network driver."),
        (json!({"coe": "mesos", "network_driver": "flannel"}), 400, "Network driver type flannel is not supported, expecting a docker/unspecified network driver."),
        (json!({"coe": "kubernetes", "network_driver": "docker"}), 400, "Network driver type docker is not supported, expecting a flannel/calico/unspecified network driver."),
        (json!({"volume_driver": "cinder"}), 400, "Volume driver type cinder is not supported, expecting a rexray/unspecified volume driver."),
        (json!({"coe": "kubernetes", "volume_driver": "rexray"}), 400, "Volume driver type rexray is not supported, expecting a cinder/unspecified volume driver."),
        (json!({"coe": "kubernetes", "docker_storage_driver": "devicemapper", "docker_volume_size": 2}), 400, "expecting minimum value 3GB for devicemapper storage driver."),
        (json!({"network_driver": "flannel", "labels": {"flannel_network_cidr": "10.0.0.0"}}), 400, "Invalid value '10.0.0.0' for label flannel_network_cidr"),
        (json!({"network_driver": "flannel", "labels": {"flannel_network_subnetlen": "8"}}), 400, "Invalid value '8' for label flannel_network_subnetlen"),
        (json!({"network_driver": "flannel", "labels": {"flannel_backend": "gre"}}), 400, "Invalid value 'gre' for label flannel_backend: expected one of udp, vxlan, host-gw"),
        (json!({"labels": {"flannel_backend": "udp", "flannel_use_vxlan": "true"}}), 400, "contradict each other"),
        (json!({"labels": {"swarm_strategy": "fastest"}}), 400, "Invalid value 'fastest' for label swarm_strategy"),
        (json!({"coe": "mesos", "labels": {"mesos_slave_image_providers": "docker"}}), 400, "Docker runtime isolator has to be specified"),
        (json!({"driver": "no_such_driver"}), 400, "Cluster driver (no_such_driver) not supported."),
        (json!({"driver": "mesos_ubuntu_v1"}), 400, "does not support the swarm engine"),
    ];
    for (changes, status, message) in cases {
        let mut body = base.clone();
        for (key, value) in changes.as_object().unwrap() {
            body[key] = value.clone();
        }
        let reply = admin.post("/v1/clustertemplates", body.clone()).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text);
        assert_eq!(reply.body["errors"][0]["code"], "client", "{body}");
        assert!(
            reply.error_detail().contains(message),
            "{body}: {} does not contain {message}",
            reply.error_detail()
        );
    }
    // Nothing was stored by any of the refused requests.
    let list = admin.get("/v1/clustertemplates").await;
    assert_eq!(list.body["clustertemplates"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn flannel_labels_of_the_user_guide_are_accepted() {
    let magnumd = Magnumd::start().await;
    let admin = magnumd.admin().await;
    let created = admin
        .post(
            "/v1/clustertemplates",
            json!({"name": "flannel", "coe": "swarm", "image_id": "i", "network_driver": "flannel",
                   "labels": {"flannel_network_cidr": "10.101.0.0/16", "flannel_network_subnetlen": "26",
                              "flannel_backend": "host-gw"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let legacy = admin
        .post(
            "/v1/clustertemplates",
            json!({"name": "legacy", "coe": "kubernetes", "image_id": "i",
                                              "labels": {"flannel_use_vxlan": "true"}}),
        )
        .await;
    assert_eq!(legacy.status, 201, "{}", legacy.text);
}

#[tokio::test]
async fn bad_bodies_are_400_never_500() {
    let magnumd = Magnumd::start().await;
    let admin = magnumd.admin().await;
    let post = |content_type: &'static str, body: &'static str| {
        let admin = admin.clone();
        async move {
            admin
                .raw(
                    reqwest::Method::POST,
                    "/v1/clustertemplates",
                    Some((content_type, body.as_bytes().to_vec())),
                )
                .await
        }
    };
    for (content_type, body, message) in [
        ("application/json", "{\"coe\": ", "Malformed JSON"),
        ("application/json", "", "empty"),
        ("application/json", "[1, 2]", "must be a JSON object"),
        ("application/json", "\"text\"", "must be a JSON object"),
        (
            "text/plain",
            "{\"coe\": \"swarm\", \"image_id\": \"i\"}",
            "Unsupported Content-Type",
        ),
        (
            "application/x-www-form-urlencoded",
            "coe=swarm",
            "Unsupported Content-Type",
        ),
    ] {
        let reply = post(content_type, body).await;
        assert_eq!(reply.status, 400, "{content_type} {body}: {}", reply.text);
        assert!(
            reply.error_detail().contains(message),
            "{}",
            reply.error_detail()
        );
    }
    admin.post("/v1/clustertemplates", swarm("target")).await;
    for (body, message) in [
        ("{\"op\": \"replace\"}", "must be a JSON list"),
        (
            "[{\"op\": \"replace\", \"path\": \"/uuid\", \"value\": \"x\"}]",
            "'/uuid' is an internal attribute and can not be updated",
        ),
        (
            "[{\"op\": \"replace\", \"path\": \"/project_id\", \"value\": \"x\"}]",
            "internal attribute",
        ),
        (
            "[{\"op\": \"remove\", \"path\": \"/coe\"}]",
            "'/coe' is a mandatory attribute and can not be removed",
        ),
        (
            "[{\"op\": \"remove\", \"path\": \"/image_id\"}]",
            "mandatory attribute",
        ),
        (
            "[{\"op\": \"replace\", \"path\": \"/name\"}]",
            "need a value",
        ),
        (
            "[{\"op\": \"add\", \"path\": \"/name\", \"value\": \"x\"}]",
            "please use 'replace'",
        ),
        (
            "[{\"op\": \"add\", \"path\": \"/colour\", \"value\": \"x\"}]",
            "colour is not an attribute",
        ),
        (
            "[{\"op\": \"copy\", \"path\": \"/name\", \"from\": \"/coe\"}]",
            "Unknown attribute for argument patch: from",
        ),
        (
            "[{\"op\": \"move\", \"path\": \"/name\"}]",
            "Value should be one of: add, replace, remove",
        ),
        (
            "[{\"op\": \"replace\", \"path\": \"name\", \"value\": \"x\"}]",
            "Invalid patch path",
        ),
        (
            "[{\"op\": \"replace\", \"path\": \"/network_driver\", \"value\": \"calico\"}]",
            "Network driver type calico is not supported",
        ),
        (
            "[{\"op\": \"replace\", \"path\": \"/docker_volume_size\", \"value\": -1}]",
            "Value should be greater or equal to 1",
        ),
        (
            "[{\"op\": \"remove\", \"path\": \"/labels/missing\"}]",
            "non-existent",
        ),
    ] {
        let reply = admin
            .raw(
                reqwest::Method::PATCH,
                "/v1/clustertemplates/target",
                Some(("application/json", body.as_bytes().to_vec())),
            )
            .await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert!(
            reply.error_detail().contains(message),
            "{body}: {}",
            reply.error_detail()
        );
    }
    // A patch that is not a list is refused before the template is looked up.
    let early = admin
        .raw(
            reqwest::Method::PATCH,
            "/v1/clustertemplates/missing",
            Some(("application/json", b"{}".to_vec())),
        )
        .await;
    assert_eq!(early.status, 400);
    let unchanged = admin.get("/v1/clustertemplates/target").await;
    assert!(
        unchanged.body["updated_at"].is_null(),
        "a refused patch changed the row"
    );
}

#[tokio::test]
async fn lists_page_sort_and_link_to_the_next_page() {
    let magnumd = Magnumd::start().await;
    let admin = magnumd.admin().await;
    let mut uuids = Vec::new();
    for name in ["delta", "alpha", "echo", "charlie", "bravo"] {
        let created = admin.post("/v1/clustertemplates", swarm(name)).await;
        assert_eq!(created.status, 201);
        uuids.push(created.body["uuid"].as_str().unwrap().to_string());
    }
    let names = |reply: &crate::common::Reply, key: &str| -> Vec<String> {
        reply.body[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    let all = admin.get("/v1/clustertemplates").await;
    assert_eq!(
        names(&all, "clustertemplates"),
        ["delta", "alpha", "echo", "charlie", "bravo"]
    );
    assert!(all.body.get("next").is_none());

    let first = admin
        .get("/v1/clustertemplates?limit=2&sort_key=name")
        .await;
    assert_eq!(names(&first, "clustertemplates"), ["alpha", "bravo"]);
    let next = first.body["next"].as_str().unwrap().to_string();
    assert!(
        next.starts_with(&format!("{}/v1/clustertemplates?", magnumd.base_url())),
        "{next}"
    );
    assert!(
        next.contains("sort_key=name") && next.contains("sort_dir=asc") && next.contains("limit=2")
    );
    let path = next.trim_start_matches(&magnumd.base_url()).to_string();
    let second = admin.get(&path).await;
    assert_eq!(names(&second, "clustertemplates"), ["charlie", "delta"]);
    let third = admin
        .get(
            second.body["next"]
                .as_str()
                .unwrap()
                .trim_start_matches(&magnumd.base_url()),
        )
        .await;
    assert_eq!(names(&third, "clustertemplates"), ["echo"]);
    assert!(third.body.get("next").is_none());

    let descending = admin
        .get("/v1/clustertemplates/detail?sort_key=name&sort_dir=desc&limit=3")
        .await;
    assert_eq!(
        names(&descending, "clustertemplates"),
        ["echo", "delta", "charlie"]
    );
    assert!(descending.body["next"]
        .as_str()
        .unwrap()
        .contains("/v1/clustertemplates/detail?"));

    for (query, status, message) in [
        ("limit=0", 400, "Limit must be positive"),
        ("limit=-1", 400, "Limit must be positive"),
        ("limit=abc", 400, "Wrong type"),
        (
            "sort_key=colour",
            400,
            "The sort_key value \"colour\" is an invalid field for sorting",
        ),
        (
            "sort_dir=sideways",
            400,
            "Invalid sort direction: sideways. Acceptable values are 'asc' or 'desc'",
        ),
        ("marker=not-a-uuid", 400, "Expected a uuid"),
        (
            "marker=6e1c27b8-5f06-4e40-8f2c-0b3f9a2b7d11",
            404,
            "could not be found",
        ),
    ] {
        let reply = admin.get(&format!("/v1/clustertemplates?{query}")).await;
        assert_eq!(reply.status, status, "{query}: {}", reply.text);
        assert!(
            reply.error_detail().contains(message),
            "{query}: {}",
            reply.error_detail()
        );
    }
}

#[tokio::test]
async fn concurrent_creates_with_one_name_make_exactly_one_template() {
    let magnumd = Magnumd::start().await;
    let admin = magnumd.admin().await;
    let attempts = (0..8).map(|_| {
        let admin = admin.clone();
        async move { admin.post("/v1/clustertemplates", swarm("racer")).await }
    });
    let replies = futures::future::join_all(attempts).await;
    let created = replies.iter().filter(|reply| reply.status == 201).count();
    let conflicts: Vec<_> = replies.iter().filter(|reply| reply.status == 409).collect();
    assert_eq!(
        created,
        1,
        "{:?}",
        replies
            .iter()
            .map(|r| (r.status, r.text.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(conflicts.len(), 7);
    assert!(conflicts[0]
        .error_detail()
        .contains("A cluster template with name racer already exists"));
    let list = admin.get("/v1/clustertemplates").await;
    assert_eq!(list.body["clustertemplates"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn concurrent_patches_are_not_lost() {
    let magnumd = Magnumd::start().await;
    let admin = magnumd.admin().await;
    admin
        .post("/v1/clustertemplates", swarm("shared-labels"))
        .await;
    let patches = (0..6).map(|index| {
        let admin = admin.clone();
        async move {
            admin
                .patch(
                    "/v1/clustertemplates/shared-labels",
                    json!([{"op": "add", "path": format!("/labels/key{index}"), "value": "v"}]),
                )
                .await
        }
    });
    for reply in futures::future::join_all(patches).await {
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let labels = admin.get("/v1/clustertemplates/shared-labels").await.body["labels"].clone();
    assert_eq!(labels.as_object().unwrap().len(), 6, "{labels}");
}

#[tokio::test]
async fn explicit_uuid_and_driver_are_kept() {
    let magnumd = Magnumd::start().await;
    let admin = magnumd.admin().await;
    let uuid = "0562d357-8641-4759-8fed-8173f02c9633";
    let created = admin
        .post("/v1/clustertemplates", json!({"uuid": uuid, "name": "pinned", "coe": "kubernetes",
                                             "image_id": "fedora-coreos", "driver": "k8s_fedora_coreos_v1"}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["uuid"], uuid);
    assert_eq!(created.body["driver"], "k8s_fedora_coreos_v1");
    let again = admin
        .post(
            "/v1/clustertemplates",
            json!({"uuid": uuid, "coe": "swarm", "image_id": "i"}),
        )
        .await;
    assert_eq!(again.status, 409);
    assert!(again.error_detail().contains(uuid));
    let api = Api::new(&magnumd.base_url(), admin.token.clone());
    assert_eq!(
        api.get("/v1/clustertemplates/0562D357864147598FED8173F02C9633")
            .await
            .status,
        200
    );
}
