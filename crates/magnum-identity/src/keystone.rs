//! Token validation against a real Keystone (`[api] auth_strategy = keystone`).
//!
//! The API keeps a service token (password authentication with `[keystone_authtoken]`'s
//! service user), asks Keystone about each new user token with `GET /v3/auth/tokens`, and
//! caches the answer for at most `token_cache_time` seconds (never past the token's expiry).
//! A token Keystone refused is remembered as invalid for [`INVALID_TOKEN_CACHE_SECONDS`], so
//! a client repeating a bad token does not make every request a Keystone call. No lock is
//! held while Keystone is asked.

use crate::context::RequestContext;
use chrono::{DateTime, Utc};
use magnum_config::KeystoneAuthtokenSection;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Why Keystone did not vouch for a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeystoneError {
    #[error("the token is not valid")]
    InvalidToken,
    #[error("the token is not scoped to a project")]
    Unscoped,
    #[error("Keystone could not be reached or refused the service credentials: {0}")]
    Unavailable(String),
}

/// How long a token Keystone refused is answered 401 without asking again.
pub const INVALID_TOKEN_CACHE_SECONDS: i64 = 10;

#[derive(Debug, Clone)]
struct CachedToken {
    context: RequestContext,
    valid_until: DateTime<Utc>,
}

/// Validates user tokens with a Keystone endpoint.
#[derive(Debug)]
pub struct KeystoneValidator {
    client: reqwest::Client,
    auth_url: String,
    settings: KeystoneAuthtokenSection,
    service_token: Mutex<Option<(String, DateTime<Utc>)>>,
    cache: Mutex<HashMap<[u8; 32], CachedToken>>,
    /// Tokens Keystone refused, until when they are answered 401 without asking.
    invalid: Mutex<HashMap<[u8; 32], DateTime<Utc>>>,
}

/// The v3 base of an auth URL (`http://host:5000` and `http://host:5000/v3/` both give
/// `http://host:5000/v3`).
pub fn v3_url(auth_url: &str) -> String {
    let trimmed = auth_url.trim_end_matches('/');
    if trimmed.ends_with("/v3") {
        trimmed.to_string()
    } else {
        format!("{trimmed}/v3")
    }
}

fn parse_timestamp(value: Option<&Value>) -> Option<DateTime<Utc>> {
    value
        .and_then(Value::as_str)
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|at| at.with_timezone(&Utc))
}

