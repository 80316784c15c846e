//! Keystone v3 as a client: authenticating (password or token, scoped to a project, a
//! domain or a trust), keeping a token fresh in a [`Session`], and the few identity calls
//! the OpenStack provider makes for a cluster (its trustee user and the trust to it).

use crate::catalog::Catalog;
use crate::OpenStackError;
use chrono::{DateTime, Utc};
use magnum_config::Secret;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

const SERVICE: &str = "keystone";

/// How long before its expiry a session's token is replaced.
const REFRESH_MARGIN_SECONDS: i64 = 120;

/// A user, project or domain named by id, or by name within a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameOrId {
    Id(String),
    /// A name within a domain (itself named by id or name; a domain's own name needs none).
    Name {
        name: String,
        domain: Option<Box<NameOrId>>,
    },
}

impl NameOrId {
    pub fn id(id: &str) -> NameOrId {
        NameOrId::Id(id.to_string())
    }

    /// A name in the domain named `domain`.
    pub fn named(name: &str, domain: &str) -> NameOrId {
        NameOrId::Name {
            name: name.to_string(),
            domain: Some(Box::new(NameOrId::Name {
                name: domain.to_string(),
                domain: None,
            })),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            NameOrId::Id(id) => json!({ "id": id }),
            NameOrId::Name { name, domain } => {
                let mut object = json!({ "name": name });
                if let Some(domain) = domain {
                    object["domain"] = domain.to_json();
                }
                object
            }
        }
    }
}

/// How a request proves who it is.
#[derive(Debug, Clone)]
pub enum AuthMethod {
    Password { user: NameOrId, password: Secret },
    Token(Secret),
}

/// What a token is good for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Project(NameOrId),
    Domain(NameOrId),
    /// Acting as a trust's trustor, within the trust's project and roles.
    Trust(String),
    Unscoped,
}

/// One authentication: a method and a scope.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub method: AuthMethod,
    pub scope: Scope,
}

impl AuthRequest {
    fn to_json(&self) -> Value {
        let identity = match &self.method {
            AuthMethod::Password { user, password } => {
                let mut user = user.to_json();
                user["password"] = Value::String(password.expose().to_string());
                json!({"methods": ["password"], "password": {"user": user}})
            }
            AuthMethod::Token(token) => {
                json!({"methods": ["token"], "token": {"id": token.expose()}})
            }
        };
        let mut auth = json!({ "identity": identity });
        match &self.scope {
            Scope::Project(project) => auth["scope"] = json!({"project": project.to_json()}),
            Scope::Domain(domain) => auth["scope"] = json!({"domain": domain.to_json()}),
            Scope::Trust(trust_id) => auth["scope"] = json!({"OS-TRUST:trust": {"id": trust_id}}),
            Scope::Unscoped => {}
        }
        json!({ "auth": auth })
    }
}

/// An issued token with what Keystone said of it.
#[derive(Clone)]
pub struct Token {
    value: Secret,
    pub expires_at: DateTime<Utc>,
    pub user_id: String,
    pub project_id: Option<String>,
    pub domain_id: Option<String>,
    pub roles: Vec<String>,
    pub catalog: Catalog,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("value", &"***")
            .field("expires_at", &self.expires_at)
            .field("user_id", &self.user_id)
            .field("project_id", &self.project_id)
            .field("domain_id", &self.domain_id)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// The token itself, for an `X-Auth-Token` header; never log it.
    pub fn expose(&self) -> &str {
        self.value.expose()
    }

