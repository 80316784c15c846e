//! Projects see and change only their own templates (plus public ones they may read);
//! publishing is admin-only; administrators see everything.

use crate::common::Magnumd;
use serde_json::json;

fn template(name: &str) -> serde_json::Value {
    json!({"name": name, "coe": "swarm", "image_id": "i", "external_network_id": "public"})
}

#[tokio::test]
async fn another_project_gets_404_on_private_templates() {
    let magnumd = Magnumd::start().await;
    magnumd.add_user("alice", "project-a", &["member"]);
    magnumd.add_user("bob", "project-b", &["member"]);
    let alice = magnumd.user("alice", "project-a").await;
    let bob = magnumd.user("bob", "project-b").await;
    let created = alice
        .post("/v1/clustertemplates", template("private"))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let uuid = created.body["uuid"].as_str().unwrap();
    for path in [
        format!("/v1/clustertemplates/{uuid}"),
        "/v1/clustertemplates/private".to_string(),
        format!("/v1/baymodels/{uuid}"),
    ] {
        assert_eq!(bob.get(&path).await.status, 404, "{path}");
        assert_eq!(
            bob.patch(
                &path,
                json!([{"op": "replace", "path": "/name", "value": "x"}])
            )
            .await
            .status,
            404,
            "{path}"
        );
        assert_eq!(bob.delete(&path).await.status, 404, "{path}");
    }
    assert_eq!(
        bob.get("/v1/clustertemplates").await.body["clustertemplates"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        bob.get("/v1/baymodels/detail").await.body["baymodels"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // A marker bob cannot see is a 404.
    assert_eq!(
        bob.get(&format!("/v1/clustertemplates?marker={uuid}"))
            .await
            .status,
        404
    );
    // Bob may use the same name in his own project.
    assert_eq!(
        bob.post("/v1/clustertemplates", template("private"))
            .await
            .status,
        201
    );
    assert_eq!(
        alice.get("/v1/clustertemplates/private").await.body["uuid"],
        uuid
    );
}

#[tokio::test]
async fn publishing_is_for_administrators() {
    let magnumd = Magnumd::start().await;
    magnumd.add_user("alice", "project-a", &["member"]);
    magnumd.add_user("bob", "project-b", &["member"]);
    let alice = magnumd.user("alice", "project-a").await;
    let bob = magnumd.user("bob", "project-b").await;
    let admin = magnumd.admin().await;

    let mut public = template("pub");
    public["public"] = json!(true);
    let refused = alice.post("/v1/clustertemplates", public.clone()).await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.error_detail(),
        "Not authorized to set public or hidden flag for cluster template."
    );
    let mut hidden = template("hid");
    hidden["hidden"] = json!(true);
    assert_eq!(alice.post("/v1/clustertemplates", hidden).await.status, 403);
    alice.post("/v1/clustertemplates", template("mine")).await;
    let publish = alice
        .patch(
            "/v1/clustertemplates/mine",
            json!([{"op": "replace", "path": "/public", "value": true}]),
        )
        .await;
    assert_eq!(publish.status, 403);
    let mut seed_public = json!({"name": "seedpub", "coe": "swarm", "image_id": "i", "keypair_id": "k", "public": true});
    let seed_refused = alice.post("/v1/baymodels", seed_public.clone()).await;
    assert_eq!(seed_refused.status, 403);
    assert_eq!(
        seed_refused.seed_fault()["faultstring"],
        "Not authorized to set public flag for baymodel."
    );

    let published = admin.post("/v1/clustertemplates", public).await;
    assert_eq!(published.status, 201);
    assert_eq!(published.body["public"], true);
    seed_public["name"] = json!("seedpub2");
    assert_eq!(admin.post("/v1/baymodels", seed_public).await.status, 201);

    // Every project reads and lists a public template, but may not change or delete it.
    let uuid = published.body["uuid"].as_str().unwrap();
    assert_eq!(
        bob.get(&format!("/v1/clustertemplates/{uuid}"))
            .await
            .status,
        200
    );
    assert_eq!(bob.get("/v1/clustertemplates/pub").await.status, 200);
    assert!(bob.get("/v1/clustertemplates").await.text.contains(uuid));
    let change = bob
        .patch(
            "/v1/clustertemplates/pub",
            json!([{"op": "replace", "path": "/flavor_id", "value": "m1.large"}]),
        )
        .await;
    assert_eq!(change.status, 403);
    assert_eq!(
        change.error_detail(),
        "Policy doesn't allow clustertemplate:update to be performed."
    );
    assert_eq!(bob.delete("/v1/clustertemplates/pub").await.status, 403);

    // Hiding it removes it from other projects' view.
    let hide = admin
        .patch(
            "/v1/clustertemplates/pub",
            json!([{"op": "replace", "path": "/hidden", "value": true}]),
        )
        .await;
    assert_eq!(hide.status, 200, "{}", hide.text);
    assert_eq!(
        bob.get(&format!("/v1/clustertemplates/{uuid}"))
            .await
            .status,
        404
    );
    assert!(!bob.get("/v1/clustertemplates").await.text.contains(uuid));
}

#[tokio::test]
async fn administrators_see_every_project() {
    let magnumd = Magnumd::start().await;
    magnumd.add_user("alice", "project-a", &["member"]);
    let alice = magnumd.user("alice", "project-a").await;
    let admin = magnumd.admin().await;
    let created = alice.post("/v1/clustertemplates", template("alices")).await;
    let uuid = created.body["uuid"].as_str().unwrap();
    assert_eq!(
        admin
            .get(&format!("/v1/clustertemplates/{uuid}"))
            .await
            .status,
        200
    );
    assert!(admin.get("/v1/clustertemplates").await.text.contains(uuid));
    let renamed = admin
        .patch(
            &format!("/v1/clustertemplates/{uuid}"),
            json!([{"op": "replace", "path": "/name", "value": "renamed"}]),
        )
        .await;
    assert_eq!(renamed.status, 200);
    assert_eq!(renamed.body["project_id"], created.body["project_id"]);
    assert_eq!(
        admin
            .delete(&format!("/v1/clustertemplates/{uuid}"))
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn readers_may_read_but_not_write() {
    let magnumd = Magnumd::start().await;
    magnumd.add_user("alice", "project-a", &["member"]);
    magnumd.add_user("rita", "project-a", &["reader"]);
    let alice = magnumd.user("alice", "project-a").await;
    let rita = magnumd.user("rita", "project-a").await;
    alice.post("/v1/clustertemplates", template("shared")).await;
    assert_eq!(rita.get("/v1/clustertemplates/shared").await.status, 200);
    let create = rita.post("/v1/clustertemplates", template("ritas")).await;
    assert_eq!(create.status, 403);
    assert_eq!(
        create.error_detail(),
        "Policy doesn't allow clustertemplate:create to be performed."
    );
    assert_eq!(rita.delete("/v1/clustertemplates/shared").await.status, 403);
    let mservices = rita.get("/v1/mservices").await;
    assert_eq!(mservices.status, 403);
}

#[tokio::test]
async fn ambiguous_names_are_409() {
    let magnumd = Magnumd::start().await;
    magnumd.add_user("alice", "project-a", &["member"]);
    let alice = magnumd.user("alice", "project-a").await;
    let admin = magnumd.admin().await;
    let mut public = template("common");
    public["public"] = json!(true);
    admin.post("/v1/clustertemplates", public).await;
    alice.post("/v1/clustertemplates", template("common")).await;
    let reply = alice.get("/v1/clustertemplates/common").await;
    assert_eq!(reply.status, 409);
    assert_eq!(reply.error_detail(), "Multiple cluster templates exist with same name. Please use the cluster template uuid instead.");
}

#[tokio::test]
async fn a_policy_file_next_to_magnum_conf_overrides_defaults() {
    let magnumd = Magnumd::start_with(crate::common::Options {
        policy_yaml: Some(
            "# Readers may list services; members may publish.\n\
             \"magnum-service:get_all\": \"role:reader\"\n\
             \"clustertemplate:publish\": \"role:member\"\n"
                .to_string(),
        ),
        ..crate::common::Options::default()
    })
    .await;
    magnumd.add_user("rita", "project-a", &["reader"]);
    magnumd.add_user("alice", "project-a", &["member"]);
    let rita = magnumd.user("rita", "project-a").await;
    let alice = magnumd.user("alice", "project-a").await;
    assert_eq!(rita.get("/v1/mservices").await.status, 200);
    let mut public = template("published-by-member");
    public["public"] = json!(true);
    let created = alice.post("/v1/clustertemplates", public).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["public"], true);
}

#[tokio::test]
async fn a_broken_policy_file_stops_startup() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(
        directory.path().join("policy.yaml"),
        "\"clustertemplate:create\": \"(role:member\"\n",
    )
    .unwrap();
    std::fs::write(
        directory.path().join("magnum.conf"),
        format!(
            "[DEFAULT]\nstate_path = {}\n[api]\nport = 0\n[identity]\nport = 0\n",
            directory.path().display()
        ),
    )
    .unwrap();
    let output = std::process::Command::new(crate::common::binary("magnumd"))
        .arg("--config-file")
        .arg(directory.path().join("magnum.conf"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("policy.yaml") && stderr.contains("clustertemplate:create"),
        "{stderr}"
    );
}
