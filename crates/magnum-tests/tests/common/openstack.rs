//! The real Keystone 30 and Heat 27.0.1 that `scripts/openstack/services.sh` starts (the
//! README's test command runs it and names its env file in `MAGNUM_TEST_OPENSTACK_ENV`),
//! and what a test sets up in them: a region of its own whose image, compute, network and
//! load-balancer endpoints point at its `CloudApiDouble`, and projects with users.
//!
//! A region per test keeps tests that run at once apart: each magnumd looks its services up
//! in its own region (`[*_client] region_name`).

use super::cloud_double::CloudApiDouble;
use super::require_all;
use serde_json::{json, Value};

/// The service types the double stands in for.
pub const DOUBLED_SERVICES: [&str; 5] =
    ["image", "compute", "network", "load-balancer", "volumev3"];

#[derive(Debug, Clone)]
pub struct RealOpenStack {
    pub keystone_url: String,
    pub heat_url: String,
    admin_password: String,
    service_password: String,
    http: reqwest::Client,
}

/// A project with a member user in the real Keystone.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub project_id: String,
    pub project_name: String,
    pub user_name: String,
    pub password: String,
}

fn unique(prefix: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_micros()
    )
}

impl RealOpenStack {
    /// The running services, or None (the test is skipped) when none were started; with
    /// `MAGNUM_TEST_REQUIRE_ALL=1` their absence fails the test instead.
    pub fn from_env() -> Option<RealOpenStack> {
        let values = magnum_openstack::testing::services_env()?;
        let value = |key: &str| values.get(key).cloned();
        match (
            value("MAGNUM_TEST_KEYSTONE_URL"),
            value("MAGNUM_TEST_HEAT_URL"),
            value("MAGNUM_TEST_OPENSTACK_ADMIN_PASSWORD"),
            value("MAGNUM_TEST_OPENSTACK_SERVICE_PASSWORD"),
        ) {
            (Some(keystone_url), Some(heat_url), Some(admin_password), Some(service_password)) => {
                Some(RealOpenStack {
                    keystone_url,
                    heat_url,
                    admin_password,
                    service_password,
                    http: reqwest::Client::builder()
                        .timeout(std::time::Duration::from_secs(30))
                        .pool_max_idle_per_host(0)
                        .build()
                        .unwrap(),
                })
            }
            _ => {
                assert!(
                    !require_all(),
                    "the env file of MAGNUM_TEST_OPENSTACK_ENV lacks Heat's URL or a password"
                );
                eprintln!("skipped: the OpenStack env file is incomplete");
                None
            }
        }
    }

