//! Tables of the built-in identity service: projects, users (with password hashes and
//! failed-login counts), roles, role assignments, revoked tokens, and user-wide revocations
//! (written in the same transaction as the role removal or password change that causes
//! them).
//!
//! Only the single domain `default` exists; ids are 32 hex characters as in Keystone.

use crate::{row, time, Database, DbError, DbResult};
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

/// A project (tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProject {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}

/// A user; `password_hash` is a PHC string (argon2), never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityUser {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub password_hash: String,
    pub enabled: bool,
    pub default_project_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Wrong passwords since the last good one.
    pub failed_auth_count: i64,
    /// When the last wrong password was given.
    pub failed_auth_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for IdentityUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityUser")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("domain_id", &self.domain_id)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// A role such as `admin`, `member` or `reader`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRole {
    pub id: String,
    pub name: String,
}

fn decode_project(row: &AnyRow) -> DbResult<IdentityProject> {
    Ok(IdentityProject {
        id: row::text(row, "id")?,
        name: row::text(row, "name")?,
        domain_id: row::text(row, "domain_id")?,
        description: row::optional_text(row, "description")?,
        enabled: row::boolean(row, "enabled")?,
        created_at: time::decode("created_at", &row::text(row, "created_at")?)?,
    })
}

fn decode_user(row: &AnyRow) -> DbResult<IdentityUser> {
    Ok(IdentityUser {
        id: row::text(row, "id")?,
        name: row::text(row, "name")?,
        domain_id: row::text(row, "domain_id")?,
        password_hash: row::text(row, "password_hash")?,
        enabled: row::boolean(row, "enabled")?,
        default_project_id: row::optional_text(row, "default_project_id")?,
        created_at: time::decode("created_at", &row::text(row, "created_at")?)?,
        failed_auth_count: row::integer(row, "failed_auth_count")?,
        failed_auth_at: time::decode_optional(
            "failed_auth_at",
            row::optional_text(row, "failed_auth_at")?,
        )?,
    })
}

fn decode_role(row: &AnyRow) -> DbResult<IdentityRole> {
    Ok(IdentityRole {
        id: row::text(row, "id")?,
        name: row::text(row, "name")?,
    })
}

const PROJECT_COLUMNS: &str = "id, name, domain_id, description, enabled, created_at";
const USER_COLUMNS: &str = "id, name, domain_id, password_hash, enabled, default_project_id, \
    created_at, failed_auth_count, failed_auth_at";

/// Repository of the built-in identity's tables.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    database: &'a Database,
}

impl Database {
    pub fn identity(&self) -> Identity<'_> {
        Identity { database: self }
    }
}

