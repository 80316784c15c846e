//! A client of the Magnum API, as the `magnum` CLI uses it.
//!
//! [`Credentials`] say how to reach the API: Keystone v3 password authentication (the
//! endpoint comes from the token's catalog, service type `container-infra`), a token with an
//! explicit endpoint, or an endpoint alone (a `noauth` service). [`MagnumClient`] then sends
//! requests with the microversion header and turns error answers of any of Magnum's three
//! error formats into [`ClientError::Http`].

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The service answered with an error status.
    #[error("{message} (HTTP {status}){}", request_id.as_ref().map(|id| format!(" (Request-ID: {id})")).unwrap_or_default())]
    Http {
        status: u16,
        message: String,
        request_id: Option<String>,
    },
    /// The request could not be sent or the answer not read.
    #[error("{0}")]
    Transport(String),
    /// Authentication or endpoint discovery failed before any API call.
    #[error("{0}")]
    Auth(String),
}

pub type ClientResult<T> = Result<T, ClientError>;

/// How to reach the API.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Keystone v3 password authentication.
    Password(Box<PasswordAuth>),
    /// A token and the API endpoint.
    Token { endpoint: String, token: String },
    /// The API endpoint only (for a service running with `auth_strategy = noauth`).
    Endpoint { endpoint: String },
}

/// Keystone v3 password authentication, as the `OS_*` variables describe it.
#[derive(Clone, Default)]
pub struct PasswordAuth {
    pub auth_url: String,
    pub username: Option<String>,
    pub user_id: Option<String>,
    pub password: String,
    pub user_domain_name: Option<String>,
    pub user_domain_id: Option<String>,
    pub project_name: Option<String>,
    pub project_id: Option<String>,
    pub project_domain_name: Option<String>,
    pub project_domain_id: Option<String>,
    pub region_name: Option<String>,
    /// `public`, `internal` or `admin`.
    pub interface: String,
    /// Use this endpoint instead of the catalog's.
    pub endpoint_override: Option<String>,
}

impl std::fmt::Debug for PasswordAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordAuth")
            .field("auth_url", &self.auth_url)
            .field("username", &self.username)
            .field("project_name", &self.project_name)
            .finish_non_exhaustive()
    }
}

fn domain(name: &Option<String>, id: &Option<String>) -> Value {
    match (id, name) {
        (Some(id), _) => json!({"id": id}),
        (None, Some(name)) => json!({"name": name}),
        (None, None) => json!({"id": "default"}),
    }
}

impl PasswordAuth {
    fn request_body(&self) -> ClientResult<Value> {
        let user = match (&self.user_id, &self.username) {
            (Some(id), _) => json!({"id": id, "password": self.password}),
            (None, Some(name)) => json!({"name": name, "password": self.password,
                                         "domain": domain(&self.user_domain_name, &self.user_domain_id)}),
            (None, None) => return Err(ClientError::Auth("You must provide a username or user ID via --os-username, env[OS_USERNAME] or --os-user-id, env[OS_USER_ID]".to_string())),
        };
        let scope = match (&self.project_id, &self.project_name) {
            (Some(id), _) => json!({"project": {"id": id}}),
            (None, Some(name)) => json!({"project": {"name": name,
                "domain": domain(&self.project_domain_name, &self.project_domain_id)}}),
            (None, None) => Value::Null,
        };
        let mut auth = json!({"identity": {"methods": ["password"], "password": {"user": user}}});
        if !scope.is_null() {
            auth["scope"] = scope;
        }
        Ok(json!({ "auth": auth }))
    }
}

/// The v3 base of an identity URL.
fn identity_v3(auth_url: &str) -> String {
    let trimmed = auth_url.trim_end_matches('/');
    if trimmed.ends_with("/v3") {
        trimmed.to_string()
    } else {
        format!("{trimmed}/v3")
    }
}

/// The API root without `/v1`.
fn api_root(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    trimmed.strip_suffix("/v1").unwrap_or(trimmed).to_string()
}

/// Finds the `container-infra` endpoint of a token's catalog.
fn endpoint_from_catalog(
    token: &Value,
    interface: &str,
    region: Option<&str>,
) -> ClientResult<String> {
    let catalog = token
        .pointer("/token/catalog")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ClientError::Auth("the token has no service catalog (is the project set?)".to_string())
        })?;
    let service = catalog
        .iter()
        .find(|service| service["type"] == "container-infra")
        .ok_or_else(|| {
            ClientError::Auth("the service catalog has no container-infra service".to_string())
        })?;
    service["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|endpoint| {
            endpoint["interface"] == interface
                && region.is_none_or(|region| {
                    endpoint["region"] == region || endpoint["region_id"] == region
                })
        })
        .and_then(|endpoint| endpoint["url"].as_str())
        .map(str::to_string)
        .ok_or_else(|| {
            ClientError::Auth(format!(
                "no {interface} container-infra endpoint in the catalog"
            ))
        })
}

