//! Clusters' trustees: each cluster gets a Keystone user of its own in `[trust]
//! trustee_domain_name`, made by that domain's administrator, and the cluster's owner gives
//! it a trust (impersonation, the owner's roles in the project) while the owner's request
//! and token are at hand. magnumd and the cluster's nodes then act for the owner as the
//! trustee, scoped to the trust, for the cluster's whole life; deleting the cluster removes
//! both.
//!
//! The trustee's password is never stored: it is derived from magnumd's own key and the
//! cluster's uuid (HMAC-SHA256), so every magnumd process sharing the key file knows it and
//! a copy of the database alone does not.

use hmac::{Hmac, Mac};
use magnum_config::Secret;
use magnum_driver::{CallerContext, ClusterGrant, LookupError};
use magnum_openstack::keystone::TrustRequest;
use magnum_openstack::{
    AuthMethod, AuthRequest, Keystone, NameOrId, OpenStackError, Scope, Session,
};
use sha2::Sha256;

/// What `[trust]` configures.
#[derive(Debug, Clone)]
pub struct TrustSettings {
    pub domain_name: String,
    pub admin_name: String,
    pub admin_password: Secret,
    /// The administrator's own domain (the trustee domain when None).
    pub admin_domain_name: Option<String>,
    /// Roles delegated; the caller's roles when empty.
    pub roles: Vec<String>,
    /// The key trustee passwords are derived from.
    pub password_key: Secret,
    /// Whether clusters' nodes may act in the cloud with the trust (`[trust]
    /// cluster_user_trust`).
    pub cluster_user_trust: bool,
}

/// Makes and removes clusters' trustees and trusts.
#[derive(Debug)]
pub struct Trustees {
    keystone: Keystone,
    /// The trustee domain's administrator.
    admin: Session,
    settings: TrustSettings,
}

impl Trustees {
    pub fn new(keystone: Keystone, settings: TrustSettings) -> Trustees {
        let admin_domain = settings
            .admin_domain_name
            .clone()
            .unwrap_or_else(|| settings.domain_name.clone());
        let admin = Session::new(
            keystone.clone(),
            AuthRequest {
                method: AuthMethod::Password {
                    user: NameOrId::named(&settings.admin_name, &admin_domain),
                    password: settings.admin_password.clone(),
                },
                scope: Scope::Domain(NameOrId::Name {
                    name: settings.domain_name.clone(),
                    domain: None,
                }),
            },
        );
        Trustees {
            keystone,
            admin,
            settings,
        }
    }

    /// Whether clusters' nodes may act in the cloud with the trust.
    pub fn cluster_user_trust(&self) -> bool {
        self.settings.cluster_user_trust
    }

    /// The password of a cluster's trustee.
    pub fn password(&self, cluster_uuid: &str) -> Secret {
        // HMAC accepts keys of any length, so this cannot fail.
        #[allow(clippy::expect_used)]
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.settings.password_key.expose().as_bytes())
                .expect("HMAC takes any key length");
        mac.update(b"magnum trustee password\0");
        mac.update(cluster_uuid.as_bytes());
        let digest = mac.finalize().into_bytes();
        Secret::new(
            digest
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect::<String>(),
        )
    }

    /// How the cluster's trustee authenticates within its trust.
    pub fn acting_as(
        &self,
        cluster_uuid: &str,
        trustee_user_id: &str,
        trust_id: &str,
    ) -> AuthRequest {
        AuthRequest {
            method: AuthMethod::Password {
                user: NameOrId::id(trustee_user_id),
                password: self.password(cluster_uuid),
            },
            scope: Scope::Trust(trust_id.to_string()),
        }
    }

    pub fn keystone(&self) -> &Keystone {
        &self.keystone
    }

    /// Makes the cluster's trustee and the caller's trust to it.
    pub async fn grant(
        &self,
        context: &CallerContext,
        cluster_uuid: &str,
    ) -> Result<ClusterGrant, LookupError> {
        let caller_token = context.token.as_deref().ok_or_else(|| {
            LookupError::Unavailable(
                "the request carries no Keystone token to delegate from".to_string(),
            )
        })?;
        let admin = self.admin.token().await.map_err(keystone_trouble)?;
        let domain_id = match &admin.domain_id {
            Some(id) => id.clone(),
            None => self
                .keystone
                .domain_id(admin.expose(), &self.settings.domain_name)
                .await
                .map_err(keystone_trouble)?,
        };
        let username = format!("{cluster_uuid}_{}", context.project_id);
        let trustee_user_id = self
            .keystone
            .create_user(
                admin.expose(),
                &domain_id,
                &username,
                &self.password(cluster_uuid),
            )
            .await
            .map_err(keystone_trouble)?;
        let roles = if self.settings.roles.is_empty() {
            context.roles.clone()
        } else {
            self.settings.roles.clone()
        };
        let trust = self
            .keystone
            .create_trust(
                caller_token,
                &TrustRequest {
                    trustor_user_id: context.user_id.clone(),
                    trustee_user_id: trustee_user_id.clone(),
                    project_id: context.project_id.clone(),
                    roles,
                    impersonation: true,
                    // Heat passes it on to itself for the stacks it builds for the cluster.
                    allow_redelegation: true,
                },
            )
            .await;
        match trust {
            Ok(trust_id) => Ok(ClusterGrant {
                trustee_user_id,
                trustee_username: username,
                trust_id,
            }),
            Err(error) => {
                // Leave no trustee behind a trust that was refused.
                if let Err(cleanup) = self
                    .keystone
                    .delete_user(admin.expose(), &trustee_user_id)
                    .await
                {
                    tracing::warn!(%cleanup, "a trustee user could not be removed after its trust was refused");
                }
                Err(match error.status() {
                    Some(401 | 403) => LookupError::Refused(format!(
                        "Keystone refused the trust that lets the cluster act for you: {error}"
                    )),
                    _ => keystone_trouble(error),
                })
            }
        }
    }

    /// Removes a cluster's trust and trustee (Keystone drops a user's trusts with it).
    pub async fn revoke(&self, grant: &ClusterGrant) -> Result<(), LookupError> {
        let admin = self.admin.token().await.map_err(keystone_trouble)?;
        self.keystone
            .delete_user(admin.expose(), &grant.trustee_user_id)
            .await
            .map_err(keystone_trouble)
    }
}

fn keystone_trouble(error: OpenStackError) -> LookupError {
    LookupError::Unavailable(format!("Keystone: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trustees(key: &str) -> Trustees {
        Trustees::new(
            Keystone::new(reqwest::Client::new(), "http://127.0.0.1:9/v3"),
            TrustSettings {
                domain_name: "magnum".to_string(),
                admin_name: "magnum_domain_admin".to_string(),
                admin_password: Secret::new("p"),
                admin_domain_name: None,
                roles: Vec::new(),
                password_key: Secret::new(key),
                cluster_user_trust: false,
            },
        )
    }

    #[test]
    fn trustee_passwords_are_derived_per_cluster_and_key() {
        let one = trustees("key-one");
        assert_eq!(one.password("c1").expose(), one.password("c1").expose());
        assert_ne!(one.password("c1").expose(), one.password("c2").expose());
        assert_ne!(
            one.password("c1").expose(),
            trustees("key-two").password("c1").expose()
        );
        assert_eq!(one.password("c1").expose().len(), 64);
    }
}