impl Identity<'_> {
    async fn fetch_optional(&self, sql: String, binds: &[&str]) -> DbResult<Option<AnyRow>> {
        let mut query = sqlx::query(self.database.dialect().sql(sql));
        for bind in binds {
            query = query.bind(bind.to_string());
        }
        Ok(query.fetch_optional(self.database.pool()).await?)
    }

    async fn fetch_all(&self, sql: String, binds: &[&str]) -> DbResult<Vec<AnyRow>> {
        let mut query = sqlx::query(self.database.dialect().sql(sql));
        for bind in binds {
            query = query.bind(bind.to_string());
        }
        Ok(query.fetch_all(self.database.pool()).await?)
    }

    pub async fn create_project(&self, project: &IdentityProject) -> DbResult<()> {
        sqlx::query(self.database.dialect().sql(
            "INSERT INTO identity_project (id, name, domain_id, description, enabled, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        ))
        .bind(project.id.clone())
        .bind(project.name.clone())
        .bind(project.domain_id.clone())
        .bind(project.description.clone())
        .bind(i16::from(project.enabled))
        .bind(time::encode(&project.created_at))
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    pub async fn project_by_id(&self, id: &str) -> DbResult<IdentityProject> {
        let sql = format!("SELECT {PROJECT_COLUMNS} FROM identity_project WHERE id = ?");
        let row = self
            .fetch_optional(sql, &[id])
            .await?
            .ok_or(DbError::NotFound)?;
        decode_project(&row)
    }

    pub async fn project_by_name(&self, domain_id: &str, name: &str) -> DbResult<IdentityProject> {
        let sql = format!(
            "SELECT {PROJECT_COLUMNS} FROM identity_project WHERE domain_id = ? AND name = ?"
        );
        let row = self
            .fetch_optional(sql, &[domain_id, name])
            .await?
            .ok_or(DbError::NotFound)?;
        decode_project(&row)
    }

    pub async fn list_projects(&self) -> DbResult<Vec<IdentityProject>> {
        let sql = format!("SELECT {PROJECT_COLUMNS} FROM identity_project ORDER BY name");
        self.fetch_all(sql, &[])
            .await?
            .iter()
            .map(decode_project)
            .collect()
    }

    pub async fn create_user(&self, user: &IdentityUser) -> DbResult<()> {
        sqlx::query(self.database.dialect().sql(
            "INSERT INTO identity_user (id, name, domain_id, password_hash, enabled, \
             default_project_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(user.id.clone())
        .bind(user.name.clone())
        .bind(user.domain_id.clone())
        .bind(user.password_hash.clone())
        .bind(i16::from(user.enabled))
        .bind(user.default_project_id.clone())
        .bind(time::encode(&user.created_at))
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    pub async fn user_by_id(&self, id: &str) -> DbResult<IdentityUser> {
        let sql = format!("SELECT {USER_COLUMNS} FROM identity_user WHERE id = ?");
        let row = self
            .fetch_optional(sql, &[id])
            .await?
            .ok_or(DbError::NotFound)?;
        decode_user(&row)
    }

    pub async fn user_by_name(&self, domain_id: &str, name: &str) -> DbResult<IdentityUser> {
        let sql =
            format!("SELECT {USER_COLUMNS} FROM identity_user WHERE domain_id = ? AND name = ?");
        let row = self
            .fetch_optional(sql, &[domain_id, name])
            .await?
            .ok_or(DbError::NotFound)?;
        decode_user(&row)
    }

    pub async fn list_users(&self) -> DbResult<Vec<IdentityUser>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM identity_user ORDER BY name");
        self.fetch_all(sql, &[])
            .await?
            .iter()
            .map(decode_user)
            .collect()
    }

    pub async fn count_users(&self) -> DbResult<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM identity_user")
            .fetch_one(self.database.pool())
            .await?)
    }

    /// Changes a user's password; every token the user holds is revoked with it, and the
    /// failed-login count starts again.
    pub async fn set_password_hash(&self, user_id: &str, password_hash: &str) -> DbResult<()> {
        let _turn = self.database.write_turn().await;
        let mut transaction = self.database.begin_write().await?;
        let result = sqlx::query(self.database.dialect().sql(
            "UPDATE identity_user SET password_hash = ?, failed_auth_count = 0, \
             failed_auth_at = NULL WHERE id = ?",
        ))
        .bind(password_hash.to_string())
        .bind(user_id.to_string())
        .execute(&mut *transaction)
        .await?;
        if result.rows_affected() == 0 {
            return Err(DbError::NotFound);
        }
        self.revoke_user_tokens(&mut transaction, user_id).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Revokes every token of `user_id` issued until now (by the database's clock, which
    /// the mirror compares with tokens' issue times from the issuing process's clock).
    async fn revoke_user_tokens(
        &self,
        connection: &mut sqlx::AnyConnection,
        user_id: &str,
    ) -> DbResult<()> {
        let now = time::encode(&Utc::now());
        sqlx::query(
            self.database
                .dialect()
                .sql("DELETE FROM identity_revoked_user WHERE user_id = ?"),
        )
        .bind(user_id.to_string())
        .execute(&mut *connection)
        .await?;
        sqlx::query(
            self.database
                .dialect()
                .sql("INSERT INTO identity_revoked_user (user_id, revoked_at) VALUES (?, ?)"),
        )
        .bind(user_id.to_string())
        .bind(now)
        .execute(&mut *connection)
        .await?;
        Ok(())
    }

    /// Users whose tokens issued until a time are revoked: (user id, that time).
    pub async fn revoked_users(&self) -> DbResult<Vec<(String, DateTime<Utc>)>> {
        let rows = self
            .fetch_all(
                "SELECT user_id, revoked_at FROM identity_revoked_user".to_string(),
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row::text(row, "user_id")?,
                    time::decode("revoked_at", &row::text(row, "revoked_at")?)?,
                ))
            })
            .collect()
    }

    /// Counts a wrong password for `user_id`.
    pub async fn record_failed_auth(&self, user_id: &str, at: DateTime<Utc>) -> DbResult<()> {
        let _turn = self.database.write_turn().await;
        sqlx::query(self.database.dialect().sql(
            "UPDATE identity_user SET failed_auth_count = failed_auth_count + 1, \
             failed_auth_at = ? WHERE id = ?",
        ))
        .bind(time::encode(&at))
        .bind(user_id.to_string())
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Forgets a user's wrong passwords (a good one was given, or a lockout ran out).
    pub async fn reset_failed_auth(&self, user_id: &str) -> DbResult<()> {
        let _turn = self.database.write_turn().await;
        sqlx::query(self.database.dialect().sql(
            "UPDATE identity_user SET failed_auth_count = 0, failed_auth_at = NULL WHERE id = ?",
        ))
        .bind(user_id.to_string())
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Returns the role with this name, creating it if needed.
    pub async fn ensure_role(&self, name: &str, new_id: &str) -> DbResult<IdentityRole> {
        if let Some(role) = self.role_by_name(name).await? {
            return Ok(role);
        }
        let inserted = sqlx::query(
            self.database
                .dialect()
                .sql("INSERT INTO identity_role (id, name) VALUES (?, ?)"),
        )
        .bind(new_id.to_string())
        .bind(name.to_string())
        .execute(self.database.pool())
        .await;
        match inserted.map_err(DbError::from) {
            Ok(_) | Err(DbError::Duplicate) => {}
            Err(other) => return Err(other),
        }
        self.role_by_name(name).await?.ok_or(DbError::NotFound)
    }

    pub async fn role_by_name(&self, name: &str) -> DbResult<Option<IdentityRole>> {
        let row = self
            .fetch_optional(
                "SELECT id, name FROM identity_role WHERE name = ?".to_string(),
                &[name],
            )
            .await?;
        row.as_ref().map(decode_role).transpose()
    }

    /// Grants `role_id` to `user_id` on `project_id`; granting twice is not an error.
    pub async fn assign_role(
        &self,
        user_id: &str,
        project_id: &str,
        role_id: &str,
    ) -> DbResult<()> {
        let inserted = sqlx::query(self.database.dialect().sql(
            "INSERT INTO identity_role_assignment (user_id, project_id, role_id) VALUES (?, ?, ?)",
        ))
        .bind(user_id.to_string())
        .bind(project_id.to_string())
        .bind(role_id.to_string())
        .execute(self.database.pool())
        .await;
        match inserted.map_err(DbError::from) {
            Ok(_) | Err(DbError::Duplicate) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// Removes a grant, revoking every token the user holds (tokens carry their roles);
    /// removing a missing one is [`DbError::NotFound`].
    pub async fn unassign_role(
        &self,
        user_id: &str,
        project_id: &str,
        role_id: &str,
    ) -> DbResult<()> {
        let _turn = self.database.write_turn().await;
        let mut transaction = self.database.begin_write().await?;
        let result = sqlx::query(self.database.dialect().sql(
            "DELETE FROM identity_role_assignment WHERE user_id = ? AND project_id = ? AND role_id = ?",
        ))
        .bind(user_id.to_string())
        .bind(project_id.to_string())
        .bind(role_id.to_string())
        .execute(&mut *transaction)
        .await?;
        if result.rows_affected() == 0 {
            return Err(DbError::NotFound);
        }
        self.revoke_user_tokens(&mut transaction, user_id).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// The roles `user_id` holds on `project_id`, by name.
    pub async fn roles_on_project(
        &self,
        user_id: &str,
        project_id: &str,
    ) -> DbResult<Vec<IdentityRole>> {
        let rows = self
            .fetch_all(
                "SELECT r.id AS id, r.name AS name FROM identity_role r \
                 JOIN identity_role_assignment a ON a.role_id = r.id \
                 WHERE a.user_id = ? AND a.project_id = ? ORDER BY r.name"
                    .to_string(),
                &[user_id, project_id],
            )
            .await?;
        rows.iter().map(decode_role).collect()
    }

    /// The projects on which `user_id` holds at least one role.
    pub async fn projects_of_user(&self, user_id: &str) -> DbResult<Vec<IdentityProject>> {
        let rows = self
            .fetch_all(
                "SELECT p.id AS id, p.name AS name, p.domain_id AS domain_id, \
                 p.description AS description, p.enabled AS enabled, p.created_at AS created_at \
                 FROM identity_project p WHERE p.id IN \
                 (SELECT project_id FROM identity_role_assignment WHERE user_id = ?) ORDER BY p.name"
                    .to_string(),
                &[user_id],
            )
            .await?;
        rows.iter().map(decode_project).collect()
    }

    /// Records a revoked token until it would have expired anyway.
    pub async fn revoke_token(&self, audit_id: &str, expires_at: DateTime<Utc>) -> DbResult<()> {
        let inserted = sqlx::query(
            self.database
                .dialect()
                .sql("INSERT INTO identity_revoked_token (audit_id, expires_at) VALUES (?, ?)"),
        )
        .bind(audit_id.to_string())
        .bind(time::encode(&expires_at))
        .execute(self.database.pool())
        .await;
        match inserted.map_err(DbError::from) {
            Ok(_) | Err(DbError::Duplicate) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// Audit ids of revoked tokens that have not expired yet; expired entries are purged.
    pub async fn revoked_tokens(&self, now: DateTime<Utc>) -> DbResult<Vec<String>> {
        let now_text = time::encode(&now);
        sqlx::query(
            self.database
                .dialect()
                .sql("DELETE FROM identity_revoked_token WHERE expires_at < ?"),
        )
        .bind(now_text.clone())
        .execute(self.database.pool())
        .await?;
        let rows = self
            .fetch_all(
                "SELECT audit_id FROM identity_revoked_token WHERE expires_at >= ?".to_string(),
                &[&now_text],
            )
            .await?;
        rows.iter().map(|row| row::text(row, "audit_id")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::database;
    use chrono::SubsecRound;

    fn suffix() -> String {
        format!(
            "{}{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or(0)
        )
    }

    #[tokio::test]
    async fn users_projects_and_roles_round_trip() {
        let test = database().await;
        let identity = test.database.identity();
        let unique = suffix();
        let project = IdentityProject {
            id: format!("p{unique}"),
            name: format!("demo{unique}"),
            domain_id: "default".to_string(),
            description: None,
            enabled: true,
            created_at: Utc::now().trunc_subsecs(6),
        };
        identity.create_project(&project).await.unwrap();
        assert!(matches!(
            identity
                .create_project(&IdentityProject {
                    id: format!("q{unique}"),
                    ..project.clone()
                })
                .await,
            Err(DbError::Duplicate)
        ));
        let user = IdentityUser {
            id: format!("u{unique}"),
            name: format!("alice{unique}"),
            domain_id: "default".to_string(),
            password_hash: "$argon2id$placeholder".to_string(),
            enabled: true,
            default_project_id: Some(project.id.clone()),
            created_at: Utc::now(),
            failed_auth_count: 0,
            failed_auth_at: None,
        };
        identity.create_user(&user).await.unwrap();
        assert_eq!(
            identity
                .user_by_name("default", &user.name)
                .await
                .unwrap()
                .id,
            user.id
        );
        assert!(!format!("{user:?}").contains("argon2"));
        let member = identity
            .ensure_role("member", &format!("r{unique}"))
            .await
            .unwrap();
        let again = identity.ensure_role("member", "other-id").await.unwrap();
        assert_eq!(member, again);
        identity
            .assign_role(&user.id, &project.id, &member.id)
            .await
            .unwrap();
        identity
            .assign_role(&user.id, &project.id, &member.id)
            .await
            .unwrap();
        let roles = identity
            .roles_on_project(&user.id, &project.id)
            .await
            .unwrap();
        assert_eq!(roles, vec![member.clone()]);
        assert_eq!(
            identity.projects_of_user(&user.id).await.unwrap(),
            vec![project.clone()]
        );
        identity
            .unassign_role(&user.id, &project.id, &member.id)
            .await
            .unwrap();
        assert!(identity
            .roles_on_project(&user.id, &project.id)
            .await
            .unwrap()
            .is_empty());
        identity
            .set_password_hash(&user.id, "$argon2id$new")
            .await
            .unwrap();
        assert_eq!(
            identity.user_by_id(&user.id).await.unwrap().password_hash,
            "$argon2id$new"
        );
    }

    #[tokio::test]
    async fn revoked_tokens_expire_from_the_list() {
        let test = database().await;
        let identity = test.database.identity();
        let now = Utc::now();
        let audit = format!("a{}", suffix());
        identity
            .revoke_token(&audit, now + chrono::Duration::hours(1))
            .await
            .unwrap();
        identity
            .revoke_token(&audit, now + chrono::Duration::hours(1))
            .await
            .unwrap();
        assert!(identity.revoked_tokens(now).await.unwrap().contains(&audit));
        let later = now + chrono::Duration::hours(2);
        assert!(!identity
            .revoked_tokens(later)
            .await
            .unwrap()
            .contains(&audit));
    }
}