/// The message of an error answer in any of Magnum's formats.
pub fn error_message(body: &str) -> String {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return body.trim().to_string();
    };
    if let Some(error) = value.pointer("/errors/0") {
        let detail = error["detail"].as_str().filter(|text| !text.is_empty());
        let title = error["title"].as_str().filter(|text| !text.is_empty());
        if let Some(text) = detail.or(title) {
            return text.trim_end_matches('.').to_string();
        }
    }
    if let Some(inner) = value["error_message"].as_str() {
        return serde_json::from_str::<Value>(inner)
            .ok()
            .and_then(|fault| fault["faultstring"].as_str().map(str::to_string))
            .unwrap_or_else(|| inner.to_string());
    }
    if let Some(message) = value.pointer("/error/message").and_then(Value::as_str) {
        return message.to_string();
    }
    body.trim().to_string()
}

/// A connected client.
#[derive(Debug, Clone)]
pub struct MagnumClient {
    http: reqwest::Client,
    root: String,
    token: Option<String>,
    api_version: String,
    user_name: Option<String>,
    roles: Vec<String>,
}

impl MagnumClient {
    /// Authenticates (when needed) and finds the endpoint.
    pub async fn connect(
        credentials: &Credentials,
        api_version: &str,
        insecure: bool,
    ) -> ClientResult<MagnumClient> {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(insecure)
            .user_agent(concat!("magnum-rs-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| ClientError::Transport(error.to_string()))?;
        let mut user_name = None;
        let mut roles = Vec::new();
        let (root, token) = match credentials {
            Credentials::Endpoint { endpoint } => (api_root(endpoint), None),
            Credentials::Token { endpoint, token } => (api_root(endpoint), Some(token.clone())),
            Credentials::Password(auth) => {
                let url = format!("{}/auth/tokens", identity_v3(&auth.auth_url));
                let response = http
                    .post(&url)
                    .json(&auth.request_body()?)
                    .send()
                    .await
                    .map_err(|error| ClientError::Auth(format!("cannot reach {url}: {error}")))?;
                let status = response.status();
                let token = response
                    .headers()
                    .get("X-Subject-Token")
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_string);
                let text = response.text().await.unwrap_or_default();
                if status != StatusCode::CREATED {
                    return Err(ClientError::Auth(format!(
                        "The request you have made requires authentication. (HTTP {}): {}",
                        status.as_u16(),
                        error_message(&text)
                    )));
                }
                let token = token.ok_or_else(|| {
                    ClientError::Auth("no X-Subject-Token in the answer".to_string())
                })?;
                let body: Value = serde_json::from_str(&text)
                    .map_err(|error| ClientError::Auth(error.to_string()))?;
                user_name = body["token"]["user"]["name"].as_str().map(str::to_string);
                roles = body["token"]["roles"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|role| role["name"].as_str().map(str::to_string))
                    .collect();
                let endpoint = match &auth.endpoint_override {
                    Some(endpoint) => endpoint.clone(),
                    None => {
                        endpoint_from_catalog(&body, &auth.interface, auth.region_name.as_deref())?
                    }
                };
                (api_root(&endpoint), Some(token))
            }
        };
        Ok(MagnumClient {
            http,
            root,
            token,
            api_version: api_version.to_string(),
            user_name,
            roles,
        })
    }

    /// The authenticated user's name, when password authentication told it.
    pub fn user_name(&self) -> Option<&str> {
        self.user_name.as_deref()
    }

    /// The roles of the token, when password authentication told them.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// Sends one request; `path` starts with `/v1/`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> ClientResult<Option<Value>> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.root))
            .header(
                "OpenStack-API-Version",
                format!("container-infra {}", self.api_version),
            )
            .header("Accept", "application/json");
        if let Some(token) = &self.token {
            request = request.header("X-Auth-Token", token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|error| {
            ClientError::Transport(format!(
                "cannot reach the Magnum API at {}: {error}",
                self.root
            ))
        })?;
        let status = response.status();
        let request_id = response
            .headers()
            .get("x-openstack-request-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let text = response
            .text()
            .await
            .map_err(|error| ClientError::Transport(error.to_string()))?;
        if !status.is_success() {
            return Err(ClientError::Http {
                status: status.as_u16(),
                message: error_message(&text),
                request_id,
            });
        }
        if text.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| ClientError::Transport(format!("the answer is not JSON: {error}")))
    }

    /// `GET path` (`path` starts with `/v1/`).
    pub async fn get(&self, path: &str) -> ClientResult<Value> {
        Ok(self
            .request(Method::GET, path, None)
            .await?
            .unwrap_or(Value::Null))
    }

    /// Lists a collection, following `next` links until `limit` items (all when None).
    pub async fn list(
        &self,
        collection: &str,
        key: &str,
        limit: Option<usize>,
        sort_key: Option<&str>,
        sort_dir: Option<&str>,
    ) -> ClientResult<Vec<Value>> {
        let mut query = Vec::new();
        if let Some(sort_key) = sort_key {
            query.push(format!("sort_key={sort_key}"));
        }
        if let Some(sort_dir) = sort_dir {
            query.push(format!("sort_dir={sort_dir}"));
        }
        self.list_with_query(collection, key, limit, &query).await
    }

    /// Lists a collection with extra `name=value` query terms (marker, all_tenants, …),
    /// following `next` links until `limit` items (all when None).
    pub async fn list_with_query(
        &self,
        collection: &str,
        key: &str,
        limit: Option<usize>,
        extra_query: &[String],
    ) -> ClientResult<Vec<Value>> {
        let mut query = Vec::new();
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        query.extend(extra_query.iter().cloned());
        let mut path = format!("/v1/{collection}");
        if !query.is_empty() {
            path = format!("{path}?{}", query.join("&"));
        }
        let mut items = Vec::new();
        loop {
            let page = self.get(&path).await?;
            items.extend(page[key].as_array().cloned().unwrap_or_default());
            if limit.is_some_and(|limit| items.len() >= limit) {
                items.truncate(limit.unwrap_or(usize::MAX));
                break;
            }
            match page["next"].as_str() {
                Some(next) => {
                    let start = next.find("/v1/").unwrap_or(0);
                    path = next[start..].to_string();
                }
                None => break,
            }
        }
        Ok(items)
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Option<&Value>) -> ClientResult<Value> {
        Ok(self
            .request(Method::POST, path, body)
            .await?
            .unwrap_or(Value::Null))
    }

    /// `PATCH path` with an optional JSON body.
    pub async fn patch(&self, path: &str, body: Option<&Value>) -> ClientResult<Value> {
        Ok(self
            .request(Method::PATCH, path, body)
            .await?
            .unwrap_or(Value::Null))
    }

    pub async fn show(&self, collection: &str, ident: &str) -> ClientResult<Value> {
        self.get(&format!("/v1/{collection}/{ident}")).await
    }

    pub async fn create(&self, collection: &str, body: &Value) -> ClientResult<Value> {
        Ok(self
            .request(Method::POST, &format!("/v1/{collection}"), Some(body))
            .await?
            .unwrap_or(Value::Null))
    }

    pub async fn update(
        &self,
        collection: &str,
        ident: &str,
        patch: &Value,
    ) -> ClientResult<Value> {
        Ok(self
            .request(
                Method::PATCH,
                &format!("/v1/{collection}/{ident}"),
                Some(patch),
            )
            .await?
            .unwrap_or(Value::Null))
    }

    pub async fn delete(&self, collection: &str, ident: &str) -> ClientResult<()> {
        self.request(Method::DELETE, &format!("/v1/{collection}/{ident}"), None)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_of_all_three_formats() {
        assert_eq!(
            error_message(
                r#"{"errors":[{"title":"Unable to find flavor m1","detail":"Unable to find flavor m1.nope."}]}"#
            ),
            "Unable to find flavor m1.nope"
        );
        assert_eq!(
            error_message(
                r#"{"error_message":"{\"faultstring\": \"Baymodel x could not be found.\", \"faultcode\": \"Client\"}"}"#
            ),
            "Baymodel x could not be found."
        );
        assert_eq!(
            error_message(r#"{"error":{"code":401,"message":"denied"}}"#),
            "denied"
        );
        assert_eq!(error_message("plain text"), "plain text");
    }

    #[test]
    fn urls_are_normalised() {
        assert_eq!(api_root("http://h:9511/v1/"), "http://h:9511");
        assert_eq!(api_root("http://h:9511"), "http://h:9511");
        assert_eq!(identity_v3("http://h:5000"), "http://h:5000/v3");
        assert_eq!(identity_v3("http://h:5000/v3/"), "http://h:5000/v3");
    }

    #[test]
    fn catalog_lookup_honours_interface_and_region() {
        let token = json!({"token": {"catalog": [{"type": "container-infra", "endpoints": [
            {"interface": "public", "region": "RegionOne", "url": "http://one/v1"},
            {"interface": "public", "region": "RegionTwo", "url": "http://two/v1"},
            {"interface": "internal", "region": "RegionOne", "url": "http://internal/v1"}]}]}});
        assert_eq!(
            endpoint_from_catalog(&token, "public", None).unwrap(),
            "http://one/v1"
        );
        assert_eq!(
            endpoint_from_catalog(&token, "public", Some("RegionTwo")).unwrap(),
            "http://two/v1"
        );
        assert_eq!(
            endpoint_from_catalog(&token, "internal", None).unwrap(),
            "http://internal/v1"
        );
        assert!(endpoint_from_catalog(&token, "admin", None).is_err());
    }

    #[test]
    fn password_body_uses_names_or_ids() {
        let auth = PasswordAuth {
            auth_url: "http://k/v3".to_string(),
            username: Some("admin".to_string()),
            password: "pw".to_string(),
            user_domain_name: Some("Default".to_string()),
            project_name: Some("admin".to_string()),
            project_domain_name: Some("Default".to_string()),
            interface: "public".to_string(),
            ..PasswordAuth::default()
        };
        let body = auth.request_body().unwrap();
        assert_eq!(
            body.pointer("/auth/identity/password/user/domain/name")
                .unwrap(),
            "Default"
        );
        assert_eq!(body.pointer("/auth/scope/project/name").unwrap(), "admin");
        assert!(!format!("{auth:?}").contains("pw\""));
    }
}
