//! The revoked-token list: audit ids kept in the database until the tokens would have
//! expired, and users whose tokens issued until some time are all revoked (a role removed, a
//! password changed), mirrored in memory so that checking a token needs no query.
//!
//! A token is revoked when its own audit id is, when the token it was re-scoped from is
//! (its audit chain), or when its user's tokens were revoked after it was issued.
//!
//! A revocation made by this process is visible to it at once; other processes sharing the
//! database see it after their next refresh (`[identity] revocation_refresh_interval`).

use crate::token::TokenClaims;
use chrono::{DateTime, Utc};
use magnum_db::{Database, DbResult};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

#[derive(Debug, Default)]
struct Revoked {
    audit_ids: HashSet<String>,
    /// User id → tokens issued until then are revoked.
    users: HashMap<String, DateTime<Utc>>,
}

/// The in-memory mirror of revocations.
#[derive(Debug, Clone, Default)]
pub struct RevocationList {
    revoked: Arc<RwLock<Revoked>>,
}

impl RevocationList {
    /// Whether the token with this audit id was revoked (by id only).
    pub fn is_revoked(&self, audit_id: &str) -> bool {
        self.revoked
            .read()
            .map(|revoked| revoked.audit_ids.contains(audit_id))
            .unwrap_or(true)
    }

    /// Whether a token is revoked: by its audit id, its chain, or its user.
    pub fn is_token_revoked(&self, claims: &TokenClaims) -> bool {
        let Ok(revoked) = self.revoked.read() else {
            return true;
        };
        revoked.audit_ids.contains(&claims.audit_id)
            || claims
                .audit_chain
                .as_ref()
                .is_some_and(|chain| revoked.audit_ids.contains(chain))
            || revoked
                .users
                .get(&claims.user_id)
                .is_some_and(|until| claims.issued_at() <= *until)
    }

    /// Revokes a token here and in the database.
    pub async fn revoke(
        &self,
        database: &Database,
        audit_id: &str,
        expires_at: DateTime<Utc>,
    ) -> DbResult<()> {
        database
            .identity()
            .revoke_token(audit_id, expires_at)
            .await?;
        if let Ok(mut revoked) = self.revoked.write() {
            revoked.audit_ids.insert(audit_id.to_string());
        }
        Ok(())
    }

    /// Reloads the lists from the database.
    pub async fn refresh(&self, database: &Database) -> DbResult<()> {
        let audit_ids: HashSet<String> = database
            .identity()
            .revoked_tokens(Utc::now())
            .await?
            .into_iter()
            .collect();
        let users: HashMap<String, DateTime<Utc>> = database
            .identity()
            .revoked_users()
            .await?
            .into_iter()
            .collect();
        if let Ok(mut revoked) = self.revoked.write() {
            *revoked = Revoked { audit_ids, users };
        }
        Ok(())
    }
}
