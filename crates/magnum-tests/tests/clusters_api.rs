//! The clusters API over HTTP: validation, the lifecycle's refusals, tenancy, quotas and
//! statistics, with exact statuses and error bodies.
//!
//! magnumd's API runs in-process (no conductor) on a fake infrastructure (the fake provider
//! and driver of `magnum_driver::test_doubles`): nothing is built, no Docker engine is
//! needed, and every cluster stays in the status the API gave it, so the status rules can be
//! checked without racing a conductor. What the real docker provider refuses is checked
//! against a magnumd process at the end.

use crate::common::docker::NODE_IMAGE;
use crate::common::{Api, Magnumd, Options};
use serde_json::{json, Value};

const LATEST: (&str, &str) = ("OpenStack-API-Version", "container-infra latest");

async fn start_api_only() -> Magnumd {
    Magnumd::start_with(Options {
        provider: "docker",
        in_process: true,
        role: "api",
        extra_config: "[quotas]\nmax_clusters_per_project = 5\n".to_string(),
        ..Options::default()
    })
    .await
}

async fn latest(api: Api) -> Api {
    api.with_header(LATEST.0, LATEST.1)
}

async fn create_template(api: &Api, name: &str) -> String {
    let created = api
        .post(
            "/v1/clustertemplates",
            json!({"name": name, "coe": "swarm", "image_id": NODE_IMAGE,
                   "external_network_id": "local", "network_driver": "docker",
                   "flavor_id": "m1.small"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.body["uuid"].as_str().unwrap().to_string()
}

async fn create_cluster(api: &Api, body: Value) -> String {
    let created = api.post("/v1/clusters", body).await;
    assert_eq!(created.status, 202, "{}", created.text);
    created.body["uuid"].as_str().unwrap().to_string()
}

/// The project id of a user's token.
async fn project_id(magnumd: &Magnumd, user: &str, password: &str, project: &str) -> String {
    let reply = magnumd.password_auth(user, password, project).await;
    reply.body["token"]["project"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn cluster_creation_validates_its_input() {
    let magnumd = start_api_only().await;
    let admin = magnumd.admin().await;
    let api = latest(admin.clone()).await;
    create_template(&api, "swarm").await;

    // The answer to a create is 202 with only the uuid; the cluster is already
    // CREATE_IN_PROGRESS, with both default nodegroups.
    let created = api
        .post(
            "/v1/clusters",
            json!({"name": "c1", "cluster_template_id": "swarm", "node_count": 2}),
        )
        .await;
    assert_eq!(created.status, 202, "{}", created.text);
    assert_eq!(created.body.as_object().unwrap().len(), 1);
    let uuid = created.body["uuid"].as_str().unwrap().to_string();
    let shown = api.get(&format!("/v1/clusters/{uuid}")).await;
    assert_eq!(shown.body["status"], "CREATE_IN_PROGRESS");
    assert_eq!(shown.body["status_reason"], Value::Null);
    assert_eq!(shown.body["node_count"], 2);
    assert_eq!(shown.body["master_count"], 1);
    assert_eq!(shown.body["create_timeout"], 60);
    assert_eq!(shown.body["flavor_id"], "m1.small");
    let groups = api.get(&format!("/v1/clusters/{uuid}/nodegroups")).await;
    let names: Vec<&str> = groups.body["nodegroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| group["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["default-master", "default-worker"]);
    // The look-ups were made by the template's provider for the caller's project.
    let admin_project = project_id(&magnumd, "admin", &magnumd.admin_password, "admin").await;
    let calls = magnumd
        .in_process
        .as_ref()
        .unwrap()
        .provider
        .calls
        .lock()
        .unwrap()
        .clone();
    assert!(
        calls.contains(&(
            "flavor".to_string(),
            "m1.small".to_string(),
            admin_project.clone()
        )),
        "{calls:?}"
    );
    assert!(calls
        .iter()
        .all(|(_, _, project)| project == &admin_project));

    // Horizon's panel sends an empty discovery_url when the user gives none.
    let from_horizon = api
        .post(
            "/v1/clusters",
            json!({"name": "h1", "cluster_template_id": "swarm", "discovery_url": "",
                   "create_timeout": 60, "master_count": 1, "node_count": 1}),
        )
        .await;
    assert_eq!(from_horizon.status, 202, "{}", from_horizon.text);
    let shown_horizon = api
        .get(&format!(
            "/v1/clusters/{}",
            from_horizon.body["uuid"].as_str().unwrap()
        ))
        .await;
    assert_eq!(shown_horizon.body["discovery_url"], Value::Null);

    // Rejections, each with its status and message.
    for (body, status, detail) in [
        (
            json!({"name": "x"}),
            400,
            "cluster_template_id. Value: 'None'. Mandatory field missing.",
        ),
        (
            json!({"name": "x", "cluster_template_id": "nope"}),
            404,
            "ClusterTemplate nope could not be found",
        ),
        (
            json!({"name": "x", "cluster_template_id": "swarm", "master_count": 0}),
            400,
            "master_count",
        ),
        (
            json!({"name": "x", "cluster_template_id": "swarm", "node_count": -1}),
            400,
            "node_count",
        ),
        (
            json!({"name": "x", "cluster_template_id": "swarm", "flavor_id": "m1.huge"}),
            400,
            "m1.huge",
        ),
        (
            json!({"name": "x", "cluster_template_id": "swarm", "create_timeout": -5}),
            400,
            "create_timeout",
        ),
        // Numbers beyond the service's bounds never reach the planner or date arithmetic.
        (
            json!({"name": "x", "cluster_template_id": "swarm", "node_count": 9223372036854775807_i64}),
            400,
            "node_count",
        ),
        (
            json!({"name": "x", "cluster_template_id": "swarm", "create_timeout": 9223372036854775807_i64}),
            400,
            "create_timeout",
        ),
        (
            json!({"name": "x", "cluster_template_id": "swarm", "node_count": 231}),
            400,
            "at most 230 worker nodes",
        ),
        (
            json!({"name": "c1", "cluster_template_id": "swarm"}),
            409,
            "already exists",
        ),
        (
            json!({"name": "x", "cluster_template_id": "swarm", "bogus": 1}),
            400,
            "bogus",
        ),
    ] {
        let reply = api.post("/v1/clusters", body.clone()).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text);
        assert!(
            reply.error_detail().contains(detail),
            "{body}: expected {detail:?} in {}",
            reply.text
        );
    }
    // Without a version header (1.1) an unknown template is 400, and no worker is refused.
    let old = admin
        .post(
            "/v1/clusters",
            json!({"name": "y", "cluster_template_id": "nope"}),
        )
        .await;
    assert_eq!(old.status, 400, "{}", old.text);
    let zero = admin
        .post(
            "/v1/clusters",
            json!({"name": "y", "cluster_template_id": "swarm", "node_count": 0}),
        )
        .await;
    assert_eq!(zero.status, 400, "{}", zero.text);
    let zero_latest = api
        .post(
            "/v1/clusters",
            json!({"name": "z", "cluster_template_id": "swarm", "node_count": 0}),
        )
        .await;
    assert_eq!(zero_latest.status, 202, "{}", zero_latest.text);

    let unknown_image = api
        .post(
            "/v1/clustertemplates",
            json!({"name": "i", "coe": "swarm", "image_id": "no-such-image:1",
                   "external_network_id": "local"}),
        )
        .await;
    assert_eq!(unknown_image.status, 400, "{}", unknown_image.text);
    assert_eq!(
        unknown_image.error_detail(),
        "Image no-such-image:1 could not be found."
    );

    // Malformed bodies are 400, never 500.
    let broken = api
        .raw(
            reqwest::Method::POST,
            "/v1/clusters",
            Some(("application/json", b"{\"name\": ".to_vec())),
        )
        .await;
    assert_eq!(broken.status, 400, "{}", broken.text);
    let wrong_type = api
        .raw(
            reqwest::Method::POST,
            "/v1/clusters",
            Some(("text/plain", b"name=x".to_vec())),
        )
        .await;
    assert_eq!(wrong_type.status, 400, "{}", wrong_type.text);
    let listed = api.get("/v1/clusters").await;
    assert_eq!(listed.body["clusters"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn the_status_of_a_cluster_decides_what_may_happen_to_it() {
    let magnumd = start_api_only().await;
    let admin = magnumd.admin().await;
    let api = latest(admin.clone()).await;
    let template = create_template(&api, "swarm").await;
    let uuid = create_cluster(
        &api,
        json!({"name": "busy", "cluster_template_id": "swarm", "node_count": 1}),
    )
    .await;

    // No conductor runs, so the cluster stays CREATE_IN_PROGRESS: changes are refused now,
    // synchronously, with the reason. A nodegroup needs the cluster's API address first.
    let nodegroups = format!("/v1/clusters/{uuid}/nodegroups");
    for (body, status, detail) in [
        (
            json!({"name": "pool"}),
            409,
            "Cluster API address is not available yet",
        ),
        (json!({}), 400, "name"),
        (
            json!({"name": "pool", "role": "master"}),
            400,
            "Creating master nodegroups is currently not supported.",
        ),
        (
            json!({"name": "pool", "node_count": 1, "min_node_count": 2}),
            409,
            "min_node_count for pool is invalid",
        ),
        (
            json!({"name": "pool", "node_count": 3, "max_node_count": 2}),
            409,
            "max_node_count for pool is invalid",
        ),
        (
            json!({"name": "pool", "node_taints": [{"key": "k", "effect": "Often"}]}),
            409,
            "node_taints for pool is invalid",
        ),
        (
            json!({"name": "pool", "node_labels": {"kubernetes.io/role": "x"}}),
            409,
            "node_labels for pool is invalid",
        ),
        (json!({"name": "pool", "surprise": 1}), 400, "surprise"),
    ] {
        let reply = api.post(&nodegroups, body.clone()).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text);
        assert!(
            reply.error_detail().contains(detail),
            "{body}: expected {detail:?} in {}",
            reply.text
        );
    }
    let old_client = admin
        .with_header("OpenStack-API-Version", "container-infra 1.8")
        .post(&nodegroups, json!({"name": "pool"}))
        .await;
    assert_eq!(old_client.status, 406, "{}", old_client.text);
    let default_group = api.delete(&format!("{nodegroups}/default-worker")).await;
    assert_eq!(default_group.status, 400, "{}", default_group.text);
    assert!(default_group.error_detail().contains("default nodegroup"));
    let internal = api
        .patch(
            &format!("{nodegroups}/default-worker"),
            json!([{"op": "replace", "path": "/node_count", "value": 3}]),
        )
        .await;
    assert_eq!(internal.status, 400, "{}", internal.text);
    assert!(internal.error_detail().contains("internal attribute"));
    let limits = api
        .patch(
            &format!("{nodegroups}/default-worker"),
            json!([{"op": "replace", "path": "/max_node_count", "value": 3}]),
        )
        .await;
    assert_eq!(limits.status, 400, "{}", limits.text);
    assert!(
        limits.error_detail().contains("CREATE_IN_PROGRESS"),
        "{}",
        limits.text
    );
    let unknown = api.delete(&format!("{nodegroups}/nope")).await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert_eq!(unknown.error_detail(), "Nodegroup nope could not be found.");

    let patched = api
        .patch(
            &format!("/v1/clusters/{uuid}"),
            json!([{"op": "replace", "path": "/node_count", "value": 3}]),
        )
        .await;
    assert_eq!(patched.status, 400, "{}", patched.text);
    assert_eq!(
        patched.error_detail(),
        "Updating a cluster when status is \"CREATE_IN_PROGRESS\" is not supported."
    );
    let resized = api
        .post(
            &format!("/v1/clusters/{uuid}/actions/resize"),
            json!({"node_count": 3}),
        )
        .await;
    assert_eq!(resized.status, 400, "{}", resized.text);
    assert_eq!(
        resized.error_detail(),
        "Resizing a cluster when status is \"CREATE_IN_PROGRESS\" is not supported."
    );
    let rotated = api
        .raw(
            reqwest::Method::PATCH,
            &format!("/v1/certificates/{uuid}"),
            None,
        )
        .await;
    assert_eq!(rotated.status, 400, "{}", rotated.text);
    assert!(rotated.error_detail().contains("CREATE_IN_PROGRESS"));

    // Other refusals of a PATCH: attributes that cannot change, and counts below minimum.
    for (patch, detail) in [
        (
            json!([{"op": "replace", "path": "/api_address", "value": "x"}]),
            "api_address",
        ),
        (
            json!([{"op": "replace", "path": "/node_count", "value": -1}]),
            "node_count",
        ),
        (json!({"op": "replace"}), "patch"),
    ] {
        let reply = api
            .patch(&format!("/v1/clusters/{uuid}"), patch.clone())
            .await;
        assert_eq!(reply.status, 400, "{patch}: {}", reply.text);
        assert!(
            reply.error_detail().to_lowercase().contains(detail),
            "{patch}: expected {detail:?} in {}",
            reply.text
        );
    }

    // The template is in use: it cannot be deleted.
    let in_use = api
        .delete(&format!("/v1/clustertemplates/{template}"))
        .await;
    assert_eq!(in_use.status, 400, "{}", in_use.text);
    assert_eq!(
        in_use.error_detail(),
        format!("ClusterTemplate {template} is referenced by one or multiple clusters.")
    );
    // Nor changed in what its clusters are built from: only its name, public and hidden
    // may change (upstream's rule); a refused change writes nothing.
    for patch in [
        json!([{"op": "replace", "path": "/tls_disabled", "value": true}]),
        json!([{"op": "replace", "path": "/image_id", "value": NODE_IMAGE}, {"op": "replace", "path": "/dns_nameserver", "value": "10.9.9.9"}]),
        json!([{"op": "replace", "path": "/name", "value": "renamed"}, {"op": "add", "path": "/labels/x", "value": "1"}]),
    ] {
        let refused = api
            .patch(&format!("/v1/clustertemplates/{template}"), patch.clone())
            .await;
        assert_eq!(refused.status, 400, "{patch}: {}", refused.text);
        assert_eq!(
            refused.error_detail(),
            format!("ClusterTemplate {template} is referenced by one or multiple clusters.")
        );
    }
    let unchanged = api.get(&format!("/v1/clustertemplates/{template}")).await;
    assert_eq!(unchanged.body["tls_disabled"], false);
    assert_eq!(unchanged.body["labels"], json!({}));
    let renamed = api
        .patch(
            &format!("/v1/clustertemplates/{template}"),
            json!([{"op": "replace", "path": "/name", "value": "renamed"},
                   {"op": "replace", "path": "/public", "value": true},
                   {"op": "replace", "path": "/hidden", "value": true}]),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(renamed.body["name"], "renamed");
    // Through the 2016 API a baymodel in use cannot change at all.
    let baymodel = admin
        .patch(
            &format!("/v1/baymodels/{template}"),
            json!([{"op": "replace", "path": "/name", "value": "again"}]),
        )
        .await;
    assert_eq!(baymodel.status, 400, "{}", baymodel.text);
    // Seen as a bay, the same refusal comes in the 2016 error format.
    let bay_update = admin
        .patch(
            &format!("/v1/bays/{uuid}"),
            json!([{"op": "replace", "path": "/node_count", "value": 3}]),
        )
        .await;
    assert_eq!(bay_update.status, 400, "{}", bay_update.text);
    assert_eq!(
        bay_update.seed_fault()["faultstring"],
        "Updating a bay when stack status is \"CREATE_IN_PROGRESS\" is not supported."
    );

    // Deleting is always possible; the cluster goes DELETE_IN_PROGRESS at once.
    assert_eq!(
        api.delete(&format!("/v1/clusters/{uuid}")).await.status,
        204
    );
    let shown = api.get(&format!("/v1/clusters/{uuid}")).await;
    assert_eq!(shown.body["status"], "DELETE_IN_PROGRESS");
    let again = api
        .patch(
            &format!("/v1/clusters/{uuid}"),
            json!([{"op": "replace", "path": "/node_count", "value": 3}]),
        )
        .await;
    assert_eq!(again.status, 400, "{}", again.text);

    // Unknown clusters are 404 everywhere.
    for reply in [
        api.get("/v1/clusters/no-such-cluster").await,
        api.delete("/v1/clusters/no-such-cluster").await,
        api.patch(
            "/v1/clusters/no-such-cluster",
            json!([{"op": "replace", "path": "/node_count", "value": 3}]),
        )
        .await,
        api.post(
            "/v1/clusters/no-such-cluster/actions/resize",
            json!({"node_count": 1}),
        )
        .await,
        api.get("/v1/certificates/no-such-cluster").await,
    ] {
        assert_eq!(reply.status, 404, "{}", reply.text);
        assert!(
            reply.error_detail().contains("no-such-cluster"),
            "{}",
            reply.text
        );
    }
}

#[tokio::test]
async fn other_projects_cannot_see_or_touch_a_cluster() {
    let magnumd = start_api_only().await;
    let api = latest(magnumd.admin().await).await;
    create_template(&api, "swarm").await;
    let public = api
        .patch(
            "/v1/clustertemplates/swarm",
            json!([{"op": "replace", "path": "/public", "value": true}]),
        )
        .await;
    assert_eq!(public.status, 200, "{}", public.text);
    let uuid = create_cluster(
        &api,
        json!({"name": "mine", "cluster_template_id": "swarm", "node_count": 1}),
    )
    .await;
    magnumd.add_user("bob", "other", &["member"]);
    let bob = latest(magnumd.user("bob", "other").await).await;

    let listed = bob.get("/v1/clusters").await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["clusters"], json!([]));
    for ident in [uuid.as_str(), "mine"] {
        for reply in [
            bob.get(&format!("/v1/clusters/{ident}")).await,
            bob.get(&format!("/v1/bays/{ident}")).await,
            bob.delete(&format!("/v1/clusters/{ident}")).await,
            bob.patch(
                &format!("/v1/clusters/{ident}"),
                json!([{"op": "replace", "path": "/node_count", "value": 3}]),
            )
            .await,
            bob.post(
                &format!("/v1/clusters/{ident}/actions/resize"),
                json!({"node_count": 3}),
            )
            .await,
            bob.get(&format!("/v1/clusters/{ident}/nodegroups")).await,
            bob.get(&format!("/v1/clusters/{ident}/nodegroups/default-worker"))
                .await,
            bob.post(
                &format!("/v1/clusters/{ident}/nodegroups"),
                json!({"name": "pool"}),
            )
            .await,
            bob.patch(
                &format!("/v1/clusters/{ident}/nodegroups/default-worker"),
                json!([{"op": "replace", "path": "/max_node_count", "value": 3}]),
            )
            .await,
            bob.delete(&format!("/v1/clusters/{ident}/nodegroups/default-worker"))
                .await,
            bob.get(&format!("/v1/certificates/{ident}")).await,
            bob.raw(
                reqwest::Method::PATCH,
                &format!("/v1/certificates/{ident}"),
                None,
            )
            .await,
        ] {
            assert_eq!(reply.status, 404, "{}", reply.text);
        }
        // A cluster named in a request body that cannot be found is a bad request (as
        // upstream answers a CSR for an unknown cluster).
        let signed = bob
            .post(
                "/v1/certificates",
                json!({"cluster_uuid": ident, "csr": "x"}),
            )
            .await;
        assert_eq!(signed.status, 400, "{}", signed.text);
        assert!(signed.error_detail().contains("could not be found"));
    }
    // Bob may use the public template for a cluster of his own; an admin sees the
    // clusters of every project (spec §4.5), Bob still only his.
    let his = create_cluster(
        &bob,
        json!({"name": "his", "cluster_template_id": "swarm", "node_count": 1}),
    )
    .await;
    let all = api.get("/v1/clusters").await;
    let uuids: Vec<&str> = all.body["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|cluster| cluster["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(uuids.len(), 2);
    assert!(uuids.contains(&his.as_str()) && uuids.contains(&uuid.as_str()));
    let bobs = bob.get("/v1/clusters").await;
    assert_eq!(bobs.body["clusters"].as_array().unwrap().len(), 1);
    assert_eq!(bobs.body["clusters"][0]["uuid"], his.as_str());
    // A reader of the project may look but not change.
    magnumd.add_user("rita", "other", &["reader"]);
    let rita = latest(magnumd.user("rita", "other").await).await;
    assert_eq!(rita.get(&format!("/v1/clusters/{his}")).await.status, 200);
    let refused = rita.delete(&format!("/v1/clusters/{his}")).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
}

#[tokio::test]
async fn quotas_limit_cluster_creation_and_stats_count_clusters_and_nodes() {
    let magnumd = start_api_only().await;
    let api = latest(magnumd.admin().await).await;
    create_template(&api, "swarm").await;
    let public = api
        .patch(
            "/v1/clustertemplates/swarm",
            json!([{"op": "replace", "path": "/public", "value": true}]),
        )
        .await;
    assert_eq!(public.status, 200);
    magnumd.add_user("carol", "limited", &["member"]);
    let carol = latest(magnumd.user("carol", "limited").await).await;
    let limited = project_id(&magnumd, "carol", "carol-pw", "limited").await;

    // Only admins manage quotas.
    let quota = json!({"project_id": limited, "resource": "Cluster", "hard_limit": 1});
    let refused = carol.post("/v1/quotas", quota.clone()).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let created = api.post("/v1/quotas", quota.clone()).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["hard_limit"], 1);
    let duplicate = api.post("/v1/quotas", quota.clone()).await;
    assert_eq!(duplicate.status, 409, "{}", duplicate.text);
    let invalid = api
        .post(
            "/v1/quotas",
            json!({"project_id": limited, "resource": "Widgets", "hard_limit": 1}),
        )
        .await;
    assert_eq!(invalid.status, 400, "{}", invalid.text);
    let shown = api.get(&format!("/v1/quotas/{limited}/Cluster")).await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert_eq!(shown.body["hard_limit"], 1);

    // The quota is enforced on create.
    create_cluster(
        &carol,
        json!({"name": "first", "cluster_template_id": "swarm", "node_count": 2}),
    )
    .await;
    let second = carol
        .post(
            "/v1/clusters",
            json!({"name": "second", "cluster_template_id": "swarm"}),
        )
        .await;
    assert_eq!(second.status, 403, "{}", second.text);
    assert_eq!(
        second.error_detail(),
        "Resource limit exceeded: You have reached the maximum clusters per project, 1. You may delete a cluster to make room for a new one."
    );
    // Horizon's panel sends back the id it read with the new limit.
    let bad_id = api
        .patch(
            &format!("/v1/quotas/{limited}/Cluster"),
            json!({"id": "one", "hard_limit": 2}),
        )
        .await;
    assert_eq!(bad_id.status, 400, "{}", bad_id.text);
    let raised = api
        .patch(
            &format!("/v1/quotas/{limited}/Cluster"),
            json!({"id": created.body["id"], "hard_limit": 2}),
        )
        .await;
    assert_eq!(raised.status, 202, "{}", raised.text);
    assert_eq!(raised.body["hard_limit"], 2);
    create_cluster(
        &carol,
        json!({"name": "second", "cluster_template_id": "swarm", "master_count": 3, "node_count": 1}),
    )
    .await;

    // Stats: clusters and nodes (masters + workers) of a project.
    let own = carol.get("/v1/stats").await;
    assert_eq!(own.status, 200, "{}", own.text);
    assert_eq!(own.body, json!({"clusters": 2, "nodes": 7}));
    let by_admin = api.get(&format!("/v1/stats?project_id={limited}")).await;
    assert_eq!(by_admin.body, json!({"clusters": 2, "nodes": 7}));
    let admin_project = project_id(&magnumd, "admin", &magnumd.admin_password, "admin").await;
    let elsewhere = carol
        .get(&format!("/v1/stats?project_id={admin_project}"))
        .await;
    assert_eq!(elsewhere.status, 403, "{}", elsewhere.text);
    let bad_type = api.get("/v1/stats?type=pods").await;
    assert_eq!(bad_type.status, 400, "{}", bad_type.text);

    let listed = api.get("/v1/quotas?all_tenants=True").await;
    assert_eq!(listed.body["quotas"].as_array().unwrap().len(), 1);
    let deleted = api.delete(&format!("/v1/quotas/{limited}/Cluster")).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let missing = api.get(&format!("/v1/quotas/{limited}/Cluster")).await;
    // Without a quota row the configured default (5 here) applies.
    assert_eq!(missing.status, 200, "{}", missing.text);
    assert_eq!(missing.body["hard_limit"], 5);
}

/// What the real docker provider cannot honour is refused with the reason, before anything
/// is built (no engine is needed for these refusals).
#[tokio::test]
async fn the_docker_provider_refuses_what_it_cannot_honour() {
    let magnumd = Magnumd::start_with(Options {
        provider: "docker",
        role: "api",
        ..Options::default()
    })
    .await;
    let api = latest(magnumd.admin().await).await;
    for (body, detail) in [
        (
            json!({"network_driver": "flannel"}),
            "Network driver flannel cannot be used with the docker provider",
        ),
        (
            json!({"tls_disabled": true}),
            "tls_disabled cannot be used with the docker provider",
        ),
        (
            json!({"docker_volume_size": 5}),
            "docker_volume_size cannot be used with the docker provider",
        ),
        (
            json!({"fixed_network": "192.168.1.0/24"}),
            "The fixed network 192.168.1.0/24 is outside the subnets the docker provider gives clusters",
        ),
    ] {
        let mut template = json!({"name": "t", "coe": "swarm", "image_id": NODE_IMAGE,
                                  "external_network_id": "local"});
        for (key, value) in body.as_object().unwrap() {
            template[key] = value.clone();
        }
        let refused = api.post("/v1/clustertemplates", template).await;
        assert_eq!(refused.status, 400, "{body}: {}", refused.text);
        assert!(
            refused.error_detail().starts_with(detail),
            "{body}: expected {detail:?} in {}",
            refused.text
        );
    }
    // A fixed network inside the pool is accepted; so is a cluster of the template, but
    // not one asking for a docker volume.
    let accepted = api
        .post(
            "/v1/clustertemplates",
            json!({"name": "t", "coe": "swarm", "image_id": NODE_IMAGE,
                   "external_network_id": "local", "fixed_network": "10.200.77.0/24"}),
        )
        .await;
    assert_eq!(accepted.status, 201, "{}", accepted.text);
    let volume = api
        .post(
            "/v1/clusters",
            json!({"name": "c", "cluster_template_id": "t", "docker_volume_size": 3}),
        )
        .await;
    assert_eq!(volume.status, 400, "{}", volume.text);
    assert!(volume
        .error_detail()
        .starts_with("docker_volume_size cannot be used with the docker provider"));
}

/// Quotas are checked in the transaction that writes: twenty creates at once against a
/// quota of five make exactly five clusters; nodes are bounded too, on create and on growth.
#[tokio::test]
async fn parallel_creates_never_pass_the_quotas() {
    // With the (fake) conductor, so that clusters complete and can be resized.
    let magnumd = Magnumd::start_with(Options {
        provider: "docker",
        in_process: true,
        extra_config: "[conductor]\npoll_interval = 1\n".to_string(),
        ..Options::default()
    })
    .await;
    let api = latest(magnumd.admin().await).await;
    create_template(&api, "swarm").await;
    let project = project_id(&magnumd, "admin", &magnumd.admin_password, "admin").await;
    for (resource, limit) in [("Cluster", 5), ("Node", 13)] {
        let quota = api
            .post(
                "/v1/quotas",
                json!({"project_id": project, "resource": resource, "hard_limit": limit}),
            )
            .await;
        assert_eq!(quota.status, 201, "{}", quota.text);
    }
    let attempts = (0..20).map(|index| {
        let api = api.clone();
        async move {
            api.post(
                "/v1/clusters",
                json!({"name": format!("p{index}"), "cluster_template_id": "swarm",
                       "node_count": 1}),
            )
            .await
        }
    });
    let replies = futures::future::join_all(attempts).await;
    let accepted: Vec<String> = replies
        .iter()
        .filter(|reply| reply.status == 202)
        .map(|reply| reply.body["uuid"].as_str().unwrap().to_string())
        .collect();
    let refused = replies.iter().filter(|reply| reply.status == 403).count();
    assert_eq!(
        (accepted.len(), refused),
        (5, 15),
        "{:?}",
        replies
            .iter()
            .map(|reply| (reply.status, reply.text.as_str()))
            .collect::<Vec<_>>()
    );
    assert!(replies
        .iter()
        .filter(|reply| reply.status == 403)
        .all(|reply| reply
            .error_detail()
            .contains("maximum clusters per project, 5")));
    let listed = api.get("/v1/clusters").await;
    assert_eq!(listed.body["clusters"].as_array().unwrap().len(), 5);

    // Five clusters of one master and one worker: 10 of 13 nodes. Growing one by four
    // workers is refused, by three accepted; shrinking is always allowed.
    for uuid in &accepted {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let shown = api.get(&format!("/v1/clusters/{uuid}")).await.body;
            if shown["status"] == "CREATE_COMPLETE" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{shown}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let target = &accepted[0];
    let resize = |count: i64| {
        let api = api.clone();
        let target = target.clone();
        async move {
            api.post(
                &format!("/v1/clusters/{target}/actions/resize"),
                json!({"node_count": count}),
            )
            .await
        }
    };
    let too_many = resize(5).await;
    assert_eq!(too_many.status, 403, "{}", too_many.text);
    assert!(too_many
        .error_detail()
        .contains("maximum nodes per project, 13"));
    let grown = resize(4).await;
    assert_eq!(grown.status, 202, "{}", grown.text);
    let new_group = api
        .post(
            &format!("/v1/clusters/{}/nodegroups", accepted[1]),
            json!({"name": "more", "node_count": 1}),
        )
        .await;
    assert_eq!(new_group.status, 403, "{}", new_group.text);
}
