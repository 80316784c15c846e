//! Every number a request carries, given anything JSON can say (and digit strings): the
//! answer is a 4xx or a success, never a 5xx, a panic or a hang. Runs in-process on the fake
//! infrastructure, so the values reach the same validation and storage as in production.

use crate::common::docker::NODE_IMAGE;
use crate::common::{Api, Magnumd, Options};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};
use std::time::Duration;

/// Values for a numeric field: integers of every size, their extremes, numbers beyond
/// 64 bits, fractions, and digit strings.
fn number_values(count: usize) -> Vec<Value> {
    let strategy = proptest::prop_oneof![
        proptest::num::i64::ANY.prop_map(Value::from),
        proptest::num::u64::ANY.prop_map(Value::from),
        (-1_000_i64..100_000).prop_map(Value::from),
        proptest::num::f64::NORMAL.prop_map(|number| json!(number)),
        proptest::num::i64::ANY.prop_map(|number| Value::String(number.to_string())),
        "[0-9]{1,40}".prop_map(Value::String),
    ];
    let mut runner = TestRunner::deterministic();
    let mut values: Vec<Value> = (0..count)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();
    values.extend([
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(0),
        json!(-1),
        json!(1e308),
        json!(-0.0),
        json!("9223372036854775808"),
        json!("-9223372036854775809"),
        json!("99999999999999999999999999999999"),
    ]);
    values
}

/// Sends one request and checks the answer is not a server error.
async fn check(api: &Api, method: reqwest::Method, path: &str, body: Option<Value>) {
    let request = api.raw(
        method.clone(),
        path,
        body.as_ref()
            .map(|body| ("application/json", body.to_string().into_bytes())),
    );
    let reply = tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .unwrap_or_else(|_| panic!("{method} {path} {body:?} did not answer within 10 s"));
    assert!(
        reply.status < 500,
        "{method} {path} {body:?}: {} {}",
        reply.status,
        reply.text
    );
}

#[tokio::test]
async fn numbers_in_requests_get_a_4xx_or_success_never_a_5xx_or_a_hang() {
    let magnumd = Magnumd::start_with(Options {
        provider: "docker",
        in_process: true,
        role: "api",
        extra_config:
            "[quotas]\nmax_clusters_per_project = 100000\nmax_nodes_per_project = 10000000\n"
                .to_string(),
        ..Options::default()
    })
    .await;
    let api = magnumd
        .admin()
        .await
        .with_header("OpenStack-API-Version", "container-infra latest");
    let created = api
        .post(
            "/v1/clustertemplates",
            json!({"name": "swarm", "coe": "swarm", "image_id": NODE_IMAGE,
                   "external_network_id": "local", "flavor_id": "m1.small"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let cluster = api
        .post(
            "/v1/clusters",
            json!({"name": "base", "cluster_template_id": "swarm"}),
        )
        .await;
    assert_eq!(cluster.status, 202, "{}", cluster.text);
    let uuid = cluster.body["uuid"].as_str().unwrap().to_string();
    let project = api.get("/v1/clusters/base").await.body["project_id"].clone();

    for (index, value) in number_values(120).into_iter().enumerate() {
        let name = format!("n{index}");
        use reqwest::Method;
        for field in [
            "node_count",
            "master_count",
            "create_timeout",
            "docker_volume_size",
        ] {
            let mut body =
                json!({"name": format!("{name}-{field}"), "cluster_template_id": "swarm"});
            body[field] = value.clone();
            check(&api, Method::POST, "/v1/clusters", Some(body)).await;
        }
        for field in ["node_count", "master_count", "bay_create_timeout"] {
            let mut body = json!({"name": format!("{name}-{field}"), "baymodel_id": "swarm"});
            body[field] = value.clone();
            check(&api, Method::POST, "/v1/bays", Some(body)).await;
        }
        for field in ["docker_volume_size", "apiserver_port"] {
            let mut body = json!({"name": format!("{name}-{field}"), "coe": "swarm",
                                  "image_id": NODE_IMAGE, "external_network_id": "local"});
            body[field] = value.clone();
            check(&api, Method::POST, "/v1/clustertemplates", Some(body)).await;
        }
        for label in ["min_node_count", "max_node_count"] {
            let body = json!({"name": format!("{name}-{label}"), "cluster_template_id": "swarm",
                              "labels": {label: value.to_string()}});
            check(&api, Method::POST, "/v1/clusters", Some(body)).await;
        }
        for field in [
            "node_count",
            "min_node_count",
            "max_node_count",
            "docker_volume_size",
        ] {
            let mut body = json!({"name": format!("{name}-{field}")});
            body[field] = value.clone();
            check(
                &api,
                Method::POST,
                &format!("/v1/clusters/{uuid}/nodegroups"),
                Some(body),
            )
            .await;
        }
        for field in ["min_node_count", "max_node_count"] {
            let body = json!([{"op": "replace", "path": format!("/{field}"), "value": value}]);
            check(
                &api,
                Method::PATCH,
                &format!("/v1/clusters/{uuid}/nodegroups/default-worker"),
                Some(body),
            )
            .await;
        }
        check(
            &api,
            Method::POST,
            &format!("/v1/clusters/{uuid}/actions/resize"),
            Some(json!({"node_count": value})),
        )
        .await;
        check(
            &api,
            Method::POST,
            &format!("/v1/clusters/{uuid}/actions/upgrade"),
            Some(json!({"cluster_template": "swarm", "max_batch_size": value})),
        )
        .await;
        check(
            &api,
            Method::PATCH,
            &format!("/v1/clusters/{uuid}"),
            Some(json!([{"op": "replace", "path": "/node_count", "value": value}])),
        )
        .await;
        check(
            &api,
            Method::POST,
            "/v1/quotas",
            Some(json!({"project_id": format!("p-{index}"), "resource": "Cluster", "hard_limit": value})),
        )
        .await;
        check(
            &api,
            Method::PATCH,
            &format!(
                "/v1/quotas/{}/Cluster",
                project.as_str().unwrap_or_default()
            ),
            Some(json!({"hard_limit": value})),
        )
        .await;
        let query = match &value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        for path in ["/v1/clusters", "/v1/clustertemplates", "/v1/quotas"] {
            check(&api, Method::GET, &format!("{path}?limit={query}"), None).await;
        }
    }
    // Still serving.
    assert_eq!(api.get("/v1/clusters/base").await.status, 200);
}