/// Builds a request context from a Keystone token body.
pub fn context_from_token_body(
    body: &Value,
) -> Result<(RequestContext, DateTime<Utc>), KeystoneError> {
    let token = body.get("token").ok_or(KeystoneError::InvalidToken)?;
    let text = |pointer: &str| {
        token
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let project_id = text("/project/id").ok_or(KeystoneError::Unscoped)?;
    let user_id = text("/user/id").ok_or(KeystoneError::InvalidToken)?;
    let roles = token
        .get("roles")
        .and_then(Value::as_array)
        .map(|roles| {
            roles
                .iter()
                .filter_map(|role| role.get("name").and_then(Value::as_str))
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default();
    let expires_at = parse_timestamp(token.get("expires_at")).ok_or(KeystoneError::InvalidToken)?;
    Ok((
        RequestContext {
            user_id,
            user_name: text("/user/name"),
            user_domain_id: text("/user/domain/id"),
            project_id,
            project_name: text("/project/name"),
            roles,
            trust_id: text("/OS-TRUST:trust/id"),
        },
        expires_at,
    ))
}

impl KeystoneValidator {
    pub fn new(settings: KeystoneAuthtokenSection) -> Result<KeystoneValidator, String> {
        let auth_url = settings
            .auth_url
            .clone()
            .ok_or("[keystone_authtoken] auth_url is required")?;
        // No idle connections kept: Keystone behind a WSGI server that closes each
        // connection after its answer (uwsgi's HTTP socket) would reset a reused one.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
        Ok(KeystoneValidator {
            client,
            auth_url: v3_url(&auth_url),
            settings,
            service_token: Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
            invalid: Mutex::new(HashMap::new()),
        })
    }

    /// The URL advertised in `WWW-Authenticate` answers.
    pub fn www_authenticate_uri(&self) -> String {
        self.settings
            .www_authenticate_uri
            .clone()
            .unwrap_or_else(|| self.auth_url.clone())
    }

    async fn service_token(&self, force_refresh: bool) -> Result<String, KeystoneError> {
        if !force_refresh {
            let cached = self
                .service_token
                .lock()
                .ok()
                .and_then(|guard| guard.clone());
            if let Some((token, expires_at)) = cached {
                if expires_at - chrono::Duration::seconds(60) > Utc::now() {
                    return Ok(token);
                }
            }
        }
        // Asked without a lock held: several requests may refresh at once, which costs a few
        // extra logins but never makes requests wait on one another's call.
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.settings.username,
                "domain": {"name": self.settings.user_domain_name},
                "password": self.settings.password.as_ref().map(|secret| secret.expose()).unwrap_or_default()}}},
            "scope": {"project": {"name": self.settings.project_name,
                                  "domain": {"name": self.settings.project_domain_name}}}}});
        let response = self
            .client
            .post(format!("{}/auth/tokens", self.auth_url))
            .json(&body)
            .send()
            .await
            .map_err(|error| KeystoneError::Unavailable(error.to_string()))?;
        if response.status() != reqwest::StatusCode::CREATED {
            return Err(KeystoneError::Unavailable(format!(
                "service user authentication answered {}",
                response.status()
            )));
        }
        let token = response
            .headers()
            .get("X-Subject-Token")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                KeystoneError::Unavailable("no X-Subject-Token in the answer".to_string())
            })?;
        let body: Value = response
            .json()
            .await
            .map_err(|error| KeystoneError::Unavailable(error.to_string()))?;
        let expires_at = parse_timestamp(body.pointer("/token/expires_at"))
            .unwrap_or_else(|| Utc::now() + chrono::Duration::minutes(5));
        if let Ok(mut guard) = self.service_token.lock() {
            *guard = Some((token.clone(), expires_at));
        }
        Ok(token)
    }

    fn cache_key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// Validates a user token, from the cache when possible.
    pub async fn validate(&self, user_token: &str) -> Result<RequestContext, KeystoneError> {
        let key = Self::cache_key(user_token);
        let now = Utc::now();
        if let Ok(cache) = self.cache.lock() {
            if let Some(cached) = cache.get(&key) {
                if cached.valid_until > now {
                    return Ok(cached.context.clone());
                }
            }
        }
        if let Ok(invalid) = self.invalid.lock() {
            if invalid.get(&key).is_some_and(|until| *until > now) {
                return Err(KeystoneError::InvalidToken);
            }
        }
        let answer = self.ask_keystone(user_token, key, now).await;
        if answer == Err(KeystoneError::InvalidToken) {
            self.remember_invalid(key, now);
        }
        answer
    }

    /// Remembers a refused token for a short while (the map is bounded like the cache).
    fn remember_invalid(&self, key: [u8; 32], now: DateTime<Utc>) {
        if let Ok(mut invalid) = self.invalid.lock() {
            let limit = self.settings.token_cache_size.max(1);
            if invalid.len() >= limit {
                invalid.retain(|_, until| *until > now);
                if invalid.len() >= limit {
                    invalid.clear();
                }
            }
            invalid.insert(
                key,
                now + chrono::Duration::seconds(INVALID_TOKEN_CACHE_SECONDS),
            );
        }
    }

    async fn ask_keystone(
        &self,
        user_token: &str,
        key: [u8; 32],
        now: DateTime<Utc>,
    ) -> Result<RequestContext, KeystoneError> {
        let mut refreshed = false;
        loop {
            let service_token = self.service_token(refreshed).await?;
            let response = self
                .client
                .get(format!("{}/auth/tokens", self.auth_url))
                .header("X-Auth-Token", service_token)
                .header("X-Subject-Token", user_token)
                .send()
                .await
                .map_err(|error| KeystoneError::Unavailable(error.to_string()))?;
            match response.status() {
                reqwest::StatusCode::OK => {
                    let body: Value = response
                        .json()
                        .await
                        .map_err(|error| KeystoneError::Unavailable(error.to_string()))?;
                    let (context, expires_at) = context_from_token_body(&body)?;
                    if expires_at <= now {
                        return Err(KeystoneError::InvalidToken);
                    }
                    let valid_until = expires_at.min(
                        now + chrono::Duration::seconds(
                            i64::try_from(self.settings.token_cache_time).unwrap_or(300),
                        ),
                    );
                    self.remember(key, context.clone(), valid_until, now);
                    return Ok(context);
                }
                reqwest::StatusCode::UNAUTHORIZED if !refreshed => refreshed = true,
                reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::UNAUTHORIZED => {
                    return Err(KeystoneError::InvalidToken)
                }
                other => {
                    return Err(KeystoneError::Unavailable(format!(
                        "token validation answered {other}"
                    )))
                }
            }
        }
    }

    fn remember(
        &self,
        key: [u8; 32],
        context: RequestContext,
        valid_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= self.settings.token_cache_size.max(1) {
                cache.retain(|_, cached| cached.valid_until > now);
                if cache.len() >= self.settings.token_cache_size.max(1) {
                    cache.clear();
                }
            }
            cache.insert(
                key,
                CachedToken {
                    context,
                    valid_until,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_url_normalises() {
        assert_eq!(v3_url("http://k:5000"), "http://k:5000/v3");
        assert_eq!(v3_url("http://k:5000/v3/"), "http://k:5000/v3");
        assert_eq!(v3_url("http://k/identity/v3"), "http://k/identity/v3");
    }

    #[test]
    fn context_comes_from_the_token_body() {
        let body = json!({"token": {"user": {"id": "u", "name": "alice", "domain": {"id": "default"}},
            "project": {"id": "p", "name": "demo"}, "roles": [{"id": "1", "name": "Member"}],
            "expires_at": "2030-01-01T00:00:00.000000Z"}});
        let (context, expires_at) = context_from_token_body(&body).unwrap();
        assert_eq!(context.project_id, "p");
        assert_eq!(context.roles, vec!["member"]);
        assert_eq!(expires_at.to_rfc3339(), "2030-01-01T00:00:00+00:00");
        assert_eq!(context.trust_id, None);
        let mut trusted = body.clone();
        trusted["token"]["OS-TRUST:trust"] = json!({"id": "t1", "impersonation": true});
        let (context, _) = context_from_token_body(&trusted).unwrap();
        assert_eq!(context.trust_id.as_deref(), Some("t1"));
        let unscoped =
            json!({"token": {"user": {"id": "u"}, "expires_at": "2030-01-01T00:00:00Z"}});
        assert_eq!(
            context_from_token_body(&unscoped).unwrap_err(),
            KeystoneError::Unscoped
        );
    }
}
