//! `/v1/mservices`: conductors and their heartbeats.

use crate::common::outage::CuttableLink;
use crate::common::{fresh_server_database, Magnumd, Options};
use std::time::Duration;

#[tokio::test]
async fn the_conductor_reports_up_with_heartbeats() {
    let magnumd = Magnumd::start().await;
    magnumd.add_user("alice", "project-a", &["member"]);
    let admin = magnumd.admin().await;
    let reply = admin.get("/v1/mservices").await;
    assert_eq!(reply.status, 200);
    let services = reply.body["mservices"].as_array().unwrap();
    assert_eq!(services.len(), 1);
    let conductor = &services[0];
    assert_eq!(conductor["id"], 1);
    assert_eq!(conductor["binary"], "magnum-conductor");
    assert_eq!(conductor["host"], "test-conductor");
    assert_eq!(conductor["state"], "up");
    assert_eq!(conductor["disabled"], false);
    let first_count = conductor["report_count"].as_i64().unwrap();
    assert!(first_count > 0);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = admin.get("/v1/mservices").await;
    assert!(later.body["mservices"][0]["report_count"].as_i64().unwrap() > first_count);
    let alice = magnumd.user("alice", "project-a").await;
    let refused = alice.get("/v1/mservices").await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.error_detail(),
        "Policy doesn't allow magnum-service:get_all to be performed."
    );
}

#[tokio::test]
async fn api_and_conductor_run_as_separate_processes_on_one_database() {
    let mut first = Magnumd::start().await;
    let database_url = first.database_url();
    assert_eq!(
        first.stop(),
        Some(0),
        "magnumd did not exit cleanly on SIGTERM"
    );
    // An API-only process sees the stopped conductor go down.
    let api_only = Magnumd::start_with(Options {
        role: "api",
        database_url: Some(database_url.clone()),
        extra_config: "[DEFAULT]\nservice_down_time = 1\n".to_string(),
        ..Options::default()
    })
    .await;
    let admin = api_only.admin().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let down = admin.get("/v1/mservices").await;
    assert_eq!(
        down.body["mservices"].as_array().unwrap().len(),
        1,
        "{}",
        down.text
    );
    assert_eq!(down.body["mservices"][0]["state"], "down");
    // A conductor-only process on another host name registers and reports up.
    let _conductor = Magnumd::start_with(Options {
        role: "conductor",
        database_url: Some(database_url),
        extra_config: "[DEFAULT]\nhost = second-conductor\n".to_string(),
        ..Options::default()
    })
    .await;
    let mut states = Vec::new();
    for _ in 0..50 {
        let services = admin.get("/v1/mservices").await.body["mservices"].clone();
        states = services
            .as_array()
            .unwrap()
            .iter()
            .map(|service| {
                (
                    service["host"].as_str().unwrap().to_string(),
                    service["state"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>();
        if states.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        states.contains(&("second-conductor".to_string(), "up".to_string())),
        "{states:?}"
    );
    assert!(
        states.contains(&("test-conductor".to_string(), "down".to_string())),
        "{states:?}"
    );
}

/// A database outage is answered 503 in the spec's error format — never 400, 404 or a bare
/// 500 — by the API and by the built-in identity, and the service answers again once the
/// database is back, without a restart. Runs on the server databases, whose TCP link the
/// test cuts (SQLite cannot go away).
#[tokio::test]
async fn a_database_outage_is_answered_503_and_the_service_recovers() {
    let Some(server_url) = fresh_server_database().await else {
        eprintln!("skipped: a database outage needs MAGNUM_TEST_DATABASE_URL");
        return;
    };
    let link = CuttableLink::start(CuttableLink::server_of(&server_url));
    let magnumd = Magnumd::start_with(Options {
        database_url: Some(link.route(&server_url)),
        extra_config: "[database]\npool_timeout = 2\n".to_string(),
        ..Options::default()
    })
    .await;
    magnumd.add_user("alice", "project-a", &["member"]);
    let alice = magnumd.user("alice", "project-a").await;
    assert_eq!(alice.get("/v1/clusters").await.status, 200);
    assert_eq!(alice.get("/v1/clustertemplates").await.status, 200);

    link.cut();
    for path in [
        "/v1/clusters",
        "/v1/clusters/nope",
        "/v1/clustertemplates/nope",
        "/v1/baymodels",
        "/v1/clusters/detail",
    ] {
        let reply = alice.get(path).await;
        assert_eq!(reply.status, 503, "{path}: {}", reply.text);
        if path.starts_with("/v1/baymodels") {
            assert!(reply.body["error_message"].is_string(), "{}", reply.text);
        } else {
            assert_eq!(reply.body["errors"][0]["status"], 503, "{}", reply.text);
            assert_eq!(reply.body["errors"][0]["code"], "server");
        }
    }
    let template = serde_json::json!({
        "name": "during-the-outage", "image_id": "fedora-coreos", "coe": "swarm",
        "external_network_id": "public", "flavor_id": "m1.small",
    });
    let created = alice.post("/v1/clustertemplates", template).await;
    assert_eq!(created.status, 503, "{}", created.text);
    let login = magnumd
        .password_auth("alice", "alice-pw", "project-a")
        .await;
    assert_eq!(login.status, 503, "{}", login.text);
    assert_eq!(login.body["error"]["code"], 503, "{}", login.text);

    link.restore();
    let mut recovered = None;
    for _ in 0..40 {
        let reply = alice.get("/v1/clusters").await;
        if reply.status == 200 {
            recovered = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        recovered.is_some(),
        "the API did not recover after the outage"
    );
    assert_eq!(
        magnumd
            .password_auth("alice", "alice-pw", "project-a")
            .await
            .status,
        201
    );
}
