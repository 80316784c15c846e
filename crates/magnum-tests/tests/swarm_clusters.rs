//! Real Swarm clusters on the local Docker engine, end to end: built by magnumd's conductor,
//! reached with the stock `docker` CLI over the TLS the service set up, scaled, healed,
//! rotated and deleted, through the Rust `magnum` CLI and the stock `openstack` client.
//! Nothing here is simulated: the nodes are containers running their own dockerd.

use crate::common::cli::{json_of, openstack, password_env, run, stderr, stdout};
use crate::common::docker::{
    cluster_docker, engine_ready, exported_environment, labelled_resources, load_workload_image,
    local_docker, running_nodes, swarm_nodes, Janitor, CLUSTER_LABEL, NODE_IMAGE, WORKLOAD_IMAGE,
};
use crate::common::{binary, Api, Magnumd, Options};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// magnumd on the docker provider, with a short health-sync interval.
pub async fn start_docker_magnumd(extra_config: &str) -> Magnumd {
    Magnumd::start_with(Options {
        provider: "docker",
        extra_config: format!("[conductor]\nsync_interval = 2\n{extra_config}"),
        ..Options::default()
    })
    .await
}

/// The Rust `magnum` CLI as the admin user.
pub fn magnum(magnumd: &Magnumd, args: &[&str]) -> Output {
    run(&binary("magnum"), &password_env(magnumd), args)
}