    fn from_answer(value: String, body: &Value) -> Result<Token, OpenStackError> {
        let text = |pointer: &str| body.pointer(pointer).and_then(Value::as_str);
        let expires_at = text("/token/expires_at")
            .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
            .map(|at| at.with_timezone(&Utc))
            .ok_or_else(|| malformed("a token without a readable expires_at"))?;
        let user_id = text("/token/user/id")
            .ok_or_else(|| malformed("a token without a user"))?
            .to_string();
        let roles = body
            .pointer("/token/roles")
            .and_then(Value::as_array)
            .map(|roles| {
                roles
                    .iter()
                    .filter_map(|role| role.get("name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Token {
            value: Secret::new(value),
            expires_at,
            user_id,
            project_id: text("/token/project/id").map(str::to_string),
            domain_id: text("/token/domain/id").map(str::to_string),
            roles,
            catalog: Catalog::from_token_body(body)?,
        })
    }
}

fn malformed(what: &str) -> OpenStackError {
    OpenStackError::Malformed(format!("Keystone answered {what}"))
}

/// A Keystone v3 endpoint.
#[derive(Debug, Clone)]
pub struct Keystone {
    http: reqwest::Client,
    v3_url: String,
}

/// What a trust grants (Keystone's `POST /v3/OS-TRUST/trusts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustRequest {
    pub trustor_user_id: String,
    pub trustee_user_id: String,
    pub project_id: String,
    pub roles: Vec<String>,
    pub impersonation: bool,
    /// Whether the trustee may pass the trust on (Heat does: it makes its own trust for
    /// the stacks it is asked to build with a trust-scoped token).
    pub allow_redelegation: bool,
}

impl Keystone {
    /// `auth_url` as operators write it: with or without `/v3`.
    pub fn new(http: reqwest::Client, auth_url: &str) -> Keystone {
        Keystone {
            http,
            v3_url: v3_url(auth_url),
        }
    }

    pub fn v3_url(&self) -> &str {
        &self.v3_url
    }

    /// Authenticates; Keystone's refusal (wrong password, unknown trust) is
    /// [`OpenStackError::Refused`] with its status.
    pub async fn authenticate(&self, request: &AuthRequest) -> Result<Token, OpenStackError> {
        let response = self
            .http
            .post(format!("{}/auth/tokens", self.v3_url))
            .json(&request.to_json())
            .send()
            .await
            .map_err(|error| OpenStackError::unreachable(SERVICE, &error))?;
        if !response.status().is_success() {
            return Err(OpenStackError::from_response(SERVICE, response).await);
        }
        let value = response
            .headers()
            .get("X-Subject-Token")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| malformed("a token answer without X-Subject-Token"))?;
        let body: Value = response
            .json()
            .await
            .map_err(|error| OpenStackError::unreachable(SERVICE, &error))?;
        Token::from_answer(value, &body)
    }

