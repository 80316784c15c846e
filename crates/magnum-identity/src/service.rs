//! The built-in identity: authenticating users, issuing, checking and revoking tokens, and
//! rendering them in Keystone v3's JSON shape with the service catalog.

use crate::password::verify_password;
use crate::revocation::RevocationList;
use crate::token::{new_audit_id, TokenClaims, TokenError, TokenSigner};
use chrono::{DateTime, Duration, Utc};
use magnum_db::identity::{IdentityProject, IdentityUser};
use magnum_db::{Database, DbError};
use serde_json::{json, Value};

/// The only domain of the built-in identity.
pub const DEFAULT_DOMAIN_ID: &str = "default";
pub const DEFAULT_DOMAIN_NAME: &str = "Default";

/// Roles that imply others, as Keystone's bootstrap sets them up: admin ⇒ member ⇒ reader.
const IMPLIED_ROLES: [(&str, &str); 2] = [("admin", "member"), ("member", "reader")];

/// Where the catalog sends clients.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The identity endpoint, ending in /v3.
    pub identity_url: String,
    /// The Magnum API, ending in /v1.
    pub magnum_url: String,
    pub region: String,
}

impl Catalog {
    /// The catalog in Keystone's token format.
    pub fn to_json(&self) -> Value {
        let endpoint = |id: &str, interface: &str, url: &str| {
            json!({"id": id, "interface": interface, "region": self.region,
                   "region_id": self.region, "url": url})
        };
        json!([
            {"id": "1dentity0000000000000000000000001", "type": "identity", "name": "keystone",
             "endpoints": [
                endpoint("e0000000000000000000000000000001", "public", &self.identity_url),
                endpoint("e0000000000000000000000000000002", "internal", &self.identity_url),
                endpoint("e0000000000000000000000000000003", "admin", &self.identity_url)]},
            {"id": "c0ntainer1nfra000000000000000001", "type": "container-infra", "name": "magnum",
             "endpoints": [
                endpoint("e0000000000000000000000000000011", "public", &self.magnum_url),
                endpoint("e0000000000000000000000000000012", "internal", &self.magnum_url),
                endpoint("e0000000000000000000000000000013", "admin", &self.magnum_url)]}
        ])
    }
}

/// Why an identity request failed, in Keystone's categories.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Malformed request (Keystone 400).
    #[error("{0}")]
    BadRequest(String),
    /// Wrong credentials, unknown user, disabled user, or no access to the project (401).
    #[error("The request you have made requires authentication.")]
    Unauthorized,
    /// Too many wrong passwords: locked out for a while (401, Keystone's `AccountLocked`).
    #[error("The account is locked for user: {0}.")]
    AccountLocked(String),
    /// Too many logins at once (503).
    #[error("Too many logins are being checked at once; try again.")]
    Busy,
    /// Unknown or invalid token on validation (404).
    #[error("Could not find token: {0}")]
    TokenNotFound(String),
    #[error("database error: {0}")]
    Database(#[from] DbError),
}

/// How a user names itself in an authentication request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserReference {
    Id(String),
    Name {
        name: String,
        domain: DomainReference,
    },
}

/// How a domain is named: by id (`default`) or by name (`Default`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainReference {
    Id(String),
    Name(String),
}

impl DomainReference {
    /// The domain id, if the domain exists.
    fn resolve(&self) -> Option<&'static str> {
        match self {
            DomainReference::Id(id) if id == DEFAULT_DOMAIN_ID => Some(DEFAULT_DOMAIN_ID),
            DomainReference::Name(name) if name == DEFAULT_DOMAIN_NAME => Some(DEFAULT_DOMAIN_ID),
            _ => None,
        }
    }
}

/// The project a token should be scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectReference {
    Id(String),
    Name {
        name: String,
        domain: DomainReference,
    },
}

/// Login protection: Keystone's `[security_compliance]` lockout, and how many password
/// checks run at once.
#[derive(Debug, Clone)]
pub struct LoginPolicy {
    /// Wrong passwords in a row after which a user is locked out (None: never).
    pub lockout_failure_attempts: Option<i64>,
    /// How long a lockout lasts after the last wrong password.
    pub lockout_duration: Duration,
    /// Password checks at once.
    pub max_concurrent_checks: usize,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy {
            lockout_failure_attempts: None,
            lockout_duration: Duration::seconds(1800),
            max_concurrent_checks: 4,
        }
    }
}

/// How long a login waits for its turn to check a password before it is answered 503.
const PASSWORD_CHECK_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The built-in identity service.
#[derive(Debug, Clone)]
pub struct IdentityService {
    database: Database,
    signer: TokenSigner,
    revocations: RevocationList,
    catalog: Catalog,
    token_lifetime: Duration,
    login: LoginPolicy,
    /// Turns to run a password check (argon2 takes ~19 MiB and real CPU time each).
    password_checks: std::sync::Arc<tokio::sync::Semaphore>,
}

