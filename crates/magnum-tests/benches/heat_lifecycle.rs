//! Benchmark (not a test; prints figures for BENCHMARKS.md): the Kubernetes cluster
//! lifecycle on the openstack provider through magnumd — create to CREATE_COMPLETE, scale
//! out by one worker to UPDATE_COMPLETE, delete until the cluster is gone — next to the
//! same steps on the same rendered stack sent to the same Heat directly (as a cluster's
//! trustee within its trust, as magnumd sends them), in the same run;
//! then magnumd's memory while it manages 20 stacks. Both sides are polled every 20 ms.
//!
//!     scripts/openstack/services.sh start          # prints the env file
//!     cargo build --release --bins
//!     MAGNUM_TEST_OPENSTACK_ENV=<env file> BENCH_RUNS=5 \
//!         cargo bench -p magnum-tests --bench heat_lifecycle
//!
//! The Heat of `services.sh` runs with servers, networks and volumes as no-op resources and
//! 0.1 s task steps, so the figures measure magnumd's own overhead around Heat, not a cloud.

#![allow(clippy::unwrap_used, dead_code)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::cloud_double::{CloudApiDouble, CloudContents};
use common::openstack::RealOpenStack;
use common::{Api, Magnumd, Options};
use magnum_config::Secret;
use magnum_driver::test_doubles::sample_spec;
use magnum_driver_openstack::k8s_fedora_coreos::{render, NodeAccess};
use magnum_openstack::heat::{StackRef, StackState, StackUpdate};
use magnum_openstack::{http_client, Heat, StackCreate};
use serde_json::json;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(20);

async fn until_status(api: &Api, uuid: &str, wanted: &str) -> Duration {
    let started = Instant::now();
    loop {
        let shown = api.get(&format!("/v1/clusters/{uuid}")).await;
        if (wanted == "gone" && shown.status == 404) || shown.body["status"] == wanted {
            return started.elapsed();
        }
        assert!(
            !shown.body["status"]
                .as_str()
                .unwrap_or("")
                .ends_with("FAILED"),
            "{}",
            shown.text
        );
        tokio::time::sleep(POLL).await;
    }
}

/// (create, scale, delete) through magnumd.
async fn through_magnumd(api: &Api, run: usize) -> [Duration; 3] {
    let started = Instant::now();
    let created = api
        .post(
            "/v1/clusters",
            json!({"name": format!("bench-{run}"), "cluster_template_id": "k8s",
                   "master_count": 1, "node_count": 2, "keypair": "mykey"}),
        )
        .await;
    assert_eq!(created.status, 202, "{}", created.text);
    let uuid = created.body["uuid"].as_str().unwrap().to_string();
    until_status(api, &uuid, "CREATE_COMPLETE").await;
    let create = started.elapsed();
    let started = Instant::now();
    let resized = api
        .post(
            &format!("/v1/clusters/{uuid}/actions/resize"),
            json!({"node_count": 3}),
        )
        .await;
    assert_eq!(resized.status, 202, "{}", resized.text);
    until_status(api, &uuid, "UPDATE_COMPLETE").await;
    let scale = started.elapsed();
    let started = Instant::now();
    assert_eq!(
        api.delete(&format!("/v1/clusters/{uuid}")).await.status,
        204
    );
    until_status(api, &uuid, "gone").await;
    [create, scale, started.elapsed()]
}

async fn until_settled(heat: &Heat, token: &str, stack: &StackRef) -> Option<String> {
    loop {
        match heat.get(token, stack).await.unwrap() {
            Some(shown) if shown.status.state == StackState::InProgress => {}
            Some(shown) => return Some(shown.status.to_string()),
            None => return None,
        }
        tokio::time::sleep(POLL).await;
    }
}