fn succeeded(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

/// The admin's API client at the newest microversion.
pub async fn latest_admin(magnumd: &Magnumd) -> Api {
    magnumd
        .admin()
        .await
        .with_header("OpenStack-API-Version", "container-infra latest")
}

/// Polls the cluster until no operation is in progress; panics after `limit`.
pub async fn settled(api: &Api, uuid: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let reply = api.get(&format!("/v1/clusters/{uuid}")).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let status = reply.body["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !status.ends_with("_IN_PROGRESS") {
            return reply.body;
        }
        assert!(
            Instant::now() < deadline,
            "cluster {uuid} still {status} after {limit:?}: {}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Polls until the cluster is gone (404); panics after `limit`.
pub async fn gone(api: &Api, uuid: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let reply = api.get(&format!("/v1/clusters/{uuid}")).await;
        if reply.status == 404 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cluster {uuid} not deleted after {limit:?}: {}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Creates a cluster through the API (202) and has the janitor remove what a failing test
/// leaves of it; returns its uuid.
async fn create_tracked_cluster(api: &Api, janitor: &Janitor, body: Value) -> String {
    let created = api.post("/v1/clusters", body).await;
    assert_eq!(created.status, 202, "{}", created.text);
    let uuid = created.body["uuid"].as_str().unwrap().to_string();
    janitor.track(&uuid);
    uuid
}

/// Creates the Swarm template of the user guide's docker-provider example.
pub fn create_swarm_template(magnumd: &Magnumd, name: &str, extra: &[&str]) {
    let mut args = vec![
        "cluster-template-create",
        "--name",
        name,
        "--coe",
        "swarm",
        "--image",
        NODE_IMAGE,
        "--external-network",
        "local",
        "--network-driver",
        "docker",
        "--dns-nameserver",
        "10.0.0.53",
        "--flavor",
        "m1.small",
    ];
    args.extend_from_slice(extra);
    succeeded(&magnum(magnumd, &args), "cluster-template-create");
}

fn ready_hosts(nodes: &[(String, String)]) -> Vec<String> {
    nodes
        .iter()
        .filter(|(_, status)| status == "Ready")
        .map(|(host, _)| host.clone())
        .collect()
}

/// Waits until `docker node ls` through the cluster shows exactly `hosts` Ready (a node
/// that has just left is reported Down for a moment before removal completes).
async fn wait_for_ready_nodes(environment: &[(String, String)], count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let nodes = swarm_nodes(environment).unwrap_or_default();
        let ready = ready_hosts(&nodes);
        if ready.len() == count && nodes.len() == count {
            return ready;
        }
        assert!(
            Instant::now() < deadline,
            "expected {count} Ready nodes, docker node ls shows {nodes:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_swarm_cluster_is_built_used_scaled_and_deleted_with_the_magnum_cli() {
    if !engine_ready() {
        return;
    }
    let janitor = Janitor::default();
    let magnumd = start_docker_magnumd("").await;
    let api = latest_admin(&magnumd).await;
    create_swarm_template(&magnumd, "swarm", &[]);

    // Create 1 master + 2 workers and wait, with the status line on stderr.
    let created = magnum(
        &magnumd,
        &[
            "cluster-create",
            "--name",
            "c1",
            "--cluster-template",
            "swarm",
            "--master-count",
            "1",
            "--node-count",
            "2",
            "--wait",
        ],
    );
    let printed = succeeded(&created, "cluster-create --wait");
    assert!(printed.contains("Request to create cluster "), "{printed}");
    assert!(printed.contains("CREATE_COMPLETE"), "{printed}");
    assert!(
        stderr(&created).contains("cluster c1: CREATE_COMPLETE"),
        "{}",
        stderr(&created)
    );

    let shown = json_of(&magnum(&magnumd, &["cluster-show", "c1", "--json"]));
    let uuid = shown["uuid"].as_str().unwrap().to_string();
    janitor.track(&uuid);
    assert_eq!(shown["status"], "CREATE_COMPLETE");
    assert_eq!(shown["health_status"], "HEALTHY");
    let master = shown["master_addresses"][0].as_str().unwrap().to_string();
    assert_eq!(shown["api_address"], format!("tcp://{master}:2376"));
    assert_eq!(shown["node_addresses"].as_array().unwrap().len(), 2);
    assert_eq!(running_nodes(&uuid).len(), 3);

    // cluster-config: a local key, a CSR signed through the API, the CA, export lines.
    let dir = tempfile::tempdir().unwrap();
    let dir_text = dir.path().display().to_string();
    let configured = magnum(&magnumd, &["cluster-config", "c1", "--dir", &dir_text]);
    let environment = exported_environment(&succeeded(&configured, "cluster-config"));
    assert_eq!(
        environment,
        vec![
            ("DOCKER_HOST".to_string(), format!("tcp://{master}:2376")),
            ("DOCKER_CERT_PATH".to_string(), dir_text.clone()),
            ("DOCKER_TLS_VERIFY".to_string(), "1".to_string()),
        ]
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "key.pem must be private");
    }
    let verified = Command::new("openssl")
        .args(["verify", "-CAfile", "ca.pem", "cert.pem"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        stdout(&verified).trim(),
        "cert.pem: OK",
        "{}",
        stderr(&verified)
    );
    let again = magnum(&magnumd, &["cluster-config", "c1", "--dir", &dir_text]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("exists, aborting"));

    // The stock docker CLI over TLS: 3 Ready nodes, and a 3-replica service on 3 nodes.
    let hosts = wait_for_ready_nodes(&environment, 3).await;
    assert_eq!(hosts, vec!["c1-master-0", "c1-node-0", "c1-node-1"]);
    load_workload_image(&uuid);
    let service = crate::common::docker::cluster_docker(
        &environment,
        &[
            "service",
            "create",
            "--detach=false",
            "--quiet",
            "--name",
            "web",
            "--replicas",
            "3",
            "--no-resolve-image",
            "--endpoint-mode",
            "dnsrr",
            WORKLOAD_IMAGE,
            "sleep",
            "3600",
        ],
    );
    assert!(service.status.success(), "{}", stderr(&service));
    let tasks = crate::common::docker::cluster_docker(
        &environment,
        &[
            "service",
            "ps",
            "web",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}} {{.CurrentState}}",
        ],
    );
    let tasks = stdout(&tasks);
    let running: BTreeSet<&str> = tasks
        .lines()
        .filter(|line| line.contains("Running"))
        .filter_map(|line| line.split(' ').next())
        .collect();
    assert_eq!(running.len(), 3, "replicas per node: {tasks}");

    // Scale out to 4 workers with cluster-update.
    let scaled = magnum(
        &magnumd,
        &["cluster-update", "c1", "replace", "node_count=4", "--wait"],
    );
    assert!(succeeded(&scaled, "cluster-update --wait").contains("UPDATE_COMPLETE"));
    wait_for_ready_nodes(&environment, 5).await;
    assert_eq!(running_nodes(&uuid).len(), 5);

    // Scale in to 1 worker, choosing the ones to remove (by host name and by address).
    let shown = json_of(&magnum(&magnumd, &["cluster-show", "c1", "--json"]));
    let third_address = shown["node_addresses"][3].as_str().unwrap().to_string();
    let resized = magnum(
        &magnumd,
        &[
            "cluster-resize",
            "c1",
            "1",
            "--nodes-to-remove",
            "c1-node-0",
            "--nodes-to-remove",
            "c1-node-2",
            "--nodes-to-remove",
            &third_address,
            "--wait",
        ],
    );
    assert!(succeeded(&resized, "cluster-resize --wait").contains("UPDATE_COMPLETE"));
    let hosts = wait_for_ready_nodes(&environment, 2).await;
    assert_eq!(hosts, vec!["c1-master-0", "c1-node-1"]);
    let shown = settled(&api, &uuid, Duration::from_secs(5)).await;
    assert_eq!(shown["node_count"], 1);
    assert_eq!(shown["status"], "UPDATE_COMPLETE");
    assert_eq!(shown["node_addresses"].as_array().unwrap().len(), 1);
    let workers = api
        .get(&format!("/v1/clusters/{uuid}/nodegroups/default-worker"))
        .await;
    assert_eq!(workers.body["node_count"], 1, "{}", workers.text);

    // Delete: nothing labelled with the cluster's uuid remains.
    let deleted = magnum(&magnumd, &["cluster-delete", "c1", "--wait"]);
    assert!(succeeded(&deleted, "cluster-delete --wait").contains("has been accepted"));
    gone(&api, &uuid, Duration::from_secs(5)).await;
    assert_eq!(labelled_resources(&uuid), Vec::<String>::new());
    assert!(
        swarm_nodes(&environment).is_err(),
        "the endpoint must be gone"
    );
}

#[tokio::test]
async fn tls_endpoints_trust_only_their_own_ca_and_rotation_replaces_it() {
    if !engine_ready() {
        return;
    }
    let janitor = Janitor::default();
    let magnumd = start_docker_magnumd("").await;
    let api = latest_admin(&magnumd).await;
    create_swarm_template(&magnumd, "swarm", &[]);
    // Cluster ta is the admin's; tb belongs to a member of the same project.
    magnumd.add_user("dev", "admin", &["member"]);
    let member = magnumd
        .user("dev", "admin")
        .await
        .with_header("OpenStack-API-Version", "container-infra latest");
    let created = magnum(
        &magnumd,
        &[
            "cluster-create",
            "ta",
            "--cluster-template",
            "swarm",
            "--node-count",
            "0",
        ],
    );
    succeeded(&created, "cluster-create");
    let shown = json_of(&magnum(&magnumd, &["cluster-show", "ta", "--json"]));
    let mut uuids = vec![shown["uuid"].as_str().unwrap().to_string()];
    janitor.track(&uuids[0]);
    uuids.push(
        create_tracked_cluster(
            &member,
            &janitor,
            json!({"name": "tb", "cluster_template_id": "swarm", "node_count": 0}),
        )
        .await,
    );
    for uuid in &uuids {
        let cluster = settled(&api, uuid, Duration::from_secs(180)).await;
        assert_eq!(cluster["status"], "CREATE_COMPLETE", "{cluster}");
    }
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let path = |dir: &tempfile::TempDir| dir.path().display().to_string();
    let env_a = exported_environment(&succeeded(
        &magnum(&magnumd, &["cluster-config", "ta", "--dir", &path(&dir_a)]),
        "cluster-config ta",
    ));
    let env_b = exported_environment(&succeeded(
        &magnum(&magnumd, &["cluster-config", "tb", "--dir", &path(&dir_b)]),
        "cluster-config tb",
    ));
    assert_eq!(wait_for_ready_nodes(&env_a, 1).await, vec!["ta-master-0"]);
    assert_eq!(wait_for_ready_nodes(&env_b, 1).await, vec!["tb-master-0"]);

    // A client certificate of cluster A is refused by cluster B's endpoint (B's CA on our
    // side, so only the server's check of the client can fail).
    let host_b = env_b[0].1.clone();
    let crossed = local_docker(&[
        "--tlsverify",
        "--tlscacert",
        &format!("{}/ca.pem", path(&dir_b)),
        "--tlscert",
        &format!("{}/cert.pem", path(&dir_a)),
        "--tlskey",
        &format!("{}/key.pem", path(&dir_a)),
        "-H",
        &host_b,
        "node",
        "ls",
    ]);
    assert!(
        !crossed.status.success(),
        "B accepted A's client certificate"
    );
    assert!(
        stderr(&crossed).contains("bad certificate") || stderr(&crossed).contains("tls"),
        "{}",
        stderr(&crossed)
    );
    let no_client_certificate = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            host_b.trim_start_matches("tcp://"),
            "-CAfile",
            &format!("{}/ca.pem", path(&dir_b)),
            "-verify_return_error",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    // The server's certificate verifies against B's CA; the handshake then needs a client
    // certificate, which openssl did not present.
    let handshake = format!(
        "{}{}",
        stdout(&no_client_certificate),
        stderr(&no_client_certificate)
    );
    assert!(
        handshake.contains("Verify return code: 0 (ok)") || handshake.contains("Verification: OK"),
        "{handshake}"
    );

    // ca-sign with a CSR made by openssl; the certificate verifies against ca-show's CA.
    let work = tempfile::tempdir().unwrap();
    let made = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=admin",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
        ])
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    let signed = magnum(
        &magnumd,
        &[
            "ca-sign",
            "--cluster",
            "ta",
            "--csr",
            &format!("{}/client.csr", work.path().display()),
        ],
    );
    std::fs::write(
        work.path().join("client.pem"),
        succeeded(&signed, "ca-sign"),
    )
    .unwrap();
    let ca = magnum(&magnumd, &["ca-show", "--cluster", "ta"]);
    std::fs::write(work.path().join("ca.pem"), succeeded(&ca, "ca-show")).unwrap();
    let verified = Command::new("openssl")
        .args(["verify", "-CAfile", "ca.pem", "client.pem"])
        .current_dir(work.path())
        .output()
        .unwrap();
    assert_eq!(stdout(&verified).trim(), "client.pem: OK");
    // Only Kubernetes clusters have the separate etcd and front-proxy CAs.
    let no_etcd_ca = member
        .get(&format!("/v1/certificates/{}?ca_cert_type=etcd", uuids[1]))
        .await;
    assert_eq!(no_etcd_ca.status, 400, "{}", no_etcd_ca.text);
    assert!(no_etcd_ca
        .error_detail()
        .contains("only Kubernetes clusters"));
    // A member of the cluster's project administers it: its own name, or the cluster
    // administrator the stock client asks for (CN=admin, O=system:masters), but never
    // another user's name (admins may ask for anything).
    for (subject, expected) in [
        ("/CN=dev", 201),
        ("/CN=mallory", 403),
        ("/CN=mallory/O=system:masters", 403),
        ("/CN=dev/O=system:masters", 201),
        ("/CN=admin/O=system:masters", 201),
    ] {
        let made = Command::new("openssl")
            .args([
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                subject,
                "-keyout",
                "member.key",
                "-out",
                "member.csr",
            ])
            .current_dir(work.path())
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", stderr(&made));
        let answer = member
            .post(
                "/v1/certificates",
                json!({"cluster_uuid": uuids[1],
                       "csr": std::fs::read_to_string(work.path().join("member.csr")).unwrap()}),
            )
            .await;
        assert_eq!(answer.status, expected, "{subject}: {}", answer.text);
        if expected == 403 {
            assert!(
                answer.error_detail().contains("is not allowed")
                    || answer.error_detail().contains("group"),
                "{}",
                answer.text
            );
        }
    }

    // ca-rotate: the old client certificate stops working, a new cluster-config works.
    let rotated = magnum(&magnumd, &["ca-rotate", "--cluster", "ta", "--wait"]);
    succeeded(&rotated, "ca-rotate --wait");
    let cluster = settled(&api, &uuids[0], Duration::from_secs(60)).await;
    assert_eq!(cluster["status"], "UPDATE_COMPLETE", "{cluster}");
    assert!(
        swarm_nodes(&env_a).is_err(),
        "the old CA must no longer be trusted"
    );
    let new_ca = succeeded(
        &magnum(&magnumd, &["ca-show", "--cluster", "ta"]),
        "ca-show",
    );
    assert_ne!(
        new_ca.trim(),
        std::fs::read_to_string(work.path().join("ca.pem"))
            .unwrap()
            .trim()
    );
    let env_a = exported_environment(&succeeded(
        &magnum(
            &magnumd,
            &["cluster-config", "ta", "--dir", &path(&dir_a), "--force"],
        ),
        "cluster-config --force",
    ));
    assert_eq!(wait_for_ready_nodes(&env_a, 1).await, vec!["ta-master-0"]);

    for uuid in &uuids {
        assert_eq!(
            api.delete(&format!("/v1/clusters/{uuid}")).await.status,
            204
        );
    }
    for uuid in &uuids {
        gone(&api, uuid, Duration::from_secs(60)).await;
        assert_eq!(labelled_resources(uuid), Vec::<String>::new());
    }
}

#[tokio::test]
async fn tls_disabled_templates_give_a_plain_tcp_endpoint_and_bays_work() {
    if !engine_ready() {
        return;
    }
    let janitor = Janitor::default();
    // Refused unless the operator allows it.
    let strict = start_docker_magnumd("").await;
    let refused = magnum(
        &strict,
        &[
            "cluster-template-create",
            "--name",
            "plain",
            "--coe",
            "swarm",
            "--image",
            NODE_IMAGE,
            "--external-network",
            "local",
            "--tls-disabled",
        ],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("allow_tls_disabled"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    drop(strict);
    let magnumd = start_docker_magnumd("[docker]\nallow_tls_disabled = true\n").await;
    create_swarm_template(&magnumd, "plain", &["--tls-disabled"]);

    // The 2016 names: bay-create on the template seen as a baymodel, bay-show, bay-config.
    let created = magnum(
        &magnumd,
        &[
            "bay-create",
            "--name",
            "b1",
            "--baymodel",
            "plain",
            "--node-count",
            "1",
            "--wait",
        ],
    );
    let printed = succeeded(&created, "bay-create --wait");
    assert!(printed.contains("Request to create bay "), "{printed}");
    let bay = json_of(&magnum(&magnumd, &["bay-show", "b1", "--json"]));
    assert_eq!(bay["status"], "CREATE_COMPLETE");
    assert_eq!(bay["node_count"], 1);
    let uuid = bay["uuid"].as_str().unwrap().to_string();
    janitor.track(&uuid);
    assert!(bay["api_address"].as_str().unwrap().starts_with("tcp://"));

    let dir = tempfile::tempdir().unwrap();
    let configured = magnum(
        &magnumd,
        &[
            "bay-config",
            "b1",
            "--dir",
            &dir.path().display().to_string(),
        ],
    );
    let environment = exported_environment(&succeeded(&configured, "bay-config"));
    assert_eq!(
        environment[2],
        ("DOCKER_TLS_VERIFY".to_string(), String::new())
    );
    assert!(!dir.path().join("key.pem").exists());
    let hosts = wait_for_ready_nodes(&environment, 2).await;
    assert_eq!(hosts, vec!["b1-master-0", "b1-node-0"]);

    let deleted = magnum(&magnumd, &["bay-delete", "b1", "--wait"]);
    succeeded(&deleted, "bay-delete --wait");
    assert_eq!(labelled_resources(&uuid), Vec::<String>::new());
}

#[tokio::test]
async fn the_openstack_client_creates_configures_resizes_and_deletes_a_cluster() {
    if !engine_ready() {
        return;
    }
    let janitor = Janitor::default();
    let Some(openstack) = openstack() else { return };
    let magnumd = start_docker_magnumd("").await;
    let api = latest_admin(&magnumd).await;
    let mut env = password_env(&magnumd);
    // `openstack coe cluster config` picks export or setenv lines from the login shell.
    env.push(("SHELL", "/bin/bash".to_string()));
    let osc = |args: &[&str]| run(&openstack, &env, args);
    create_swarm_template(&magnumd, "swarm", &[]);

    let created = osc(&[
        "coe",
        "cluster",
        "create",
        "oc1",
        "--cluster-template",
        "swarm",
        "--master-count",
        "1",
        "--node-count",
        "2",
    ]);
    let printed = succeeded(&created, "openstack coe cluster create");
    assert!(
        printed.contains("Request to create cluster ") && printed.contains(" accepted"),
        "{printed}"
    );
    let shown = json_of(&osc(&["coe", "cluster", "show", "oc1", "-f", "json"]));
    let uuid = shown["uuid"].as_str().unwrap().to_string();
    janitor.track(&uuid);
    let cluster = settled(&api, &uuid, Duration::from_secs(180)).await;
    assert_eq!(cluster["status"], "CREATE_COMPLETE", "{cluster}");
    let listed = json_of(&osc(&["coe", "cluster", "list", "-f", "json"]));
    assert_eq!(listed[0]["status"], "CREATE_COMPLETE");
    assert_eq!(listed[0]["node_count"], 2);

    // The stock client makes its own key and CSR (CN=admin, O=system:masters) and writes
    // the certificates with --output-certs.
    let dir = tempfile::tempdir().unwrap();
    let configured = osc(&[
        "coe",
        "cluster",
        "config",
        "oc1",
        "--dir",
        &dir.path().display().to_string(),
        "--output-certs",
    ]);
    let environment = exported_environment(&succeeded(&configured, "openstack coe cluster config"));
    assert!(environment
        .iter()
        .any(|(name, value)| name == "DOCKER_HOST" && value.ends_with(":2376")));
    assert_eq!(wait_for_ready_nodes(&environment, 3).await.len(), 3);

    let resized = osc(&[
        "coe",
        "cluster",
        "resize",
        "oc1",
        "1",
        "--nodes-to-remove",
        "oc1-node-1",
    ]);
    succeeded(&resized, "openstack coe cluster resize");
    let cluster = settled(&api, &uuid, Duration::from_secs(120)).await;
    assert_eq!(cluster["status"], "UPDATE_COMPLETE", "{cluster}");
    assert_eq!(
        wait_for_ready_nodes(&environment, 2).await,
        vec!["oc1-master-0", "oc1-node-0"]
    );

    let ca = osc(&["coe", "ca", "show", "oc1"]);
    assert!(succeeded(&ca, "openstack coe ca show").contains("BEGIN CERTIFICATE"));

    let deleted = osc(&["coe", "cluster", "delete", "oc1"]);
    assert!(succeeded(&deleted, "openstack coe cluster delete").contains("accepted"));
    gone(&api, &uuid, Duration::from_secs(60)).await;
    assert_eq!(labelled_resources(&uuid), Vec::<String>::new());
}

#[tokio::test]
async fn a_dead_node_is_reported_and_auto_healing_replaces_it() {
    if !engine_ready() {
        return;
    }
    let janitor = Janitor::default();
    let magnumd = start_docker_magnumd("").await;
    let api = latest_admin(&magnumd).await;
    create_swarm_template(&magnumd, "swarm", &[]);
    let mut uuids = Vec::new();
    for (name, heal) in [("watched", false), ("healed", true)] {
        uuids.push(
            create_tracked_cluster(
                &api,
                &janitor,
                json!({"name": name, "cluster_template_id": "swarm", "node_count": 1,
                       "labels": {"auto_healing_enabled": heal.to_string()}}),
            )
            .await,
        );
    }
    for uuid in &uuids {
        let cluster = settled(&api, uuid, Duration::from_secs(180)).await;
        assert_eq!(cluster["status"], "CREATE_COMPLETE", "{cluster}");
    }
    for uuid in &uuids {
        let worker = format!("magnum-{uuid}-worker-0");
        let killed = local_docker(&["kill", &worker]);
        assert!(killed.status.success(), "{}", stderr(&killed));
    }

    // Without auto-healing: UNHEALTHY with a reason naming the node.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let cluster = api.get(&format!("/v1/clusters/{}", uuids[0])).await.body;
        if cluster["health_status"] == "UNHEALTHY" {
            let reason = cluster["health_status_reason"].to_string();
            assert!(reason.contains("watched-node-0"), "{reason}");
            break;
        }
        assert!(Instant::now() < deadline, "never UNHEALTHY: {cluster}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // With auto-healing: the worker runs again and the cluster is HEALTHY again.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let cluster = api.get(&format!("/v1/clusters/{}", uuids[1])).await.body;
        let running = running_nodes(&uuids[1]).len();
        if cluster["health_status"] == "HEALTHY"
            && running == 2
            && cluster["status"]
                .as_str()
                .unwrap_or_default()
                .ends_with("_COMPLETE")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not healed: {running} node(s) running, {cluster}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for uuid in &uuids {
        assert_eq!(
            api.delete(&format!("/v1/clusters/{uuid}")).await.status,
            204
        );
    }
    for uuid in &uuids {
        gone(&api, uuid, Duration::from_secs(60)).await;
        assert_eq!(labelled_resources(uuid), Vec::<String>::new());
    }
}

/// What a converged cluster of `masters` + `workers` (given by index) must have on the
/// engine, exactly: one container and one volume per node, and the network.
fn expected_resources(uuid: &str, masters: usize, workers: &[usize]) -> Vec<String> {
    let mut expected = vec![format!("network magnum-{uuid}")];
    let nodes = (0..masters)
        .map(|index| format!("magnum-{uuid}-master-{index}"))
        .chain(
            workers
                .iter()
                .map(|index| format!("magnum-{uuid}-worker-{index}")),
        );
    for node in nodes {
        expected.push(format!("container {node}"));
        expected.push(format!("volume {node}-docker"));
    }
    expected.sort();
    expected
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

/// Polls (without sleeping long) until `condition` holds for the cluster's labelled
/// resources, so that a kill lands in the middle of an operation.
async fn when_resources(uuid: &str, condition: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let found = labelled_resources(uuid);
        if condition(&found) {
            return;
        }
        assert!(Instant::now() < deadline, "never reached: {found:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn containers(found: &[String]) -> usize {
    found
        .iter()
        .filter(|item| item.starts_with("container "))
        .count()
}

#[tokio::test]
async fn magnumd_killed_during_create_scale_and_delete_converges_after_restart() {
    if !engine_ready() {
        return;
    }
    let janitor = Janitor::default();
    let mut magnumd = start_docker_magnumd("").await;
    let api = latest_admin(&magnumd).await;
    create_swarm_template(&magnumd, "swarm", &[]);
    let uuid = create_tracked_cluster(
        &api,
        &janitor,
        json!({"name": "crash", "cluster_template_id": "swarm", "node_count": 2}),
    )
    .await;

    // Killed as soon as the first node container exists: the create is under way, and
    // containers may exist that were never provisioned or started.
    when_resources(&uuid, |found| containers(found) >= 1).await;
    magnumd.kill_hard();
    magnumd.restart();
    let api = latest_admin(&magnumd).await;
    let cluster = settled(&api, &uuid, Duration::from_secs(180)).await;
    assert_eq!(cluster["status"], "CREATE_COMPLETE", "{cluster}");
    assert_eq!(
        sorted(labelled_resources(&uuid)),
        expected_resources(&uuid, 1, &[0, 1])
    );

    // Scale out to 4, killed once the first new node exists.
    let scaled = api
        .patch(
            &format!("/v1/clusters/{uuid}"),
            json!([{"op": "replace", "path": "/node_count", "value": 4}]),
        )
        .await;
    assert_eq!(scaled.status, 202, "{}", scaled.text);
    when_resources(&uuid, |found| containers(found) >= 4).await;
    magnumd.kill_hard();
    magnumd.restart();
    let api = latest_admin(&magnumd).await;
    let cluster = settled(&api, &uuid, Duration::from_secs(180)).await;
    assert_eq!(cluster["status"], "UPDATE_COMPLETE", "{cluster}");
    assert_eq!(cluster["node_count"], 4);
    assert_eq!(
        sorted(labelled_resources(&uuid)),
        expected_resources(&uuid, 1, &[0, 1, 2, 3])
    );
    let dir = tempfile::tempdir().unwrap();
    let environment = exported_environment(&succeeded(
        &magnum(
            &magnumd,
            &[
                "cluster-config",
                "crash",
                "--dir",
                &dir.path().display().to_string(),
            ],
        ),
        "cluster-config",
    ));
    assert_eq!(wait_for_ready_nodes(&environment, 5).await.len(), 5);

    // Delete, killed once the first node is gone.
    assert_eq!(
        api.delete(&format!("/v1/clusters/{uuid}")).await.status,
        204
    );
    when_resources(&uuid, |found| containers(found) < 5).await;
    magnumd.kill_hard();
    magnumd.restart();
    let api = latest_admin(&magnumd).await;
    gone(&api, &uuid, Duration::from_secs(120)).await;
    assert_eq!(labelled_resources(&uuid), Vec::<String>::new());
}

static NEVER_READY_IMAGE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);

/// A node image whose nodes never serve the Docker API (its entrypoint only sleeps), so a
/// create with it cannot finish.
fn never_ready_image() -> &'static str {
    const NAME: &str = "magnum-test/never-ready:1";
    let mut ready = NEVER_READY_IMAGE.lock().unwrap_or_else(|e| e.into_inner());
    if !*ready {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("bin")).unwrap();
        std::fs::copy("/bin/busybox", root.path().join("bin/busybox")).unwrap();
        std::os::unix::fs::symlink("busybox", root.path().join("bin/sleep")).unwrap();
        let command = format!(
            "tar -C {} -c . | docker import --change 'LABEL org.openstack.magnum.os_distro=debian' \
             --change 'ENTRYPOINT [\"/bin/sleep\", \"100000\"]' - {NAME}",
            root.path().display()
        );
        let imported = Command::new("sh")
            .args(["-c", &command])
            .env_remove("DOCKER_HOST")
            .output()
            .unwrap();
        succeeded(&imported, "importing the never-ready image");
        *ready = true;
    }
    NAME
}

#[tokio::test]
async fn a_create_that_cannot_finish_fails_at_its_timeout_and_leaves_nothing() {
    if !engine_ready() {
        return;
    }
    let janitor = Janitor::default();
    let magnumd = start_docker_magnumd("").await;
    let api = latest_admin(&magnumd).await;
    let template = api
        .post(
            "/v1/clustertemplates",
            json!({"name": "stuck", "coe": "swarm", "image_id": never_ready_image(),
                   "external_network_id": "local", "network_driver": "docker"}),
        )
        .await;
    assert_eq!(template.status, 201, "{}", template.text);
    let started = Instant::now();
    let uuid = create_tracked_cluster(
        &api,
        &janitor,
        json!({"name": "late", "cluster_template_id": "stuck", "node_count": 1,
                   "create_timeout": 1}),
    )
    .await;
    let cluster = settled(&api, &uuid, Duration::from_secs(90)).await;
    let elapsed = started.elapsed();
    assert_eq!(cluster["status"], "CREATE_FAILED", "{cluster}");
    assert!(
        cluster["status_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("timed out after 1 minute"),
        "{cluster}"
    );
    // Not before the timeout, and within the timeout plus the sync interval (2 s) and a
    // few seconds of slack for polling and a loaded machine.
    assert!(
        elapsed >= Duration::from_secs(58) && elapsed <= Duration::from_secs(70),
        "failed after {elapsed:?}"
    );

    // A failed cluster can be deleted, and then nothing of it remains.
    assert_eq!(
        api.delete(&format!("/v1/clusters/{uuid}")).await.status,
        204
    );
    gone(&api, &uuid, Duration::from_secs(60)).await;
    assert_eq!(labelled_resources(&uuid), Vec::<String>::new());
}

#[tokio::test]
async fn several_masters_form_a_multi_manager_swarm() {
    if !engine_ready() {
        return;
    }
    let janitor = Janitor::default();
    let magnumd = start_docker_magnumd("").await;
    let api = latest_admin(&magnumd).await;
    create_swarm_template(&magnumd, "swarm", &[]);
    let uuid = create_tracked_cluster(
        &api,
        &janitor,
        json!({"name": "ha", "cluster_template_id": "swarm", "master_count": 3,
                       "node_count": 1}),
    )
    .await;
    let cluster = settled(&api, &uuid, Duration::from_secs(180)).await;
    assert_eq!(cluster["status"], "CREATE_COMPLETE", "{cluster}");
    assert_eq!(cluster["master_addresses"].as_array().unwrap().len(), 3);
    let dir = tempfile::tempdir().unwrap();
    let environment = exported_environment(&succeeded(
        &magnum(
            &magnumd,
            &[
                "cluster-config",
                "ha",
                "--dir",
                &dir.path().display().to_string(),
            ],
        ),
        "cluster-config",
    ));
    assert_eq!(wait_for_ready_nodes(&environment, 4).await.len(), 4);
    let managers = crate::common::docker::cluster_docker(
        &environment,
        &[
            "node",
            "ls",
            "--filter",
            "role=manager",
            "--format",
            "{{.Hostname}} {{.ManagerStatus}}",
        ],
    );
    let managers = stdout(&managers);
    let mut lines: Vec<&str> = managers.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 3, "{managers}");
    assert!(lines.iter().all(|line| line.starts_with("ha-master-")));
    assert_eq!(
        lines.iter().filter(|line| line.ends_with("Leader")).count(),
        1
    );
    assert_eq!(
        lines
            .iter()
            .filter(|line| line.ends_with("Reachable"))
            .count(),
        2
    );
    assert_eq!(
        api.delete(&format!("/v1/clusters/{uuid}")).await.status,
        204
    );
    gone(&api, &uuid, Duration::from_secs(60)).await;
    assert_eq!(labelled_resources(&uuid), Vec::<String>::new());
}

/// A conductor-only magnumd on `api`'s database and CA sealing key, named `host`.
async fn start_conductor(api: &Magnumd, host: &str) -> Magnumd {
    let key = api.state_dir.path().join("ca-encryption.key");
    Magnumd::start_with(Options {
        role: "conductor",
        provider: "docker",
        database_url: Some(api.database_url()),
        extra_config: format!(
            "[DEFAULT]\nhost = {host}\n[x509]\nencryption_key_file = {}\n\
             [conductor]\nlease_seconds = 4\nsync_interval = 2\n",
            key.display()
        ),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn conductors_sharing_a_database_take_over_from_a_dead_one_and_share_the_work() {
    if !engine_ready() {
        return;
    }
    let janitor = Janitor::default();
    let api_process = Magnumd::start_with(Options {
        role: "api",
        provider: "docker",
        ..Options::default()
    })
    .await;
    let api = latest_admin(&api_process).await;
    let mut first = start_conductor(&api_process, "conductor-one").await;
    create_swarm_template(&api_process, "swarm", &[]);
    let uuid = create_tracked_cluster(
        &api,
        &janitor,
        json!({"name": "taken-over", "cluster_template_id": "swarm", "node_count": 1}),
    )
    .await;

    // The only conductor dies in the middle of the create. Another one, on another host,
    // cannot know it is dead: it takes the operation over when the lease runs out.
    when_resources(&uuid, |found| containers(found) >= 1).await;
    first.kill_hard();
    let second = start_conductor(&api_process, "conductor-two").await;
    let cluster = settled(&api, &uuid, Duration::from_secs(180)).await;
    assert_eq!(cluster["status"], "CREATE_COMPLETE", "{cluster}");
    assert_eq!(
        sorted(labelled_resources(&uuid)),
        expected_resources(&uuid, 1, &[0])
    );

    // Two live conductors: every cluster is built exactly once.
    first.restart();
    let mut uuids = Vec::new();
    for index in 0..4 {
        uuids.push(
            create_tracked_cluster(
                &api,
                &janitor,
                json!({"name": format!("shared-{index}"), "cluster_template_id": "swarm",
                       "node_count": 1}),
            )
            .await,
        );
    }
    for uuid in &uuids {
        let cluster = settled(&api, uuid, Duration::from_secs(180)).await;
        assert_eq!(cluster["status"], "CREATE_COMPLETE", "{cluster}");
        assert_eq!(
            sorted(labelled_resources(uuid)),
            expected_resources(uuid, 1, &[0])
        );
    }
    let services = api.get("/v1/mservices").await;
    let mut hosts: Vec<(String, String)> = services.body["mservices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|service| {
            (
                service["host"].as_str().unwrap_or_default().to_string(),
                service["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    hosts.sort();
    assert_eq!(
        hosts,
        vec![
            ("conductor-one".to_string(), "up".to_string()),
            ("conductor-two".to_string(), "up".to_string()),
        ]
    );
    uuids.push(uuid);
    for uuid in &uuids {
        assert_eq!(
            api.delete(&format!("/v1/clusters/{uuid}")).await.status,
            204
        );
    }
    for uuid in &uuids {
        gone(&api, uuid, Duration::from_secs(120)).await;
        assert_eq!(labelled_resources(uuid), Vec::<String>::new());
    }
    drop(second);
}

/// Host names of the swarm's nodes with a label (`key=value`), through the cluster's API.
fn labelled_swarm_nodes(environment: &[(String, String)], label: &str) -> Vec<String> {
    let listed = cluster_docker(
        environment,
        &[
            "node",
            "ls",
            "--filter",
            &format!("node.label={label}"),
            "--format",
            "{{.Hostname}}",
        ],
    );
    let mut hosts: Vec<String> = stdout(&listed).lines().map(str::to_string).collect();
    hosts.sort();
    hosts
}

/// The cluster's containers that belong to one nodegroup (by the driver's nodegroup label).
fn nodegroup_containers(uuid: &str, nodegroup: &str) -> Vec<String> {
    let listed = local_docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=org.openstack.magnum.cluster={uuid}"),
        "--filter",
        &format!("label=org.openstack.magnum.nodegroup={nodegroup}"),
        "--format",
        "{{.Names}}",
    ]);
    let mut names: Vec<String> = stdout(&listed).lines().map(str::to_string).collect();
    names.sort();
    names
}

#[tokio::test]
async fn nodegroups_add_resize_limit_and_remove_workers_of_their_own() {
    if !engine_ready() {
        return;
    }
    let janitor = Janitor::default();
    let Some(openstack) = openstack() else { return };
    let magnumd = start_docker_magnumd("").await;
    let api = latest_admin(&magnumd).await;
    let env = password_env(&magnumd);
    let osc = |args: &[&str]| run(&openstack, &env, args);
    create_swarm_template(&magnumd, "swarm", &[]);
    let uuid = create_tracked_cluster(
        &api,
        &janitor,
        json!({"name": "ngc", "cluster_template_id": "swarm", "node_count": 1}),
    )
    .await;
    let cluster = settled(&api, &uuid, Duration::from_secs(180)).await;
    assert_eq!(cluster["status"], "CREATE_COMPLETE", "{cluster}");
    let groups = format!("/v1/clusters/{uuid}/nodegroups");

    // The stock client adds a nodegroup of two workers; the cluster goes through
    // UPDATE_IN_PROGRESS and the group ends CREATE_COMPLETE with its own nodes.
    let added = osc(&[
        "coe",
        "nodegroup",
        "create",
        "ngc",
        "pool-b",
        "--node-count",
        "2",
        "--min-nodes",
        "1",
        "--labels",
        "zone=b",
        "--node-labels",
        "tier=b",
    ]);
    succeeded(&added, "openstack coe nodegroup create");
    let clash = api
        .post(&groups, json!({"name": "pool-b", "node_count": 1}))
        .await;
    assert_eq!(clash.status, 409, "{}", clash.text);
    assert!(
        clash
            .error_detail()
            .contains("A node group with name pool-b already exists in the cluster ngc."),
        "{}",
        clash.text
    );
    let cluster = settled(&api, &uuid, Duration::from_secs(120)).await;
    assert_eq!(cluster["status"], "UPDATE_COMPLETE", "{cluster}");
    assert_eq!(cluster["node_count"], 3, "{cluster}");
    assert_eq!(cluster["node_addresses"].as_array().unwrap().len(), 3);
    let group = api.get(&format!("{groups}/pool-b")).await;
    assert_eq!(group.status, 200, "{}", group.text);
    assert_eq!(group.body["status"], "CREATE_COMPLETE", "{}", group.text);
    assert_eq!(group.body["node_count"], 2);
    assert_eq!(group.body["min_node_count"], 1);
    assert_eq!(group.body["role"], "worker");
    assert_eq!(group.body["is_default"], false);
    assert_eq!(group.body["labels"]["zone"], "b");
    assert_eq!(group.body["node_labels"], json!({"tier": "b"}));
    assert_eq!(group.body["flavor_id"], "m1.small");
    assert_eq!(group.body["image_id"], NODE_IMAGE);
    assert_eq!(group.body["node_addresses"].as_array().unwrap().len(), 2);
    let default_worker = api.get(&format!("{groups}/default-worker")).await;
    assert_eq!(
        default_worker.body["node_addresses"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(nodegroup_containers(&uuid, "pool-b").len(), 2);
    let listed = json_of(&osc(&["coe", "nodegroup", "list", "ngc", "-f", "json"]));
    let names: BTreeSet<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|group| group["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["default-master", "default-worker", "pool-b"])
    );

    // The swarm has all four nodes Ready, seen through the stock docker CLI.
    let dir = tempfile::tempdir().unwrap();
    let configured = magnum(
        &magnumd,
        &[
            "cluster-config",
            "ngc",
            "--dir",
            &dir.path().display().to_string(),
        ],
    );
    let environment = exported_environment(&succeeded(&configured, "cluster-config"));
    assert_eq!(wait_for_ready_nodes(&environment, 4).await.len(), 4);
    // Swarm nodes carry their nodegroup and its node labels, for placement constraints.
    assert_eq!(
        labelled_swarm_nodes(&environment, "magnum.nodegroup=pool-b").len(),
        2
    );
    assert_eq!(labelled_swarm_nodes(&environment, "tier=b").len(), 2);
    assert_eq!(
        labelled_swarm_nodes(&environment, "magnum.nodegroup=default-worker"),
        vec!["ngc-node-0"]
    );

    // Resizing the group touches only its own workers; its limits are enforced.
    let below = api
        .post(
            &format!("/v1/clusters/{uuid}/actions/resize"),
            json!({"node_count": 0, "nodegroup": "pool-b"}),
        )
        .await;
    assert_eq!(below.status, 400, "{}", below.text);
    assert!(below.error_detail().contains("outside the allowed range"));
    let default_before = nodegroup_containers(&uuid, "default-worker");
    let resized = magnum(
        &magnumd,
        &[
            "cluster-resize",
            "ngc",
            "1",
            "--nodegroup",
            "pool-b",
            "--wait",
        ],
    );
    assert!(
        succeeded(&resized, "cluster-resize --nodegroup").contains("UPDATE_COMPLETE"),
        "{}",
        stdout(&resized)
    );
    let cluster = settled(&api, &uuid, Duration::from_secs(120)).await;
    assert_eq!(cluster["status"], "UPDATE_COMPLETE", "{cluster}");
    assert_eq!(cluster["node_count"], 2, "{cluster}");
    assert_eq!(nodegroup_containers(&uuid, "pool-b").len(), 1);
    assert_eq!(
        nodegroup_containers(&uuid, "default-worker"),
        default_before
    );
    let group = api.get(&format!("{groups}/pool-b")).await;
    assert_eq!(group.body["status"], "UPDATE_COMPLETE", "{}", group.text);
    assert_eq!(group.body["node_count"], 1);

    // PATCH changes the limits only (node_count is the resize action's).
    let limited = api
        .patch(
            &format!("{groups}/pool-b"),
            json!([{"op": "replace", "path": "/max_node_count", "value": 1}]),
        )
        .await;
    assert_eq!(limited.status, 202, "{}", limited.text);
    assert_eq!(limited.body["max_node_count"], 1);
    assert_eq!(limited.body["status"], "UPDATE_IN_PROGRESS");
    settled(&api, &uuid, Duration::from_secs(60)).await;
    let ssd = api
        .patch(
            &format!("{groups}/default-worker"),
            json!([{"op": "replace", "path": "/node_labels", "value": {"disk": "ssd"}}]),
        )
        .await;
    assert_eq!(ssd.status, 202, "{}", ssd.text);
    let cluster = settled(&api, &uuid, Duration::from_secs(60)).await;
    assert_eq!(cluster["status"], "UPDATE_COMPLETE", "{cluster}");
    assert_eq!(
        labelled_swarm_nodes(&environment, "disk=ssd"),
        vec!["ngc-node-0"]
    );
    let above = api
        .post(
            &format!("/v1/clusters/{uuid}/actions/resize"),
            json!({"node_count": 2, "nodegroup": "pool-b"}),
        )
        .await;
    assert_eq!(above.status, 400, "{}", above.text);

    // Deleting the group drains and removes its workers and then its row.
    let removed = osc(&["coe", "nodegroup", "delete", "ngc", "pool-b"]);
    succeeded(&removed, "openstack coe nodegroup delete");
    let cluster = settled(&api, &uuid, Duration::from_secs(120)).await;
    assert_eq!(cluster["status"], "UPDATE_COMPLETE", "{cluster}");
    assert_eq!(cluster["node_count"], 1, "{cluster}");
    assert_eq!(api.get(&format!("{groups}/pool-b")).await.status, 404);
    assert_eq!(nodegroup_containers(&uuid, "pool-b"), Vec::<String>::new());
    assert_eq!(wait_for_ready_nodes(&environment, 2).await.len(), 2);

    // The same through the Rust CLI, waiting with a status line.
    let made = magnum(
        &magnumd,
        &[
            "nodegroup-create",
            "ngc",
            "pool-c",
            "--node-count",
            "1",
            "--wait",
        ],
    );
    let printed = succeeded(&made, "nodegroup-create --wait");
    assert!(printed.contains("CREATE_COMPLETE"), "{printed}");
    assert_eq!(nodegroup_containers(&uuid, "pool-c").len(), 1);
    let updated = magnum(
        &magnumd,
        &[
            "nodegroup-update",
            "ngc",
            "pool-c",
            "replace",
            "max_node_count=3",
            "--wait",
        ],
    );
    let printed = succeeded(&updated, "nodegroup-update --wait");
    assert!(printed.contains("UPDATE_COMPLETE"), "{printed}");
    let dropped = magnum(&magnumd, &["nodegroup-delete", "ngc", "pool-c", "--wait"]);
    succeeded(&dropped, "nodegroup-delete --wait");
    assert_eq!(nodegroup_containers(&uuid, "pool-c"), Vec::<String>::new());
    assert_eq!(api.get(&format!("{groups}/pool-c")).await.status, 404);

    let deleted = api.delete(&format!("/v1/clusters/{uuid}")).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    gone(&api, &uuid, Duration::from_secs(60)).await;
    assert_eq!(labelled_resources(&uuid), Vec::<String>::new());
}

static NEXT_NODE_IMAGE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);

/// A second node image that differs from the node image by a label only.
fn next_node_image() -> &'static str {
    const NAME: &str = "magnum-test/node-next:1";
    let mut ready = NEXT_NODE_IMAGE.lock().unwrap_or_else(|e| e.into_inner());
    if !*ready {
        let context = tempfile::tempdir().unwrap();
        std::fs::write(
            context.path().join("Dockerfile"),
            format!("FROM {NODE_IMAGE}\nLABEL org.openstack.magnum.test=next\n"),
        )
        .unwrap();
        let built = local_docker(&["build", "-q", "-t", NAME, context.path().to_str().unwrap()]);
        succeeded(&built, "building the second node image");
        *ready = true;
    }
    NAME
}

/// The image each node container of a cluster was made from (container name → image).
fn node_images(uuid: &str) -> Vec<(String, String)> {
    let filter = format!("label={CLUSTER_LABEL}={uuid}");
    let output = local_docker(&[
        "ps",
        "-a",
        "--filter",
        &filter,
        "--format",
        "{{.Names}} {{.Image}}",
    ]);
    let mut images: Vec<(String, String)> = succeeded(&output, "listing node images")
        .lines()
        .filter_map(|line| {
            let (name, image) = line.split_once(' ')?;
            Some((name.to_string(), image.to_string()))
        })
        .collect();
    images.sort();
    images
}

#[tokio::test]
async fn an_upgrade_replaces_nodes_one_by_one_and_a_failing_one_rolls_back() {
    if !engine_ready() {
        return;
    }
    let janitor = Janitor::default();
    let magnumd = start_docker_magnumd("[docker]\nready_timeout = 20\n").await;
    let api = latest_admin(&magnumd).await;
    create_swarm_template(&magnumd, "old", &[]);
    let next = next_node_image();
    for (name, image) in [("next", next), ("broken", never_ready_image())] {
        let created = api
            .post(
                "/v1/clustertemplates",
                json!({"name": name, "coe": "swarm", "image_id": image,
                       "external_network_id": "local", "network_driver": "docker",
                       "dns_nameserver": "10.0.0.53", "flavor_id": "m1.small"}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
    }
    let uuid = create_tracked_cluster(
        &api,
        &janitor,
        json!({"name": "up", "cluster_template_id": "old", "node_count": 2}),
    )
    .await;
    let cluster = settled(&api, &uuid, Duration::from_secs(180)).await;
    assert_eq!(cluster["status"], "CREATE_COMPLETE", "{cluster}");
    let dir = tempfile::tempdir().unwrap();
    let dir_text = dir.path().display().to_string();
    let environment = exported_environment(&succeeded(
        &magnum(&magnumd, &["cluster-config", "up", "--dir", &dir_text]),
        "cluster-config",
    ));

    // The stock client asks; every node is replaced with the new image and the swarm keeps
    // all its nodes.
    if let Some(openstack) = openstack() {
        let asked = run(
            &openstack,
            &password_env(&magnumd),
            &["coe", "cluster", "upgrade", "up", "next"],
        );
        assert!(asked.status.success(), "{}", stderr(&asked));
    } else {
        let asked = api
            .post(
                &format!("/v1/clusters/{uuid}/actions/upgrade"),
                json!({"cluster_template": "next"}),
            )
            .await;
        assert_eq!(asked.status, 202, "{}", asked.text);
    }
    let upgraded = settled(&api, &uuid, Duration::from_secs(300)).await;
    assert_eq!(upgraded["status"], "UPDATE_COMPLETE", "{upgraded}");
    let next_uuid = api.get("/v1/clustertemplates/next").await.body["uuid"].clone();
    assert_eq!(upgraded["cluster_template_id"], next_uuid);
    let images = node_images(&uuid);
    assert_eq!(images.len(), 3, "{images:?}");
    assert!(images.iter().all(|(_, image)| image == next), "{images:?}");
    let nodes = wait_for_ready_nodes(&environment, 3).await;
    assert_eq!(nodes.len(), 3);
    let shown = api
        .get(&format!("/v1/clusters/{uuid}/nodegroups/default-worker"))
        .await;
    assert_eq!(shown.body["image_id"], next, "{}", shown.text);

    // An image whose nodes never become ready: the first replaced node fails, and the
    // cluster goes back to the template it came from, with the reason.
    let failed = magnum(&magnumd, &["cluster-upgrade", "up", "broken", "--wait"]);
    assert!(!failed.status.success());
    let message = stderr(&failed);
    assert!(message.contains("ROLLBACK_COMPLETE"), "{message}");
    let rolled_back = api.get(&format!("/v1/clusters/{uuid}")).await.body;
    assert_eq!(rolled_back["status"], "ROLLBACK_COMPLETE", "{rolled_back}");
    assert_eq!(rolled_back["cluster_template_id"], next_uuid);
    let reason = rolled_back["status_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("did not become ready") && reason.contains("rolled back"),
        "{reason}"
    );
    let images = node_images(&uuid);
    assert!(images.iter().all(|(_, image)| image == next), "{images:?}");
    wait_for_ready_nodes(&environment, 3).await;
    assert_eq!(
        api.delete(&format!("/v1/clusters/{uuid}")).await.status,
        204
    );
    gone(&api, &uuid, Duration::from_secs(60)).await;
    assert_eq!(labelled_resources(&uuid), Vec::<String>::new());
}

/// A file on the host that stands for the host's disks: a loop device holding a marker.
struct HostDisk {
    device: String,
    major_minor: String,
    _file: tempfile::NamedTempFile,
}

const HOST_MARKER: &str = "HOST-DISK-MARKER-7319";

impl HostDisk {
    fn attach() -> HostDisk {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut content = HOST_MARKER.as_bytes().to_vec();
        content.resize(1024 * 1024, 0);
        std::fs::write(file.path(), content).unwrap();
        let attached = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(file.path())
            .output()
            .unwrap();
        let device = succeeded(&attached, "losetup").trim().to_string();
        let numbers = Command::new("lsblk")
            .args(["-dno", "MAJ:MIN", &device])
            .output()
            .unwrap();
        let major_minor = succeeded(&numbers, "lsblk").trim().to_string();
        // The host itself reads it: what an escape would reach.
        let read = Command::new("head")
            .args(["-c", "21", &device])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&read.stdout), HOST_MARKER);
        HostDisk {
            device,
            major_minor,
            _file: file,
        }
    }
}

impl Drop for HostDisk {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.device]).output();
    }
}

#[tokio::test]
async fn a_cluster_user_cannot_reach_the_hosts_kernel_disks_or_engine() {
    if !engine_ready() {
        return;
    }
    let janitor = Janitor::default();
    let magnumd = start_docker_magnumd("").await;
    let api = latest_admin(&magnumd).await;
    create_swarm_template(&magnumd, "swarm", &[]);
    let uuid = create_tracked_cluster(
        &api,
        &janitor,
        json!({"name": "jail", "cluster_template_id": "swarm", "node_count": 1}),
    )
    .await;
    let cluster = settled(&api, &uuid, Duration::from_secs(180)).await;
    assert_eq!(cluster["status"], "CREATE_COMPLETE", "{cluster}");
    load_workload_image(&uuid);
    // Everything below goes through the cluster's own Docker endpoint, with the client
    // certificate a cluster user gets from cluster-config.
    let dir = tempfile::tempdir().unwrap();
    let dir_text = dir.path().display().to_string();
    let environment = exported_environment(&succeeded(
        &magnum(&magnumd, &["cluster-config", "jail", "--dir", &dir_text]),
        "cluster-config",
    ));
    let as_user = |args: &[&str]| cluster_docker(&environment, args);
    let works = as_user(&["run", "--rm", WORKLOAD_IMAGE, "/bin/busybox", "true"]);
    assert!(works.status.success(), "{}", stderr(&works));

    // The host kernel's capabilities cannot be had, not even by a privileged container.
    for capability in [
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_BOOT",
        "SYS_TIME",
        "MAC_ADMIN",
        "ALL",
    ] {
        let refused = as_user(&[
            "run",
            "--rm",
            "--cap-add",
            capability,
            WORKLOAD_IMAGE,
            "/bin/busybox",
            "true",
        ]);
        assert!(
            !refused.status.success(),
            "--cap-add {capability} was granted"
        );
    }
    let privileged = as_user(&[
        "run",
        "--rm",
        "--privileged",
        WORKLOAD_IMAGE,
        "/bin/busybox",
        "true",
    ]);
    assert!(!privileged.status.success(), "a privileged container ran");
    // The nodes themselves never hold them (CapBnd of the node's first process).
    for node in running_nodes(&uuid) {
        let pid = succeeded(
            &local_docker(&["inspect", "-f", "{{.State.Pid}}", &node]),
            "inspect",
        );
        let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
        let bounding = status
            .lines()
            .find_map(|line| line.strip_prefix("CapBnd:"))
            .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
            .unwrap();
        // Bits: SYS_MODULE 16, SYS_RAWIO 17, SYS_BOOT 22, SYS_TIME 25, MAC_ADMIN 33.
        for bit in [16, 17, 22, 25, 33] {
            assert_eq!(bounding & (1 << bit), 0, "{node} holds capability {bit}");
        }
        // No mount of the host's engine socket, only the node's own state.
        let mounts = succeeded(
            &local_docker(&[
                "inspect",
                "-f",
                "{{range .Mounts}}{{.Source}} {{end}}",
                &node,
            ]),
            "inspect mounts",
        );
        assert!(!mounts.contains("docker.sock"), "{node}: {mounts}");
    }

    // The host's disks: even a container with SYS_ADMIN that widens its device cgroup
    // cannot read a block device of the host.
    let disk = HostDisk::attach();
    let (major, minor) = disk.major_minor.split_once(':').unwrap();
    let script = format!(
        "/bin/busybox mkdir -p /m; \
         /bin/busybox mount -t cgroup -o devices none /m; \
         p=$(/bin/busybox grep devices /proc/self/cgroup | /bin/busybox cut -d: -f3); \
         echo 'b {major}:{minor} r' > /m/devices.allow; \
         echo 'b {major}:{minor} r' > /m$p/devices.allow; \
         /bin/busybox mknod /disk b {major} {minor}; \
         /bin/busybox head -c 21 /disk; true"
    );
    let attempt = as_user(&[
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        WORKLOAD_IMAGE,
        "/bin/busybox",
        "sh",
        "-c",
        &script,
    ]);
    let seen = String::from_utf8_lossy(&attempt.stdout);
    assert!(
        !seen.contains(HOST_MARKER),
        "the host's disk was read: {seen}"
    );
    drop(disk);

    // The engine the user talks to is the node's own, not the host's.
    let theirs = succeeded(&as_user(&["info", "--format", "{{.ID}}"]), "docker info");
    let host = succeeded(
        &local_docker(&["info", "--format", "{{.ID}}"]),
        "docker info",
    );
    assert_ne!(theirs.trim(), host.trim());

    assert_eq!(
        api.delete(&format!("/v1/clusters/{uuid}")).await.status,
        204
    );
    gone(&api, &uuid, Duration::from_secs(60)).await;
}

/// A second Docker engine in user-namespace-remapping mode (`--userns-remap=default`),
/// started by the test beside the host's engine (its own data root, socket and pid file; it
/// leaves iptables to the host's engine), stopped by its PID when dropped.
struct RemappedEngine {
    child: std::process::Child,
    root: std::path::PathBuf,
    socket: String,
}

/// The address pool of the remapped engine's cluster networks; no other test uses it.
const REMAPPED_SUBNET_POOL: &str = "10.201.0.0/16";

/// Removes bridges holding an address of [`REMAPPED_SUBNET_POOL`] that an earlier run of
/// this test left on the host when its engine was stopped before its networks were removed
/// (an engine does not remove its bridges when it stops). A stale bridge with the same
/// subnet would capture the routes to the new cluster's nodes.
fn remove_stale_remapped_bridges() {
    let listed = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .expect("run ip");
    for line in String::from_utf8_lossy(&listed.stdout).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(interface), Some(address)) = (fields.get(1), fields.get(3)) else {
            continue;
        };
        if interface.starts_with("br-")
            && address.starts_with(REMAPPED_SUBNET_POOL.trim_end_matches("0.0/16"))
        {
            let removed = Command::new("ip")
                .args(["link", "delete", interface])
                .output()
                .expect("run ip");
            eprintln!(
                "removed the stale bridge {interface} ({address}) of an earlier run: {}",
                removed.status
            );
        }
    }
}

impl RemappedEngine {
    fn start() -> RemappedEngine {
        remove_stale_remapped_bridges();
        let root = std::path::PathBuf::from(format!(
            "/var/lib/magnum-test-userns-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&root).unwrap();
        let socket = format!("unix://{}/docker.sock", root.display());
        let log = std::fs::File::create(root.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--userns-remap=default")
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("docker.pid"))
            .args(["-H", &socket, "--bridge=none", "--iptables=false"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start a second dockerd");
        let engine = RemappedEngine {
            child,
            root,
            socket,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !engine.docker(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "the user-namespace-remapped engine did not start: {}",
                std::fs::read_to_string(engine.root.join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        engine
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .env_remove("DOCKER_CONTEXT")
            .env("DOCKER_HOST", &self.socket)
            .args(args)
            .output()
            .expect("run the docker CLI")
    }
}

impl Drop for RemappedEngine {
    fn drop(&mut self) {
        let leftovers = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&leftovers.stdout).split_whitespace() {
            self.docker(&["rm", "-f", "-v", id]);
        }
        // The engine keeps its networks' bridges on the host when it stops.
        let networks = self.docker(&["network", "ls", "-q", "--filter", "type=custom"]);
        for id in String::from_utf8_lossy(&networks.stdout).split_whitespace() {
            self.docker(&["network", "rm", id]);
        }
        // SAFETY: kill(2) with the PID of a child this test started and a valid signal.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The hardened set-up: the outer engine remaps user namespaces, so a node's root is an
/// unprivileged host user. A cluster works there, and what root in a node could still do on
/// an ordinary engine (write the host kernel's global settings, read the host's disks) is
/// refused.
#[tokio::test]
async fn the_hardened_set_up_runs_clusters_on_a_user_namespace_remapped_engine() {
    if !engine_ready() {
        return;
    }
    let engine = RemappedEngine::start();
    let info = succeeded(
        &engine.docker(&["info", "--format", "{{json .SecurityOptions}}"]),
        "docker info",
    );
    assert!(info.contains("name=userns"), "{info}");
    let copied = Command::new("sh")
        .args([
            "-c",
            &format!(
                "docker save {NODE_IMAGE} | DOCKER_HOST={} docker load -q",
                engine.socket
            ),
        ])
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap();
    succeeded(&copied, "loading the node image into the remapped engine");

    let janitor = Janitor::default();
    let magnumd = start_docker_magnumd(&format!(
        "[docker]\nsocket = {}\nsubnet_pool = {REMAPPED_SUBNET_POOL}\n",
        engine.socket
    ))
    .await;
    let api = latest_admin(&magnumd).await;
    create_swarm_template(&magnumd, "swarm", &[]);
    let uuid = create_tracked_cluster(
        &api,
        &janitor,
        json!({"name": "hard", "cluster_template_id": "swarm", "node_count": 0}),
    )
    .await;
    let cluster = settled(&api, &uuid, Duration::from_secs(240)).await;
    assert_eq!(cluster["status"], "CREATE_COMPLETE", "{cluster}");
    let dir = tempfile::tempdir().unwrap();
    let dir_text = dir.path().display().to_string();
    let environment = exported_environment(&succeeded(
        &magnum(&magnumd, &["cluster-config", "hard", "--dir", &dir_text]),
        "cluster-config",
    ));
    let node = format!("magnum-{uuid}-master-0");
    // The node's root is not the host's root.
    let pid = succeeded(
        &engine.docker(&["inspect", "-f", "{{.State.Pid}}", &node]),
        "inspect",
    );
    let uid_map = std::fs::read_to_string(format!("/proc/{}/uid_map", pid.trim())).unwrap();
    let root_outside: u32 = uid_map
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap();
    assert_ne!(root_outside, 0, "{uid_map}");

    // The cluster works: an image loaded into the node runs (the node's dockerd makes the
    // container's cgroups in the directories magnumd handed the node).
    crate::common::docker::ensure_workload_image();
    let load = Command::new("sh")
        .args([
            "-c",
            &format!(
                "docker save {WORKLOAD_IMAGE} | DOCKER_HOST={} docker exec -i {node} docker load -q",
                engine.socket
            ),
        ])
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap();
    succeeded(&load, "loading the workload image into the node");
    let as_user = |args: &[&str]| cluster_docker(&environment, args);
    let ran = as_user(&[
        "run",
        "--rm",
        WORKLOAD_IMAGE,
        "/bin/busybox",
        "echo",
        "inside",
    ]);
    assert_eq!(succeeded(&ran, "docker run").trim(), "inside");

    // Root in an inner container cannot change the host kernel's global settings...
    let before = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let attempt = as_user(&[
        "run",
        "--rm",
        "--security-opt",
        "systempaths=unconfined",
        WORKLOAD_IMAGE,
        "/bin/busybox",
        "sh",
        "-c",
        "echo magnum-test-core > /proc/sys/kernel/core_pattern",
    ]);
    assert!(!attempt.status.success(), "core_pattern was writable");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        before
    );
    // ...nor read the host's disks, even after widening its own device rules.
    let disk = HostDisk::attach();
    let (major, minor) = disk.major_minor.split_once(':').unwrap();
    let script = format!(
        "/bin/busybox mkdir -p /m; \
         /bin/busybox mount -t cgroup -o devices none /m; \
         p=$(/bin/busybox grep devices /proc/self/cgroup | /bin/busybox cut -d: -f3); \
         echo 'b {major}:{minor} r' > /m$p/devices.allow; \
         /bin/busybox mknod /disk b {major} {minor}; \
         /bin/busybox head -c 21 /disk; true"
    );
    let read = as_user(&[
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        WORKLOAD_IMAGE,
        "/bin/busybox",
        "sh",
        "-c",
        &script,
    ]);
    assert!(
        !String::from_utf8_lossy(&read.stdout).contains(HOST_MARKER),
        "the host's disk was read"
    );
    drop(disk);

    assert_eq!(
        api.delete(&format!("/v1/clusters/{uuid}")).await.status,
        204
    );
    gone(&api, &uuid, Duration::from_secs(60)).await;
    let left = engine.docker(&["ps", "-aq"]);
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "");
}