    async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Option<Value>, OpenStackError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.v3_url))
            .header("X-Auth-Token", token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| OpenStackError::unreachable(SERVICE, &error))?;
        if !response.status().is_success() {
            return Err(OpenStackError::from_response(SERVICE, response).await);
        }
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        response
            .json()
            .await
            .map(Some)
            .map_err(|error| OpenStackError::unreachable(SERVICE, &error))
    }

    /// The id of the domain named `name`.
    pub async fn domain_id(&self, token: &str, name: &str) -> Result<String, OpenStackError> {
        let answer = self
            .call(
                token,
                reqwest::Method::GET,
                &format!("/domains?name={}", query_value(name)),
                None,
            )
            .await?
            .unwrap_or_default();
        answer
            .pointer("/domains/0/id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| OpenStackError::Refused {
                service: SERVICE,
                status: 404,
                message: format!("Could not find domain: {name}."),
            })
    }

    /// Creates an enabled user; returns its id.
    pub async fn create_user(
        &self,
        token: &str,
        domain_id: &str,
        name: &str,
        password: &Secret,
    ) -> Result<String, OpenStackError> {
        let answer = self
            .call(
                token,
                reqwest::Method::POST,
                "/users",
                Some(json!({"user": {"name": name, "domain_id": domain_id,
                                     "password": password.expose(), "enabled": true}})),
            )
            .await?
            .unwrap_or_default();
        answer
            .pointer("/user/id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| malformed("a created user without an id"))
    }

    /// Deletes a user; one already gone is not an error.
    pub async fn delete_user(&self, token: &str, user_id: &str) -> Result<(), OpenStackError> {
        self.delete(token, &format!("/users/{}", path_segment(user_id)))
            .await
    }

    /// Creates a trust with the trustor's own token; returns its id.
    pub async fn create_trust(
        &self,
        trustor_token: &str,
        trust: &TrustRequest,
    ) -> Result<String, OpenStackError> {
        let roles: Vec<Value> = trust
            .roles
            .iter()
            .map(|name| json!({"name": name}))
            .collect();
        let answer = self
            .call(
                trustor_token,
                reqwest::Method::POST,
                "/OS-TRUST/trusts",
                Some(json!({"trust": {
                    "trustor_user_id": trust.trustor_user_id,
                    "trustee_user_id": trust.trustee_user_id,
                    "project_id": trust.project_id,
                    "impersonation": trust.impersonation,
                    "allow_redelegation": trust.allow_redelegation,
                    "roles": roles}})),
            )
            .await?
            .unwrap_or_default();
        answer
            .pointer("/trust/id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| malformed("a created trust without an id"))
    }

    /// Deletes a trust; one already gone is not an error.
    pub async fn delete_trust(&self, token: &str, trust_id: &str) -> Result<(), OpenStackError> {
        self.delete(
            token,
            &format!("/OS-TRUST/trusts/{}", path_segment(trust_id)),
        )
        .await
    }

    async fn delete(&self, token: &str, path: &str) -> Result<(), OpenStackError> {
        match self.call(token, reqwest::Method::DELETE, path, None).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_not_found() => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// The v3 API of an auth URL written with or without `/v3` (and a trailing slash).
pub fn v3_url(auth_url: &str) -> String {
    let trimmed = auth_url.trim_end_matches('/');
    if trimmed.ends_with("/v3") {
        trimmed.to_string()
    } else {
        format!("{trimmed}/v3")
    }
}

/// A value made safe for a query string.
pub fn query_value(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// A value made safe for one path segment (dots too, so that `..` cannot climb).
pub fn path_segment(value: &str) -> String {
    query_value(value).replace('.', "%2E")
}

/// A token kept fresh: the first call authenticates, later calls reuse the token until
/// shortly before it expires. No lock is held while Keystone is asked (two callers may
/// both refresh; neither waits on the other's call).
#[derive(Debug)]
pub struct Session {
    keystone: Keystone,
    request: AuthRequest,
    current: Mutex<Option<Arc<Token>>>,
}

impl Session {
    pub fn new(keystone: Keystone, request: AuthRequest) -> Session {
        Session {
            keystone,
            request,
            current: Mutex::new(None),
        }
    }

    pub fn keystone(&self) -> &Keystone {
        &self.keystone
    }

    /// A token valid for at least a little while.
    pub async fn token(&self) -> Result<Arc<Token>, OpenStackError> {
        let margin = chrono::Duration::seconds(REFRESH_MARGIN_SECONDS);
        if let Some(token) = self.current.lock().ok().and_then(|current| current.clone()) {
            if token.expires_at - margin > Utc::now() {
                return Ok(token);
            }
        }
        let token = Arc::new(self.keystone.authenticate(&self.request).await?);
        if let Ok(mut current) = self.current.lock() {
            *current = Some(token.clone());
        }
        Ok(token)
    }

    /// Forgets the current token (after a service answered 401 to it).
    pub fn invalidate(&self) {
        if let Ok(mut current) = self.current.lock() {
            *current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_shaped_as_keystone_expects() {
        let password = AuthRequest {
            method: AuthMethod::Password {
                user: NameOrId::named("magnum", "Default"),
                password: Secret::new("s3cret"),
            },
            scope: Scope::Project(NameOrId::named("service", "Default")),
        };
        assert_eq!(
            password.to_json(),
            json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": "magnum", "domain": {"name": "Default"}, "password": "s3cret"}}},
                "scope": {"project": {"name": "service", "domain": {"name": "Default"}}}}})
        );
        let trust = AuthRequest {
            method: AuthMethod::Password {
                user: NameOrId::id("u1"),
                password: Secret::new("p"),
            },
            scope: Scope::Trust("t1".to_string()),
        };
        assert_eq!(
            trust.to_json()["auth"]["scope"],
            json!({"OS-TRUST:trust": {"id": "t1"}})
        );
        let token = AuthRequest {
            method: AuthMethod::Token(Secret::new("tok")),
            scope: Scope::Unscoped,
        };
        assert_eq!(
            token.to_json(),
            json!({"auth": {"identity": {"methods": ["token"], "token": {"id": "tok"}}}})
        );
        assert!(!format!("{password:?}").contains("s3cret"));
    }

    #[test]
    fn auth_urls_are_read_with_or_without_v3() {
        let http = reqwest::Client::new();
        assert_eq!(
            Keystone::new(http.clone(), "http://k:5000").v3_url(),
            "http://k:5000/v3"
        );
        assert_eq!(
            Keystone::new(http, "http://k:5000/v3/").v3_url(),
            "http://k:5000/v3"
        );
    }

    #[test]
    fn values_are_escaped_for_urls() {
        assert_eq!(query_value("a b&c/d"), "a%20b%26c%2Fd");
        assert_eq!(path_segment("../x"), "%2E%2E%2Fx");
    }
}