/// (create, scale, delete) of the same stack sent to Heat directly.
async fn heat_alone(heat: &Heat, token: &str, access: &NodeAccess, run: usize) -> [Duration; 3] {
    let rendered = render(&sample_spec(2, &[]), access).unwrap();
    let started = Instant::now();
    let stack = heat
        .create(
            token,
            &StackCreate {
                name: format!("heat-alone-{}-{run}", std::process::id()),
                template: rendered.template,
                files: rendered.files,
                environment: None,
                parameters: rendered.parameters,
                timeout_mins: Some(60),
                tags: Vec::new(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        until_settled(heat, token, &stack).await.as_deref(),
        Some("CREATE_COMPLETE")
    );
    let create = started.elapsed();
    let started = Instant::now();
    let mut parameters = serde_json::Map::new();
    parameters.insert("number_of_minions".into(), json!("3"));
    heat.update(
        token,
        &stack,
        &StackUpdate {
            parameters,
            ..StackUpdate::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        until_settled(heat, token, &stack).await.as_deref(),
        Some("UPDATE_COMPLETE")
    );
    let scale = started.elapsed();
    let started = Instant::now();
    heat.delete(token, &stack).await.unwrap();
    let end = until_settled(heat, token, &stack).await;
    assert!(
        end.is_none() || end.as_deref() == Some("DELETE_COMPLETE"),
        "{end:?}"
    );
    [create, scale, started.elapsed()]
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(5);
    let openstack = RealOpenStack::from_env().expect("MAGNUM_TEST_OPENSTACK_ENV names no services");
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
    let api = Api::new(&magnumd.base_url(), Some(token.clone()))
        .with_header("OpenStack-API-Version", "container-infra latest");
    let template = api
        .post(
            "/v1/clustertemplates",
            json!({"name": "k8s", "coe": "kubernetes", "image_id": "fedora-coreos-40",
                   "external_network_id": "public", "flavor_id": "m1.small",
                   "master_flavor_id": "m1.large", "network_driver": "flannel",
                   "labels": {"provider": "openstack"}}),
        )
        .await;
    assert_eq!(template.status, 201, "{}", template.text);
    let heat = Heat::new(
        http_client().unwrap(),
        &format!("{}/v1/{}", openstack.heat_url, tenant.project_id),
    );
    // Heat alone gets the same kind of caller as magnumd: the trustee of a cluster, within
    // its trust (Heat keeps the trust for the stack's later work, which costs Keystone
    // calls a plain user's stack does not make).
    let holder = api
        .post(
            "/v1/clusters",
            json!({"name": "trust-holder", "cluster_template_id": "k8s",
                   "master_count": 1, "node_count": 1, "keypair": "mykey"}),
        )
        .await;
    assert_eq!(holder.status, 202, "{}", holder.text);
    let holder = holder.body["uuid"].as_str().unwrap().to_string();
    until_status(&api, &holder, "CREATE_COMPLETE").await;
    let trustee_token = openstack
        .trustee_token(magnumd.state_dir.path(), &holder, &tenant.project_id)
        .await;
    let access = NodeAccess {
        magnum_url: format!("{}/v1", magnumd.base_url()),
        auth_url: format!("{}/v3", openstack.keystone_url),
        region_name: "RegionOne".to_string(),
        trustee_user_id: "bench".to_string(),
        trustee_username: "bench".to_string(),
        trustee_password: Secret::new("bench"),
        trust_id: "bench".to_string(),
        cluster_user_trust: false,
    };

    let mut magnum_runs = Vec::new();
    let mut heat_runs = Vec::new();
    for run in 0..runs {
        magnum_runs.push(through_magnumd(&api, run).await);
        heat_runs.push(heat_alone(&heat, &trustee_token, &access, run).await);
    }
    println!("| Step | magnumd (median s) | Heat alone (median s) | ratio | magnumd runs (ms) | Heat runs (ms) |");
    println!("|---|---|---|---|---|---|");
    for (index, step) in [
        "create 1 master + 2 workers",
        "scale out +1 worker",
        "delete",
    ]
    .into_iter()
    .enumerate()
    {
        let ours: Vec<Duration> = magnum_runs.iter().map(|run| run[index]).collect();
        let theirs: Vec<Duration> = heat_runs.iter().map(|run| run[index]).collect();
        let (a, b) = (median(ours.clone()), median(theirs.clone()));
        let list = |values: &[Duration]| {
            values
                .iter()
                .map(|value| value.as_millis().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "| {step} | {:.2} | {:.2} | {:.2} | {} | {} |",
            a.as_secs_f64(),
            b.as_secs_f64(),
            a.as_secs_f64() / b.as_secs_f64(),
            list(&ours),
            list(&theirs)
        );
    }

    assert_eq!(
        api.delete(&format!("/v1/clusters/{holder}")).await.status,
        204
    );
    until_status(&api, &holder, "gone").await;

    // Memory while 20 stacks are managed.
    let before = rss_kib(magnumd.pid());
    let mut uuids = Vec::new();
    for index in 0..20 {
        let created = api
            .post(
                "/v1/clusters",
                json!({"name": format!("many-{index}"), "cluster_template_id": "k8s",
                       "node_count": 1, "keypair": "mykey"}),
            )
            .await;
        assert_eq!(created.status, 202, "{}", created.text);
        uuids.push(created.body["uuid"].as_str().unwrap().to_string());
    }
    let mut peak = 0;
    for uuid in &uuids {
        loop {
            peak = peak.max(rss_kib(magnumd.pid()));
            let shown = api.get(&format!("/v1/clusters/{uuid}")).await;
            if shown.body["status"] == "CREATE_COMPLETE" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let managed = rss_kib(magnumd.pid());
    println!();
    println!("| magnumd memory | |");
    println!("|---|---|");
    println!("| RSS before the 20 clusters | {} MiB |", before / 1024);
    println!("| RSS with 20 stacks managed | {} MiB |", managed / 1024);
    println!(
        "| peak RSS while they were built | {} MiB |",
        peak.max(managed) / 1024
    );
    for uuid in &uuids {
        api.delete(&format!("/v1/clusters/{uuid}")).await;
    }
    for uuid in &uuids {
        until_status(&api, uuid, "gone").await;
    }
}