/// A hash verified against when a user does not exist, so that the answer takes as long as
/// for a wrong password and does not reveal which user names exist.
fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| {
            crate::password::hash_password(&crate::secrets::random_password()).unwrap_or_default()
        })
        .clone()
}

impl IdentityService {
    pub fn new(
        database: Database,
        signer: TokenSigner,
        revocations: RevocationList,
        catalog: Catalog,
        token_lifetime: Duration,
    ) -> Self {
        Self::with_login_policy(
            database,
            signer,
            revocations,
            catalog,
            token_lifetime,
            LoginPolicy::default(),
        )
    }

    pub fn with_login_policy(
        database: Database,
        signer: TokenSigner,
        revocations: RevocationList,
        catalog: Catalog,
        token_lifetime: Duration,
        login: LoginPolicy,
    ) -> Self {
        Self {
            database,
            signer,
            revocations,
            catalog,
            token_lifetime,
            password_checks: std::sync::Arc::new(tokio::sync::Semaphore::new(
                login.max_concurrent_checks.max(1),
            )),
            login,
        }
    }

    /// Whether `user` is locked out now; a lockout that ran out is forgotten.
    async fn is_locked_out(
        &self,
        user: &IdentityUser,
        now: DateTime<Utc>,
    ) -> Result<bool, IdentityError> {
        let Some(attempts) = self.login.lockout_failure_attempts else {
            return Ok(false);
        };
        if user.failed_auth_count < attempts {
            return Ok(false);
        }
        let locked_until = user
            .failed_auth_at
            .map(|at| at + self.login.lockout_duration);
        if locked_until.is_some_and(|until| until > now) {
            return Ok(true);
        }
        self.database.identity().reset_failed_auth(&user.id).await?;
        Ok(false)
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Checks a password and returns the user.
    pub async fn authenticate_password(
        &self,
        user: &UserReference,
        password: &str,
    ) -> Result<IdentityUser, IdentityError> {
        let found = match user {
            UserReference::Id(id) => self.database.identity().user_by_id(id).await,
            UserReference::Name { name, domain } => match domain.resolve() {
                Some(domain_id) => self.database.identity().user_by_name(domain_id, name).await,
                None => Err(DbError::NotFound),
            },
        };
        let found = match found {
            Ok(user) => Some(user),
            Err(DbError::NotFound) => None,
            Err(other) => return Err(other.into()),
        };
        let now = Utc::now();
        if let Some(user) = &found {
            if self.is_locked_out(user, now).await? {
                return Err(IdentityError::AccountLocked(user.id.clone()));
            }
        }
        let stored_hash = found
            .as_ref()
            .map(|user| user.password_hash.clone())
            .unwrap_or_else(dummy_hash);
        let password = password.to_string();
        // Few checks at once: a flood of logins waits (its connections are bounded by the
        // server) instead of taking every core and ~19 MiB per check.
        let turn = tokio::time::timeout(
            PASSWORD_CHECK_QUEUE_WAIT,
            self.password_checks.clone().acquire_owned(),
        )
        .await
        .map_err(|_| IdentityError::Busy)?
        .map_err(|_| IdentityError::Busy)?;
        let matches = tokio::task::spawn_blocking(move || {
            let matches = verify_password(&password, &stored_hash);
            drop(turn);
            matches
        })
        .await
        .unwrap_or(false);
        match found {
            Some(user) if matches && user.enabled => {
                if user.failed_auth_count > 0 {
                    self.database.identity().reset_failed_auth(&user.id).await?;
                }
                Ok(user)
            }
            Some(user) if !matches => {
                self.database
                    .identity()
                    .record_failed_auth(&user.id, now)
                    .await?;
                Err(IdentityError::Unauthorized)
            }
            _ => Err(IdentityError::Unauthorized),
        }
    }

    async fn resolve_project(
        &self,
        project: &ProjectReference,
    ) -> Result<IdentityProject, IdentityError> {
        let found = match project {
            ProjectReference::Id(id) => self.database.identity().project_by_id(id).await,
            ProjectReference::Name { name, domain } => match domain.resolve() {
                Some(domain_id) => {
                    self.database
                        .identity()
                        .project_by_name(domain_id, name)
                        .await
                }
                None => Err(DbError::NotFound),
            },
        };
        match found {
            Ok(project) if project.enabled => Ok(project),
            Ok(_) | Err(DbError::NotFound) => Err(IdentityError::Unauthorized),
            Err(other) => Err(other.into()),
        }
    }

    /// Issues a token for `user`, scoped to `project` (or to the user's default project when
    /// none is named; unscoped if there is none). `expires_at` caps the lifetime (re-scoping
    /// never extends a token).
    pub async fn issue(
        &self,
        user: &IdentityUser,
        project: Option<&ProjectReference>,
        methods: Vec<String>,
        parent: Option<&TokenClaims>,
        now: DateTime<Utc>,
    ) -> Result<(String, TokenClaims), IdentityError> {
        // A token re-scoped from another keeps its expiry and its audit chain.
        let expires_at = parent.map(TokenClaims::expires_at);
        let audit_chain = parent.map(|parent| {
            parent
                .audit_chain
                .clone()
                .unwrap_or_else(|| parent.audit_id.clone())
        });
        let project = match project {
            Some(reference) => Some(self.resolve_project(reference).await?),
            None => match &user.default_project_id {
                Some(id) => self
                    .resolve_project(&ProjectReference::Id(id.clone()))
                    .await
                    .ok(),
                None => None,
            },
        };
        let mut roles = Vec::new();
        if let Some(project) = &project {
            let assigned = self
                .database
                .identity()
                .roles_on_project(&user.id, &project.id)
                .await?;
            if assigned.is_empty() {
                return Err(IdentityError::Unauthorized);
            }
            roles = assigned
                .into_iter()
                .map(|role| (role.id, role.name))
                .collect::<Vec<_>>();
            // Add implied roles, repeatedly, so admin brings member and reader.
            loop {
                let mut added = false;
                for (prior, implied) in IMPLIED_ROLES {
                    let has_prior = roles.iter().any(|(_, name)| name == prior);
                    let has_implied = roles.iter().any(|(_, name)| name == implied);
                    if has_prior && !has_implied {
                        if let Some(role) = self.database.identity().role_by_name(implied).await? {
                            roles.push((role.id, role.name));
                            added = true;
                        }
                    }
                }
                if !added {
                    break;
                }
            }
        }
        let default_expiry = now + self.token_lifetime;
        let expires = expires_at
            .map(|cap| cap.min(default_expiry))
            .unwrap_or(default_expiry);
        let claims = TokenClaims {
            user_id: user.id.clone(),
            user_name: user.name.clone(),
            user_domain_id: user.domain_id.clone(),
            project_id: project.as_ref().map(|p| p.id.clone()),
            project_name: project.as_ref().map(|p| p.name.clone()),
            project_domain_id: project.as_ref().map(|p| p.domain_id.clone()),
            roles,
            methods,
            audit_id: new_audit_id(),
            audit_chain,
            issued_at_micros: now.timestamp_micros(),
            expires_at_micros: expires.timestamp_micros(),
        };
        Ok((self.signer.sign(&claims), claims))
    }

    /// Checks a token: signature, expiry and revocation.
    pub fn check(&self, token: &str, now: DateTime<Utc>) -> Result<TokenClaims, TokenError> {
        let claims = self.signer.verify(token, now)?;
        if self.revocations.is_token_revoked(&claims) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    /// Checks a token for re-use in a token-method request, returning its user.
    pub async fn user_of_token(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(IdentityUser, TokenClaims), IdentityError> {
        let claims = self
            .check(token, now)
            .map_err(|_| IdentityError::Unauthorized)?;
        let user = match self.database.identity().user_by_id(&claims.user_id).await {
            Ok(user) if user.enabled => user,
            Ok(_) | Err(DbError::NotFound) => return Err(IdentityError::Unauthorized),
            Err(other) => return Err(other.into()),
        };
        Ok((user, claims))
    }

    /// Revokes a token until it expires.
    pub async fn revoke(&self, claims: &TokenClaims) -> Result<(), IdentityError> {
        self.revocations
            .revoke(&self.database, &claims.audit_id, claims.expires_at())
            .await?;
        Ok(())
    }

    /// The projects a user may scope to.
    pub async fn projects_of(&self, user_id: &str) -> Result<Vec<IdentityProject>, IdentityError> {
        Ok(self.database.identity().projects_of_user(user_id).await?)
    }

    /// The token body Keystone returns for `POST` and `GET /v3/auth/tokens`.
    pub fn token_body(&self, claims: &TokenClaims, include_catalog: bool) -> Value {
        let timestamp = |at: DateTime<Utc>| at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let domain = |id: &str| {
            let name = if id == DEFAULT_DOMAIN_ID {
                DEFAULT_DOMAIN_NAME
            } else {
                id
            };
            json!({"id": id, "name": name})
        };
        let mut token = json!({
            "methods": claims.methods,
            "user": {
                "id": claims.user_id,
                "name": claims.user_name,
                "domain": domain(&claims.user_domain_id),
                "password_expires_at": null,
            },
            "audit_ids": match &claims.audit_chain {
                Some(chain) => json!([claims.audit_id, chain]),
                None => json!([claims.audit_id]),
            },
            "issued_at": timestamp(claims.issued_at()),
            "expires_at": timestamp(claims.expires_at()),
        });
        if let (Some(project_id), Some(project_name)) = (&claims.project_id, &claims.project_name) {
            token["project"] = json!({
                "id": project_id,
                "name": project_name,
                "domain": domain(claims.project_domain_id.as_deref().unwrap_or(DEFAULT_DOMAIN_ID)),
            });
            token["is_domain"] = json!(false);
            token["roles"] = Value::Array(
                claims
                    .roles
                    .iter()
                    .map(|(id, name)| json!({"id": id, "name": name}))
                    .collect(),
            );
            if include_catalog {
                token["catalog"] = self.catalog.to_json();
            }
        }
        json!({ "token": token })
    }
}
