//! etcd's discovery protocol served by magnumd: a real etcd (Debian's `etcd-server`)
//! bootstraps a three-member cluster through it on loopback, and what etcd could send wrong
//! gets etcd's own errors.

use crate::common::{require_all, Api, Magnumd};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ETCD: &str = "/usr/bin/etcd";

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap()
}

/// One etcd member started by this test, stopped (by its PID) when dropped.
struct EtcdMember {
    child: Child,
    client_port: u16,
}

impl Drop for EtcdMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_member(name: &str, discovery_url: &str, directory: &Path) -> EtcdMember {
    let (client_port, peer_port) = (free_port(), free_port());
    let log = std::fs::File::create(directory.join(format!("{name}.log"))).unwrap();
    let child = Command::new(ETCD)
        .args([
            "--name",
            name,
            "--data-dir",
            &directory.join(name).display().to_string(),
            "--listen-client-urls",
            &format!("http://127.0.0.1:{client_port}"),
            "--advertise-client-urls",
            &format!("http://127.0.0.1:{client_port}"),
            "--listen-peer-urls",
            &format!("http://127.0.0.1:{peer_port}"),
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer_port}"),
            "--discovery",
            discovery_url,
            "--discovery-fallback",
            "exit",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    EtcdMember { child, client_port }
}

/// The member names etcd itself lists, once it answers.
async fn member_names(client_port: u16) -> Option<Vec<String>> {
    let reply = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{client_port}/v3/cluster/member/list"
        ))
        .body("{}")
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let body: Value = reply.json().await.ok()?;
    let mut names: Vec<String> = body["members"]
        .as_array()?
        .iter()
        .filter_map(|member| member["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    Some(names)
}

fn etcd_is_installed() -> bool {
    if Path::new(ETCD).exists() {
        return true;
    }
    assert!(
        !require_all(),
        "{ETCD} is missing: the test command installs Debian's etcd-server"
    );
    eprintln!("skipped: {ETCD} is not installed");
    false
}

#[tokio::test]
async fn a_real_etcd_bootstraps_three_members_through_magnumds_discovery() {
    if !etcd_is_installed() {
        return;
    }
    let magnumd = Magnumd::start().await;
    magnumd.add_user("alice", "project-a", &["member"]);
    let alice = magnumd.user("alice", "project-a").await;
    let made = alice.get("/v1/discovery/new?size=3").await;
    assert_eq!(made.status, 200, "{}", made.text);
    let url = made.text.trim().to_string();
    assert!(
        url.starts_with(&format!("{}/v1/discovery/", magnumd.base_url())),
        "{url}"
    );

    let directory = tempfile::tempdir().unwrap();
    let members: Vec<EtcdMember> = ["one", "two", "three"]
        .iter()
        .map(|name| start_member(name, &url, directory.path()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut listed = Vec::new();
    for member in &members {
        loop {
            if let Some(names) = member_names(member.client_port).await {
                if names.len() == 3 {
                    listed.push(names);
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not form a cluster; logs in {}: {}",
                directory.path().display(),
                std::fs::read_to_string(directory.path().join("one.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    for names in &listed {
        assert_eq!(names, &["one", "three", "two"]);
    }

    // The token lists the three members as etcd registered them.
    let anonymous = Api::anonymous(&url);
    let directory_listing = anonymous.get("").await;
    assert_eq!(directory_listing.status, 200);
    let nodes = directory_listing.body["node"]["nodes"].as_array().unwrap();
    let registered: Vec<&str> = nodes
        .iter()
        .filter(|node| node["dir"] != true)
        .filter_map(|node| node["value"].as_str())
        .collect();
    assert_eq!(registered.len(), 3, "{}", directory_listing.text);
    assert!(registered
        .iter()
        .any(|value| value.starts_with("two=http://127.0.0.1:")));

    // A fourth member finds the cluster full and, told to, gives up instead of joining.
    let mut late = start_member("four", &url, directory.path());
    let exited = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = late.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .await
    .unwrap();
    assert!(
        matches!(exited, Some(status) if !status.success()),
        "a fourth member joined a full cluster"
    );
    let log = std::fs::read_to_string(directory.path().join("four.log")).unwrap_or_default();
    assert!(log.contains("full"), "{log}");
}

#[tokio::test]
async fn the_protocol_refuses_what_etcd_would_never_send_and_tokens_need_a_login() {
    let magnumd = Magnumd::start().await;
    magnumd.add_user("alice", "project-a", &["member"]);
    let alice = magnumd.user("alice", "project-a").await;

    for (size, message) in [
        (
            "0",
            "Invalid discovery size 0: an etcd cluster has 1 to 15 members.",
        ),
        (
            "16",
            "Invalid discovery size 16: an etcd cluster has 1 to 15 members.",
        ),
        ("three", "Invalid discovery size 'three': not an integer."),
    ] {
        let refused = alice.get(&format!("/v1/discovery/new?size={size}")).await;
        assert_eq!(refused.status, 400, "{}", refused.text);
        assert_eq!(refused.error_detail(), message);
    }
    let anonymous = Api::anonymous(&magnumd.base_url());
    assert_eq!(anonymous.get("/v1/discovery/new?size=3").await.status, 401);

    let url = alice.get("/v1/discovery/new?size=1").await.text;
    let token = Api::anonymous(url.trim());
    let size = token.get("/_config/size").await;
    assert_eq!(size.status, 200);
    assert_eq!(size.body["node"]["value"], "1");
    assert_eq!(size.header("x-etcd-index"), Some("1"));

    let form = |value: &str| {
        Some((
            "application/x-www-form-urlencoded",
            value.as_bytes().to_vec(),
        ))
    };
    let put = |path: &'static str, body: &'static str| {
        let token = token.clone();
        async move { token.raw(reqwest::Method::PUT, path, form(body)).await }
    };
    let created = put(
        "/8e9e05c52164694d?prevExist=false",
        "value=one%3Dhttp%3A%2F%2F127.0.0.1%3A2380",
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["action"], "create");
    assert_eq!(created.body["node"]["value"], "one=http://127.0.0.1:2380");
    assert_eq!(created.body["node"]["createdIndex"], 2);

    // A member registers once; nothing is overwritten.
    let again = put("/8e9e05c52164694d?prevExist=false", "value=other").await;
    assert_eq!(again.status, 412);
    assert_eq!(again.body["errorCode"], 105);
    // The size is the token's, not the caller's to change.
    let resize = put("/_config/size", "value=9").await;
    assert_eq!(resize.status, 403);
    assert_eq!(resize.body["errorCode"], 107);
    let no_value = put("/abc", "other=1").await;
    assert_eq!(no_value.status, 400);
    assert_eq!(no_value.body["errorCode"], 209);
    let huge = token
        .raw(
            reqwest::Method::PUT,
            "/abc",
            form(&format!("value={}", "x".repeat(5000))),
        )
        .await;
    assert_eq!(huge.status, 400);
    let too_big = token
        .raw(
            reqwest::Method::PUT,
            "/abc",
            form(&format!("value={}", "x".repeat(9000))),
        )
        .await;
    assert_eq!(too_big.status, 413);

    // A watch from before the registration answers it at once.
    let watched = token.get("?wait=true&waitIndex=2&recursive=true").await;
    assert_eq!(watched.status, 200);
    assert_eq!(watched.body["node"]["createdIndex"], 2);
    let bad_index = token.get("?wait=true&waitIndex=minus").await;
    assert_eq!(bad_index.status, 400);

    // Unknown or malformed tokens are etcd's "Key not found".
    let base = magnumd.base_url();
    for path in [
        "/v1/discovery/0123456789abcdef0123456789abcdef/_config/size",
        "/v1/discovery/not-a-token",
        "/v1/discovery/..%2f..%2fetc/_config/size",
    ] {
        let missing = Api::anonymous(&base).get(path).await;
        assert_eq!(missing.status, 404, "{path}: {}", missing.text);
        assert_eq!(missing.body["errorCode"], 100, "{path}");
    }
}
