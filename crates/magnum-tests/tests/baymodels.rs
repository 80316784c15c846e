//! `/v1/baymodels`: the 2016 API over the same rows, with its own fields, rules and errors.

use crate::common::Magnumd;
use serde_json::json;

fn baymodel(name: &str) -> serde_json::Value {
    json!({"name": name, "image_id": "fedora-21-atomic-5", "keypair_id": "testkey",
           "external_network_id": "public", "coe": "swarm", "dns_nameserver": "8.8.8.8",
           "labels": {"flannel_backend": "udp"}})
}

#[tokio::test]
async fn baymodels_speak_the_2016_api() {
    let magnumd = Magnumd::start().await;
    let admin = magnumd.admin().await;
    let created = admin.post("/v1/baymodels", baymodel("swarmbm")).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let uuid = created.body["uuid"].as_str().unwrap().to_string();
    assert_eq!(
        created.header("location"),
        Some(format!("{}/v1/baymodels/{uuid}", magnumd.base_url()).as_str())
    );
    assert_eq!(created.body["network_driver"], "docker");
    assert_eq!(
        created.body["links"][0]["href"],
        format!("{}/v1/baymodels/{uuid}", magnumd.base_url())
    );
    for current_only in [
        "hidden",
        "tags",
        "driver",
        "master_lb_enabled",
        "floating_ip_enabled",
        "fixed_subnet",
        "project_id",
    ] {
        assert!(
            created.body.get(current_only).is_none(),
            "{current_only} leaked into a baymodel"
        );
    }
    assert!(created.body.get("ssh_authorized_key").is_some());

    // The plain list is the 2016 summary; detail has every field.
    let list = admin.get("/v1/baymodels").await;
    let item = &list.body["baymodels"][0];
    let mut keys: Vec<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["apiserver_port", "coe", "image_id", "links", "name", "uuid"]
    );
    let detail = admin.get("/v1/baymodels/detail").await;
    assert_eq!(detail.body["baymodels"][0]["keypair_id"], "testkey");

    // The same row through the current API.
    let current = admin.get(&format!("/v1/clustertemplates/{uuid}")).await;
    assert_eq!(current.status, 200);
    assert_eq!(current.body["floating_ip_enabled"], true);
    assert_eq!(current.body["keypair_id"], "testkey");

    let patched = admin
        .patch(
            "/v1/baymodels/swarmbm",
            json!([{"op": "replace", "path": "/http_proxy", "value": "http://proxy:3128"}]),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["http_proxy"], "http://proxy:3128");
    assert_eq!(admin.delete("/v1/baymodels/swarmbm").await.status, 204);
    assert_eq!(
        admin
            .get(&format!("/v1/clustertemplates/{uuid}"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn baymodel_errors_use_the_2016_format_and_rules() {
    let magnumd = Magnumd::start().await;
    let admin = magnumd.admin().await;
    let missing = admin.get("/v1/baymodels/nope").await;
    assert_eq!(missing.status, 404);
    let fault = missing.seed_fault();
    assert_eq!(fault["faultcode"], "Client");
    assert_eq!(fault["faultstring"], "Baymodel nope could not be found.");

    let mut without_keypair = baymodel("nokey");
    without_keypair
        .as_object_mut()
        .unwrap()
        .remove("keypair_id");
    let reply = admin.post("/v1/baymodels", without_keypair).await;
    assert_eq!(reply.status, 400);
    assert!(reply.seed_fault()["faultstring"]
        .as_str()
        .unwrap()
        .contains("keypair_id"));

    for (change, message) in [
        (json!({"coe": "swarm-mode"}), "Requested COE type swarm-mode is not supported."),
        (json!({"coe": "kubernetes", "network_driver": "calico"}), "Network driver type calico is not supported, expecting a flannel/unspecified network driver."),
        (json!({"dns_nameserver": "8.8.8.8,1.1.1.1"}), "Value should be IPv4 format"),
        (json!({"labels": {"n": 3}}), "wrong type"),
        (json!({"hidden": true}), "Unknown attribute for argument baymodel: hidden"),
    ] {
        let mut body = baymodel("bad");
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        let reply = admin.post("/v1/baymodels", body).await;
        assert_eq!(reply.status, 400, "{change}: {}", reply.text);
        let faultstring = reply.seed_fault()["faultstring"].as_str().unwrap_or_default().to_string();
        assert!(faultstring.contains(message), "{change}: {faultstring}");
    }

    admin.post("/v1/baymodels", baymodel("target")).await;
    // The 2016 API treats falsy patch values as missing.
    let falsy = admin
        .patch(
            "/v1/baymodels/target",
            json!([{"op": "replace", "path": "/http_proxy", "value": ""}]),
        )
        .await;
    assert_eq!(falsy.status, 400);
    assert!(falsy.seed_fault()["faultstring"]
        .as_str()
        .unwrap()
        .contains("need a value"));
    let keypair = admin
        .patch(
            "/v1/baymodels/target",
            json!([{"op": "remove", "path": "/keypair_id"}]),
        )
        .await;
    assert_eq!(keypair.status, 400);
    let current_field = admin
        .patch(
            "/v1/baymodels/target",
            json!([{"op": "replace", "path": "/hidden", "value": true}]),
        )
        .await;
    assert_eq!(current_field.status, 400);
}
