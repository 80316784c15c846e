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
