//! The built-in identity as clients and the API see it, and the other two strategies.

use crate::common::{Api, Magnumd, Options};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

#[tokio::test]
async fn wrong_password_is_401_with_the_keystone_body() {
    let magnumd = Magnumd::start().await;
    let reply = magnumd
        .password_auth("admin", "not-the-password", "admin")
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body["error"]["code"], 401);
    assert_eq!(reply.body["error"]["title"], "Unauthorized");
    assert!(reply.body["error"]["message"].is_string());
    let unknown = magnumd.password_auth("nobody", "x", "admin").await;
    assert_eq!(unknown.status, 401);
}

#[tokio::test]
async fn generated_admin_password_is_kept_private() {
    let magnumd = Magnumd::start_with(Options {
        configured_admin_password: false,
        ..Options::default()
    })
    .await;
    let file = magnumd.state_dir.path().join("admin-password");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        magnumd
            .stdout_lines
            .iter()
            .any(|line| line.contains(&file.display().to_string())),
        "{:?}",
        magnumd.stdout_lines
    );
    assert!(!magnumd
        .stdout_lines
        .iter()
        .any(|line| line.contains(&magnumd.admin_password)));
    let admin = magnumd.admin().await;
    assert_eq!(admin.get("/v1/mservices").await.status, 200);
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let magnumd = Magnumd::start_with(Options {
        extra_config: "[identity]\ntoken_expiration = 1\n".to_string(),
        ..Options::default()
    })
    .await;
    let admin = magnumd.admin().await;
    assert_eq!(admin.get("/v1/clustertemplates").await.status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let expired = admin.get("/v1/clustertemplates").await;
    assert_eq!(expired.status, 401);
    assert!(
        expired.error_detail().contains("expired"),
        "{}",
        expired.text
    );
}

#[tokio::test]
async fn revoked_tokens_are_refused() {
    let magnumd = Magnumd::start().await;
    let admin = magnumd.admin().await;
    let token = admin.token.clone().unwrap();
    assert_eq!(admin.get("/v1/clustertemplates").await.status, 200);
    let identity = Api::new(
        magnumd.identity_url.as_deref().unwrap(),
        Some(token.clone()),
    )
    .with_header("X-Subject-Token", &token);
    assert_eq!(identity.delete("/auth/tokens").await.status, 204);
    assert_eq!(admin.get("/v1/clustertemplates").await.status, 401);
    assert_eq!(identity.get("/auth/tokens").await.status, 401);
}

#[tokio::test]
async fn noauth_trusts_identity_headers() {
    let magnumd = Magnumd::start_with(Options {
        auth_strategy: "noauth",
        ..Options::default()
    })
    .await;
    assert!(magnumd.identity_url.is_none());
    let anonymous = Api::new(&magnumd.base_url(), Some("notused".to_string()));
    // Without X-Roles a caller is a member and reader, not an administrator.
    assert_eq!(anonymous.get("/v1/mservices").await.status, 403);
    assert_eq!(anonymous.get("/v1/clustertemplates").await.status, 200);
    let administrator = anonymous.with_header("X-Roles", "admin,member,reader");
    assert_eq!(administrator.get("/v1/mservices").await.status, 200);
    let project_a = anonymous
        .with_header("X-Project-Id", "a")
        .with_header("X-User-Id", "ua")
        .with_header("X-Roles", "member");
    let project_b = anonymous
        .with_header("X-Project-Id", "b")
        .with_header("X-User-Id", "ub")
        .with_header("X-Roles", "member");
    let created = project_a
        .post(
            "/v1/clustertemplates",
            json!({"name": "t", "coe": "swarm", "image_id": "i"}),
        )
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["project_id"], "a");
    assert_eq!(project_b.get("/v1/clustertemplates/t").await.status, 404);
    assert_eq!(project_b.get("/v1/mservices").await.status, 403);
}

