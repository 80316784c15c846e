//! The revoked-token list: audit ids kept in the database until the tokens would have
//! expired, mirrored in memory so that checking a token needs no query.
//!
//! A revocation made by this process is visible to it at once; other processes sharing the
//! database see it after their next refresh (`[identity] revocation_refresh_interval`).

use chrono::{DateTime, Utc};
use magnum_db::{Database, DbResult};
use std::collections::HashSet;
use std::sync::{Arc, RwLock};

/// The in-memory mirror of revoked audit ids.
#[derive(Debug, Clone, Default)]
pub struct RevocationList {
    revoked: Arc<RwLock<HashSet<String>>>,
}

impl RevocationList {
    pub fn is_revoked(&self, audit_id: &str) -> bool {
        self.revoked
            .read()
            .map(|set| set.contains(audit_id))
            .unwrap_or(true)
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
        if let Ok(mut set) = self.revoked.write() {
            set.insert(audit_id.to_string());
        }
        Ok(())
    }

    /// Reloads the list from the database.
    pub async fn refresh(&self, database: &Database) -> DbResult<()> {
        let current: HashSet<String> = database
            .identity()
            .revoked_tokens(Utc::now())
            .await?
            .into_iter()
            .collect();
        if let Ok(mut set) = self.revoked.write() {
            *set = current;
        }
        Ok(())
    }
}
