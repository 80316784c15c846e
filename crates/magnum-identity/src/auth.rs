//! Turning a request's headers into a [`RequestContext`], per `[api] auth_strategy`.

use crate::context::RequestContext;
use crate::keystone::{KeystoneError, KeystoneValidator};
use crate::revocation::RevocationList;
use crate::token::{TokenError, TokenSigner};
use chrono::Utc;
use http::HeaderMap;

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("The request you have made requires authentication.")]
    MissingToken,
    #[error("The request you have made requires authentication: {0}.")]
    InvalidToken(String),
    #[error("The token is not scoped to a project.")]
    Unscoped,
    /// The identity service cannot be asked; the reason is logged, never shown (it may name
    /// internal addresses).
    #[error("Authentication is unavailable; try again later.")]
    Unavailable(String),
}

/// `noauth`: who a request is when it carries no identity headers.
#[derive(Debug, Clone)]
pub struct NoauthDefaults {
    pub user_id: String,
    pub project_id: String,
    pub roles: Vec<String>,
}

/// The configured way of authenticating API requests.
#[derive(Debug)]
pub enum Authenticator {
    /// Tokens of the built-in identity, checked locally with the signing key.
    Builtin {
        signer: TokenSigner,
        revocations: RevocationList,
    },
    /// Tokens validated by a real Keystone.
    Keystone(Box<KeystoneValidator>),
    /// Identity headers trusted as sent. Development only.
    Noauth(NoauthDefaults),
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

impl Authenticator {
    /// Authenticates one request.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<RequestContext, AuthError> {
        match self {
            Authenticator::Builtin {
                signer,
                revocations,
            } => {
                let token = header(headers, "X-Auth-Token").ok_or(AuthError::MissingToken)?;
                let claims = signer
                    .verify(token, Utc::now())
                    .map_err(|error| match error {
                        TokenError::Expired => {
                            AuthError::InvalidToken("the token has expired".to_string())
                        }
                        other => AuthError::InvalidToken(other.to_string()),
                    })?;
                if revocations.is_token_revoked(&claims) {
                    return Err(AuthError::InvalidToken(TokenError::Revoked.to_string()));
                }
                let project_id = claims.project_id.ok_or(AuthError::Unscoped)?;
                Ok(RequestContext {
                    user_id: claims.user_id,
                    user_name: Some(claims.user_name),
                    user_domain_id: Some(claims.user_domain_id),
                    project_id,
                    project_name: claims.project_name,
                    roles: claims
                        .roles
                        .into_iter()
                        .map(|(_, name)| name.to_ascii_lowercase())
                        .collect(),
                    trust_id: None,
                })
            }
            Authenticator::Keystone(validator) => {
                let token = header(headers, "X-Auth-Token").ok_or(AuthError::MissingToken)?;
                validator
                    .validate(token)
                    .await
                    .map_err(|error| match error {
                        KeystoneError::InvalidToken => {
                            AuthError::InvalidToken("the token is not valid".to_string())
                        }
                        KeystoneError::Unscoped => AuthError::Unscoped,
                        KeystoneError::Unavailable(reason) => AuthError::Unavailable(reason),
                    })
            }
            Authenticator::Noauth(defaults) => {
                let roles = header(headers, "X-Roles")
                    .map(|roles| {
                        roles
                            .split(',')
                            .map(|role| role.trim().to_ascii_lowercase())
                            .filter(|role| !role.is_empty())
                            .collect()
                    })
                    .unwrap_or_else(|| defaults.roles.clone());
                Ok(RequestContext {
                    user_id: header(headers, "X-User-Id")
                        .unwrap_or(&defaults.user_id)
                        .to_string(),
                    user_name: header(headers, "X-User-Name").map(str::to_string),
                    user_domain_id: header(headers, "X-User-Domain-Id").map(str::to_string),
                    project_id: header(headers, "X-Project-Id")
                        .unwrap_or(&defaults.project_id)
                        .to_string(),
                    project_name: header(headers, "X-Project-Name").map(str::to_string),
                    roles,
                    trust_id: None,
                })
            }
        }
    }

    /// The value of `WWW-Authenticate` on 401 answers.
    pub fn www_authenticate(&self, builtin_identity_url: Option<&str>) -> Option<String> {
        match self {
            Authenticator::Builtin { .. } => {
                builtin_identity_url.map(|url| format!("Keystone uri=\"{url}\""))
            }
            Authenticator::Keystone(validator) => Some(format!(
                "Keystone uri=\"{}\"",
                validator.www_authenticate_uri()
            )),
            Authenticator::Noauth(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{new_audit_id, TokenClaims};
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn claims(project: Option<&str>) -> TokenClaims {
        let now = Utc::now();
        TokenClaims {
            user_id: "u".to_string(),
            user_name: "alice".to_string(),
            user_domain_id: "default".to_string(),
            project_id: project.map(str::to_string),
            project_name: project.map(str::to_string),
            project_domain_id: project.map(|_| "default".to_string()),
            roles: vec![("1".to_string(), "Member".to_string())],
            methods: vec!["password".to_string()],
            audit_id: new_audit_id(),
            audit_chain: None,
            issued_at_micros: now.timestamp_micros(),
            expires_at_micros: (now + chrono::Duration::hours(1)).timestamp_micros(),
        }
    }

    #[tokio::test]
    async fn builtin_checks_signature_scope_and_revocation() {
        let signer = TokenSigner::new(&[3u8; 32]).unwrap();
        let revocations = RevocationList::default();
        let authenticator = Authenticator::Builtin {
            signer: signer.clone(),
            revocations: revocations.clone(),
        };
        assert_eq!(
            authenticator.authenticate(&HeaderMap::new()).await,
            Err(AuthError::MissingToken)
        );
        let scoped = signer.sign(&claims(Some("p")));
        let context = authenticator
            .authenticate(&headers(&[("X-Auth-Token", &scoped)]))
            .await
            .unwrap();
        assert_eq!(context.project_id, "p");
        assert!(context.has_role("member"));
        let unscoped = signer.sign(&claims(None));
        assert_eq!(
            authenticator
                .authenticate(&headers(&[("X-Auth-Token", &unscoped)]))
                .await,
            Err(AuthError::Unscoped)
        );
        assert!(authenticator
            .authenticate(&headers(&[("X-Auth-Token", "notused")]))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn noauth_trusts_headers_and_falls_back_to_defaults() {
        let authenticator = Authenticator::Noauth(NoauthDefaults {
            user_id: "dev".to_string(),
            project_id: "devproject".to_string(),
            roles: vec!["admin".to_string()],
        });
        let defaulted = authenticator
            .authenticate(&headers(&[("X-Auth-Token", "notused")]))
            .await
            .unwrap();
        assert_eq!(
            (defaulted.user_id.as_str(), defaulted.project_id.as_str()),
            ("dev", "devproject")
        );
        assert!(defaulted.has_role("admin"));
        let explicit = authenticator
            .authenticate(&headers(&[
                ("X-User-Id", "u2"),
                ("X-Project-Id", "p2"),
                ("X-Roles", "Reader, member"),
            ]))
            .await
            .unwrap();
        assert_eq!(explicit.project_id, "p2");
        assert_eq!(explicit.roles, vec!["reader", "member"]);
    }
}