#[tokio::test]
async fn keystone_strategy_validates_tokens_with_a_keystone() {
    let keystone = Magnumd::start().await;
    let identity_url = keystone.identity_url.clone().unwrap();
    let magnumd = Magnumd::start_with(Options {
        auth_strategy: "keystone",
        extra_config: format!(
            "[keystone_authtoken]\nauth_url = {identity_url}\nusername = admin\npassword = {}\nproject_name = admin\ntoken_cache_time = 0\n",
            keystone.admin_password
        ),
        ..Options::default()
    })
    .await;
    keystone.add_user("alice", "project-a", &["member"]);
    let token = keystone.token("alice", "alice-pw", "project-a").await;
    let alice = Api::new(&magnumd.base_url(), Some(token.clone()));
    let created = alice
        .post(
            "/v1/clustertemplates",
            json!({"name": "via-keystone", "coe": "swarm", "image_id": "i"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(alice.get("/v1/mservices").await.status, 403);
    let garbage = Api::new(&magnumd.base_url(), Some("garbage".to_string()));
    let refused = garbage.get("/v1/clustertemplates").await;
    assert_eq!(refused.status, 401);
    assert!(refused
        .header("www-authenticate")
        .is_some_and(|value| value.contains(&identity_url)));
    // Revoked at the Keystone: refused once the (here zero-length) cache lapses.
    let revoke =
        Api::new(&identity_url, Some(token.clone())).with_header("X-Subject-Token", &token);
    assert_eq!(revoke.delete("/auth/tokens").await.status, 204);
    assert_eq!(alice.get("/v1/clustertemplates").await.status, 401);
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_an_account_for_the_lockout_duration() {
    let magnumd = Magnumd::start_with(Options {
        extra_config: "[security_compliance]\nlockout_failure_attempts = 3\nlockout_duration = 2\n"
            .to_string(),
        ..Options::default()
    })
    .await;
    magnumd.add_user("alice", "demo", &["member"]);
    // Two wrong, one right: the count starts again.
    for _ in 0..2 {
        assert_eq!(
            magnumd.password_auth("alice", "wrong", "demo").await.status,
            401
        );
    }
    assert_eq!(
        magnumd
            .password_auth("alice", "alice-pw", "demo")
            .await
            .status,
        201
    );
    for _ in 0..3 {
        assert_eq!(
            magnumd.password_auth("alice", "wrong", "demo").await.status,
            401
        );
    }
    // Locked: even the right password is refused, with Keystone's message.
    let locked = magnumd.password_auth("alice", "alice-pw", "demo").await;
    assert_eq!(locked.status, 401);
    let message = locked.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("The account is locked for user: "),
        "{message}"
    );
    // Other users are not affected.
    assert_eq!(
        magnumd
            .password_auth("admin", &magnumd.admin_password, "admin")
            .await
            .status,
        201
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        magnumd
            .password_auth("alice", "alice-pw", "demo")
            .await
            .status,
        201
    );
}

/// A token re-scoped from a token: its `audit_ids` carry the chain.
async fn rescoped(magnumd: &Magnumd, parent: &str, project: &str) -> (String, serde_json::Value) {
    let identity = Api::anonymous(magnumd.identity_url.as_deref().unwrap());
    let reply = identity
        .post(
            "/auth/tokens",
            json!({"auth": {"identity": {"methods": ["token"], "token": {"id": parent}},
                   "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let token = reply
        .header("x-subject-token")
        .expect("X-Subject-Token")
        .to_string();
    (token, reply.body)
}

#[tokio::test]
async fn revoking_a_token_revokes_the_tokens_rescoped_from_it() {
    let magnumd = Magnumd::start().await;
    magnumd.add_user("bob", "one", &["member"]);
    for args in [
        vec!["identity", "project-create", "--name", "two"],
        vec![
            "identity",
            "role-add",
            "--user",
            "bob",
            "--project",
            "two",
            "--role",
            "member",
        ],
    ] {
        let output = magnumd.magnumd(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let parent = magnumd.token("bob", "bob-pw", "one").await;
    let (child, body) = rescoped(&magnumd, &parent, "two").await;
    let audit_ids = body["token"]["audit_ids"].as_array().unwrap().clone();
    assert_eq!(audit_ids.len(), 2, "{body}");
    let (grandchild, body) = rescoped(&magnumd, &child, "one").await;
    assert_eq!(body["token"]["audit_ids"][1], audit_ids[1]);
    let api = |token: &str| Api::new(&magnumd.base_url(), Some(token.to_string()));
    assert_eq!(api(&child).get("/v1/clustertemplates").await.status, 200);
    // Revoking a child leaves its parent alone.
    let identity = Api::new(
        magnumd.identity_url.as_deref().unwrap(),
        Some(parent.clone()),
    );
    assert_eq!(
        identity
            .with_header("X-Subject-Token", &grandchild)
            .delete("/auth/tokens")
            .await
            .status,
        204
    );
    assert_eq!(
        api(&grandchild).get("/v1/clustertemplates").await.status,
        401
    );
    assert_eq!(api(&parent).get("/v1/clustertemplates").await.status, 200);
    // Revoking the parent revokes every token of its chain.
    assert_eq!(
        identity
            .with_header("X-Subject-Token", &parent)
            .delete("/auth/tokens")
            .await
            .status,
        204
    );
    assert_eq!(api(&parent).get("/v1/clustertemplates").await.status, 401);
    assert_eq!(api(&child).get("/v1/clustertemplates").await.status, 401);
}

/// Waits until a token is refused (revocations reach the API within its refresh interval).
async fn refused_soon(magnumd: &Magnumd, token: &str) {
    let api = Api::new(&magnumd.base_url(), Some(token.to_string()));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if api.get("/v1/clustertemplates").await.status == 401 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the token still works"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn removing_a_role_or_changing_a_password_revokes_the_users_tokens() {
    let magnumd = Magnumd::start_with(Options {
        extra_config: "[identity]\nrevocation_refresh_interval = 1\n".to_string(),
        ..Options::default()
    })
    .await;
    magnumd.add_user("carol", "team", &["member", "reader"]);
    let token = magnumd.token("carol", "carol-pw", "team").await;
    let other = magnumd
        .token("admin", &magnumd.admin_password, "admin")
        .await;
    let removed = magnumd.magnumd(&[
        "identity",
        "role-remove",
        "--user",
        "carol",
        "--project",
        "team",
        "--role",
        "member",
    ]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    refused_soon(&magnumd, &token).await;
    // A new token carries what is left; another user's token is untouched.
    let again = magnumd.token("carol", "carol-pw", "team").await;
    let api = Api::new(&magnumd.base_url(), Some(again.clone()));
    assert_eq!(api.get("/v1/clustertemplates").await.status, 200);
    assert_eq!(
        Api::new(&magnumd.base_url(), Some(other))
            .get("/v1/clustertemplates")
            .await
            .status,
        200
    );
    let changed = magnumd.magnumd(&[
        "identity",
        "user-password",
        "--name",
        "carol",
        "--password",
        "new-carol-pw",
    ]);
    assert!(
        changed.status.success(),
        "{}",
        String::from_utf8_lossy(&changed.stderr)
    );
    refused_soon(&magnumd, &again).await;
    assert_eq!(
        magnumd
            .password_auth("carol", "new-carol-pw", "team")
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn an_unreachable_keystone_gives_503_without_its_address() {
    // Nothing listens on port 9 (discard) of loopback here.
    let magnumd = Magnumd::start_with(Options {
        auth_strategy: "keystone",
        extra_config: "[keystone_authtoken]\nauth_url = http://127.0.0.1:9/identity\nusername = svc\npassword = pw\n"
            .to_string(),
        ..Options::default()
    })
    .await;
    let reply = Api::new(&magnumd.base_url(), Some("some-token".to_string()))
        .get("/v1/clustertemplates")
        .await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert!(!reply.text.contains("127.0.0.1"), "{}", reply.text);
    assert!(!reply.text.contains("identity"), "{}", reply.text);
}

#[tokio::test]
async fn a_token_keystone_refused_is_refused_again_without_asking() {
    let mut keystone = Magnumd::start().await;
    let identity_url = keystone.identity_url.clone().unwrap();
    let magnumd = Magnumd::start_with(Options {
        auth_strategy: "keystone",
        extra_config: format!(
            "[keystone_authtoken]\nauth_url = {identity_url}\nusername = admin\npassword = {}\nproject_name = admin\n",
            keystone.admin_password
        ),
        ..Options::default()
    })
    .await;
    let bad = Api::new(&magnumd.base_url(), Some("bad-token".to_string()));
    assert_eq!(bad.get("/v1/clustertemplates").await.status, 401);
    // Keystone goes away: the token it refused a moment ago is still refused (remembered),
    // while a token never seen cannot be checked.
    keystone.stop();
    assert_eq!(bad.get("/v1/clustertemplates").await.status, 401);
    let unseen = Api::new(&magnumd.base_url(), Some("other-token".to_string()));
    assert_eq!(unseen.get("/v1/clustertemplates").await.status, 503);
}

/// The highest resident memory of a process, in KiB.
fn peak_memory_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_flood_of_logins_is_answered_without_exhausting_memory() {
    let magnumd = Magnumd::start().await;
    // Each password check takes ~19 MiB; two hundred at once would take nearly 4 GiB.
    let attempts = (0..200).map(|index| {
        let magnumd = &magnumd;
        async move {
            magnumd
                .password_auth("admin", &format!("guess-{index}"), "admin")
                .await
                .status
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    assert!(
        statuses
            .iter()
            .all(|status| *status == 401 || *status == 503),
        "{statuses:?}"
    );
    assert!(statuses.iter().filter(|status| **status == 401).count() > 0);
    let peak = peak_memory_kib(magnumd.pid());
    assert!(
        peak > 0 && peak < 512 * 1024,
        "magnumd peaked at {peak} KiB"
    );
    // And it still logs people in.
    assert_eq!(
        magnumd
            .password_auth("admin", &magnumd.admin_password, "admin")
            .await
            .status,
        201
    );
}