    /// A token of `user` in `project` (both in domain Default).
    pub async fn token(&self, user: &str, password: &str, project: &str) -> (String, Value) {
        let response = self
            .http
            .post(format!("{}/v3/auth/tokens", self.keystone_url))
            .json(&json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": user, "domain": {"id": "default"}, "password": password}}},
                "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "login of {user} in {project}");
        let token = response.headers()["x-subject-token"]
            .to_str()
            .unwrap()
            .to_string();
        (token, response.json().await.unwrap())
    }

    async fn admin_token(&self) -> String {
        self.token("admin", &self.admin_password, "admin").await.0
    }

    async fn admin_call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let token = self.admin_token().await;
        let mut request = self
            .http
            .request(method.clone(), format!("{}/v3{path}", self.keystone_url))
            .header("X-Auth-Token", token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A token of a cluster's trustee within its trust, as the cluster's nodes get one: the
    /// trustee and trust are looked up in Keystone, and the password derived as magnumd
    /// derives it, from the service key in magnumd's state directory.
    pub async fn trustee_token(
        &self,
        state_dir: &std::path::Path,
        cluster_uuid: &str,
        project_id: &str,
    ) -> String {
        let name = format!("{cluster_uuid}_{project_id}");
        let users = self
            .admin_call(reqwest::Method::GET, &format!("/users?name={name}"), None)
            .await;
        let user_id = users["users"][0]["id"].as_str().unwrap().to_string();
        let trusts = self
            .admin_call(
                reqwest::Method::GET,
                &format!("/OS-TRUST/trusts?trustee_user_id={user_id}"),
                None,
            )
            .await;
        let trust_id = trusts["trusts"][0]["id"].as_str().unwrap().to_string();
        let key = std::fs::read_to_string(state_dir.join("ca-encryption.key")).unwrap();
        let keystone = magnum_openstack::Keystone::new(
            magnum_openstack::http_client().unwrap(),
            &self.keystone_url,
        );
        let password = magnum_driver_openstack::Trustees::new(
            keystone,
            magnum_driver_openstack::TrustSettings {
                domain_name: "magnum".to_string(),
                admin_name: "unused".to_string(),
                admin_password: magnum_config::Secret::new("unused"),
                admin_domain_name: None,
                roles: Vec::new(),
                password_key: magnum_config::Secret::new(key.trim()),
                cluster_user_trust: false,
            },
        )
        .password(cluster_uuid);
        let response = self
            .http
            .post(format!("{}/v3/auth/tokens", self.keystone_url))
            .json(&json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "id": user_id, "password": password.expose()}}},
                "scope": {"OS-TRUST:trust": {"id": trust_id}}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "the trustee's login");
        response.headers()["x-subject-token"]
            .to_str()
            .unwrap()
            .to_string()
    }

    /// A region of the test's own whose doubled services point at `double`; returns its id.
    pub async fn register_region(&self, double: &CloudApiDouble) -> String {
        let region = unique("test-region");
        self.admin_call(
            reqwest::Method::POST,
            "/regions",
            Some(json!({"region": {"id": region}})),
        )
        .await;
        for service_type in DOUBLED_SERVICES {
            self.add_endpoint(&region, service_type, &double.endpoint(service_type))
                .await;
        }
        region
    }

    /// Adds to `region` a public endpoint of `service_type` at `url` (a service of its own).
    pub async fn add_endpoint(&self, region: &str, service_type: &str, url: &str) {
        let service = self
            .admin_call(
                reqwest::Method::POST,
                "/services",
                Some(json!({"service": {"type": service_type,
                                        "name": format!("{service_type}-of-{region}"),
                                        "enabled": true}})),
            )
            .await;
        self.admin_call(
            reqwest::Method::POST,
            "/endpoints",
            Some(json!({"endpoint": {"service_id": service["service"]["id"],
                                     "interface": "public", "region_id": region,
                                     "url": url}})),
        )
        .await;
    }

    /// A new project with a user holding the member role in it.
    pub async fn tenant(&self) -> Tenant {
        let project_name = unique("project");
        let user_name = unique("user");
        let password = unique("pw");
        let project = self
            .admin_call(
                reqwest::Method::POST,
                "/projects",
                Some(json!({"project": {"name": project_name, "domain_id": "default"}})),
            )
            .await;
        let project_id = project["project"]["id"].as_str().unwrap().to_string();
        let user = self
            .admin_call(
                reqwest::Method::POST,
                "/users",
                Some(json!({"user": {"name": user_name, "domain_id": "default",
                                     "password": password, "enabled": true}})),
            )
            .await;
        let roles = self
            .admin_call(reqwest::Method::GET, "/roles?name=member", None)
            .await;
        self.admin_call(
            reqwest::Method::PUT,
            &format!(
                "/projects/{project_id}/users/{}/roles/{}",
                user["user"]["id"].as_str().unwrap(),
                roles["roles"][0]["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
        Tenant {
            project_id,
            project_name,
            user_name,
            password,
        }
    }

    /// The stack `name` in `project` as Heat shows it to `token`'s holder, or None.
    pub async fn heat_stack(&self, token: &str, project_id: &str, name: &str) -> Option<Value> {
        let response = self
            .http
            .get(format!("{}/v1/{project_id}/stacks/{name}", self.heat_url))
            .header("X-Auth-Token", token)
            .send()
            .await
            .unwrap();
        if response.status() == 404 {
            return None;
        }
        assert!(response.status().is_success(), "{}", response.status());
        let body: Value = response.json().await.unwrap();
        Some(body["stack"].clone())
    }

    /// Whether Keystone has a user of this name (in any domain).
    pub async fn user_exists(&self, name: &str) -> bool {
        let found = self
            .admin_call(reqwest::Method::GET, &format!("/users?name={name}"), None)
            .await;
        !found["users"].as_array().unwrap().is_empty()
    }

    /// magnum.conf lines for keystone mode with magnumd's service user, and every
    /// `[*_client]` looking in `region`.
    pub fn magnumd_config(&self, region: &str) -> String {
        let mut config = format!(
            "[keystone_authtoken]\nauth_url = {}/v3\nusername = magnum\npassword = {}\n\
             project_name = service\ntoken_cache_time = 0\n\
             [trust]\ntrustee_domain_name = magnum\ntrustee_domain_admin_name = magnum_domain_admin\n\
             trustee_domain_admin_password = {}\n",
            self.keystone_url, self.service_password, self.service_password
        );
        for section in [
            "glance_client",
            "nova_client",
            "neutron_client",
            "octavia_client",
            "cinder_client",
        ] {
            config.push_str(&format!("[{section}]\nregion_name = {region}\n"));
        }
        config.push_str("[heat_client]\nregion_name = RegionOne\n");
        config
    }
}
