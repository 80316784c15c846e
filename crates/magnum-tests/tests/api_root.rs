//! Version documents, microversion negotiation, routing and error formats.

use crate::common::{Api, Magnumd};
use serde_json::json;

#[tokio::test]
async fn version_documents_are_public_and_complete() {
    let magnumd = Magnumd::start().await;
    let anonymous = Api::anonymous(&magnumd.base_url());
    let root = anonymous.get("/").await;
    assert_eq!(root.status, 200);
    assert_eq!(root.body["versions"][0]["id"], "v1");
    assert_eq!(root.body["versions"][0]["status"], "CURRENT");
    assert_eq!(root.body["versions"][0]["min_version"], "1.1");
    assert_eq!(root.body["versions"][0]["max_version"], "1.14");
    assert_eq!(
        root.body["versions"][0]["links"][0]["href"],
        format!("{}/v1/", magnumd.base_url())
    );
    let v1 = anonymous.get("/v1").await;
    assert_eq!(v1.status, 200);
    assert_eq!(v1.body["id"], "v1");
    assert_eq!(
        v1.body["media_types"][0]["type"],
        "application/vnd.openstack.magnum.v1+json"
    );
    for collection in [
        "clustertemplates",
        "clusters",
        "mservices",
        "baymodels",
        "bays",
        "quotas",
    ] {
        assert_eq!(v1.body[collection][1]["rel"], "bookmark", "{collection}");
    }
}

#[tokio::test]
async fn microversions_are_negotiated_as_the_spec_says() {
    let magnumd = Magnumd::start().await;
    let admin = magnumd.admin().await;
    let missing = admin.get("/v1/clustertemplates").await;
    assert_eq!(missing.status, 200);
    assert_eq!(
        missing.header("openstack-api-version"),
        Some("container-infra 1.1")
    );
    assert_eq!(
        missing.header("openstack-api-minimum-version"),
        Some("container-infra 1.1")
    );
    assert_eq!(
        missing.header("openstack-api-maximum-version"),
        Some("container-infra 1.14")
    );
    assert_eq!(missing.header("vary"), Some("OpenStack-API-Version"));
    assert!(missing
        .header("x-openstack-request-id")
        .is_some_and(|id| id.starts_with("req-")));
    for service in [
        "container-infra",
        "container-infrastructure",
        "container-infrastructure-management",
    ] {
        let reply = admin
            .with_header("OpenStack-API-Version", &format!("{service} latest"))
            .get("/v1/clustertemplates")
            .await;
        assert_eq!(reply.status, 200, "{service}");
        assert_eq!(
            reply.header("openstack-api-version"),
            Some("container-infra 1.14")
        );
    }
    let ten = admin
        .with_header("OpenStack-API-Version", "container-infra 1.10")
        .get("/v1/mservices")
        .await;
    assert_eq!(
        ten.header("openstack-api-version"),
        Some("container-infra 1.10")
    );

    let too_new = admin
        .with_header("OpenStack-API-Version", "container-infra 1.15")
        .get("/v1/clustertemplates")
        .await;
    assert_eq!(too_new.status, 406);
    assert_eq!(
        too_new.body["errors"][0]["code"],
        "magnum.microversion-unsupported"
    );
    assert_eq!(too_new.body["errors"][0]["min_version"], "1.1");
    assert_eq!(too_new.body["errors"][0]["max_version"], "1.14");
    assert!(too_new.header("openstack-api-maximum-version").is_some());
    let old_major = admin
        .with_header("OpenStack-API-Version", "container-infra 2.0")
        .get("/v1")
        .await;
    assert_eq!(old_major.status, 406);
    let wrong_service = admin
        .with_header("OpenStack-API-Version", "compute 2.1")
        .get("/v1/clustertemplates")
        .await;
    assert_eq!(wrong_service.status, 406);
    assert_eq!(
        wrong_service.body["errors"][0]["title"],
        "Invalid service type for OpenStack-API-Version header"
    );
    let garbage = admin
        .with_header("OpenStack-API-Version", "container-infra one")
        .get("/v1/clustertemplates")
        .await;
    assert_eq!(garbage.status, 406);
    assert_eq!(
        garbage.body["errors"][0]["title"],
        "Invalid value for OpenStack-API-Version header"
    );
    let legacy = admin
        .with_header("X-OpenStack-Magnum-API-Version", "1.1")
        .get("/v1/baymodels")
        .await;
    assert_eq!(legacy.status, 200);
    assert_eq!(legacy.header("x-openstack-magnum-api-version"), Some("1.1"));
}

#[tokio::test]
async fn routing_errors_use_the_error_format() {
    let magnumd = Magnumd::start().await;
    let admin = magnumd.admin().await;
    let unknown = admin.get("/v1/widgets").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.header("content-type"), Some("application/json"));
    assert_eq!(unknown.body["errors"][0]["status"], 404);
    assert_eq!(unknown.body["errors"][0]["code"], "");
    let wrong_method = admin
        .raw(reqwest::Method::PUT, "/v1/clustertemplates", None)
        .await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.body["errors"][0]["status"], 405);
    // Paths without /v1 are routed as if they had it.
    let unprefixed = admin.get("/clustertemplates").await;
    assert_eq!(unprefixed.status, 200);
    assert!(unprefixed.body["clustertemplates"].is_array());
}

#[tokio::test]
async fn collections_not_built_yet_say_so_with_501() {
    let magnumd = Magnumd::start().await;
    let admin = magnumd.admin().await;
    for path in [
        "/v1/federations",
        "/v1/credentials/x",
        "/v1/containers",
        "/v1/pods",
        "/v1/rcs",
        "/v1/services",
        "/v1/x509keypairs",
        "/v1/nodes",
    ] {
        let reply = admin.get(path).await;
        assert_eq!(reply.status, 501, "{path}");
        assert!(
            reply.text.contains("not implemented"),
            "{path}: {}",
            reply.text
        );
    }
    let post = admin.post("/v1/federations", json!({"name": "f"})).await;
    assert_eq!(post.status, 501);
}

#[tokio::test]
async fn requests_without_a_valid_token_are_401() {
    let magnumd = Magnumd::start().await;
    let anonymous = Api::anonymous(&magnumd.base_url());
    let reply = anonymous.get("/v1/clustertemplates").await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body["errors"][0]["status"], 401);
    assert!(reply
        .header("www-authenticate")
        .is_some_and(|value| value.contains("/v3")));
    let forged = Api::new(&magnumd.base_url(), Some("mr1.e30.AAAA".to_string()));
    assert_eq!(forged.get("/v1/clustertemplates").await.status, 401);
    let notused = Api::new(&magnumd.base_url(), Some("notused".to_string()));
    assert_eq!(notused.get("/v1/mservices").await.status, 401);
}

#[tokio::test]
async fn public_urls_shape_links_and_the_catalog() {
    let magnumd = crate::common::Magnumd::start_with(crate::common::Options {
        extra_config: "[api]\npublic_url = https://magnum.example.org:9511/v1\n".to_string(),
        ..crate::common::Options::default()
    })
    .await;
    assert!(magnumd
        .stdout_lines
        .contains(&"Magnum API published at https://magnum.example.org:9511/v1".to_string()));
    let reply = magnumd
        .password_auth("admin", crate::common::ADMIN_PASSWORD, "admin")
        .await;
    let catalog = reply.body["token"]["catalog"].as_array().unwrap().clone();
    let magnum = catalog
        .iter()
        .find(|service| service["type"] == "container-infra")
        .unwrap();
    assert_eq!(
        magnum["endpoints"][0]["url"],
        "https://magnum.example.org:9511/v1"
    );
    assert_eq!(magnum["endpoints"][0]["region"], "RegionOne");
    let admin = magnumd.admin().await;
    let created = admin
        .post(
            "/v1/clustertemplates",
            json!({"name": "linked", "coe": "swarm", "image_id": "i"}),
        )
        .await;
    let uuid = created.body["uuid"].as_str().unwrap();
    assert_eq!(
        created.body["links"][0]["href"],
        format!("https://magnum.example.org:9511/v1/clustertemplates/{uuid}")
    );
    assert_eq!(
        created.header("location"),
        Some(format!("https://magnum.example.org:9511/v1/clustertemplates/{uuid}").as_str())
    );
    let root = admin.get("/").await;
    assert_eq!(
        root.body["versions"][0]["links"][0]["href"],
        "https://magnum.example.org:9511/v1/"
    );
}

/// The host and port of a URL such as `http://127.0.0.1:9511/v1`.
fn address_of(url: &str) -> String {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn slow_clients_large_bodies_and_surplus_connections_are_bounded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    let magnumd = Magnumd::start_with(crate::common::Options {
        extra_config: "[api]\nheader_read_timeout = 1\nmax_connections = 3\nmax_body_size = 2048\n"
            .to_string(),
        ..crate::common::Options::default()
    })
    .await;
    let admin = magnumd.admin().await;

    // A body beyond the limit: 413 in each server's error format.
    let big = vec![b' '; 4096];
    let refused = admin
        .raw(
            reqwest::Method::POST,
            "/v1/clustertemplates",
            Some(("application/json", big.clone())),
        )
        .await;
    assert_eq!(refused.status, 413, "{}", refused.text);
    assert_eq!(refused.body["errors"][0]["status"], 413);
    let identity = Api::anonymous(magnumd.identity_url.as_deref().unwrap());
    let refused = identity
        .raw(
            reqwest::Method::POST,
            "/auth/tokens",
            Some(("application/json", big)),
        )
        .await;
    assert_eq!(refused.status, 413, "{}", refused.text);
    assert_eq!(refused.body["error"]["code"], 413);

    // A client that never finishes its headers is disconnected.
    let api_address = address_of(&magnumd.api_url);
    let mut slow = TcpStream::connect(&api_address).await.unwrap();
    slow.write_all(b"GET /v1 HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buffer = [0_u8; 256];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), slow.read(&mut buffer))
        .await
        .expect("the server never hung up on a client without headers");
    assert!(matches!(read, Ok(0) | Err(_)) || buffer.starts_with(b"HTTP/1.1 408"));

    // Three connections that send nothing take every slot: a fourth client waits until the
    // header timeout frees them, and is then served.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(&api_address).await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let waiting = Api::anonymous(&magnumd.base_url());
    let too_soon =
        tokio::time::timeout(std::time::Duration::from_millis(300), waiting.get("/v1")).await;
    assert!(too_soon.is_err(), "a fourth connection was served at once");
    let answer = tokio::time::timeout(std::time::Duration::from_secs(15), waiting.get("/v1"))
        .await
        .expect("the fourth client was never served");
    assert_eq!(answer.status, 200);
    for mut connection in idle {
        let mut byte = [0_u8; 1];
        // Each idle connection was closed by the server.
        let closed = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            connection.read(&mut byte),
        )
        .await
        .expect("an idle connection stayed open");
        assert!(matches!(closed, Ok(0) | Err(_)));
    }
}
