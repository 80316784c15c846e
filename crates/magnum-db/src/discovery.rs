//! The `discovery_token` and `discovery_entry` tables: the state of etcd's discovery protocol
//! as magnumd serves it. A token stands for one etcd cluster being bootstrapped: the size it
//! expects and the members registered so far. Every write to a token advances its index, the
//! number etcd's v2 keys API reports (`X-Etcd-Index`, `createdIndex`), so that a watcher
//! asking "anything after index N?" is answered from the rows alone, by any magnumd of a
//! fleet.

use crate::{row, time, Database, DbError, DbResult};
use chrono::{DateTime, Utc};

/// The index of the token's `_config/size` key; members follow.
pub const SIZE_INDEX: i64 = 1;

/// One bootstrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryToken {
    pub token: String,
    pub project_id: String,
    /// The cluster whose masters use it; None for a token made on request.
    pub cluster_uuid: Option<String>,
    pub size: i64,
    /// The index of the token's last write.
    pub current_index: i64,
    pub created_at: DateTime<Utc>,
}

/// One registered member: etcd's key is its member id, the value its name and peer URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryEntry {
    pub key: String,
    pub value: String,
    pub created_index: i64,
}

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("no such discovery token")]
    UnknownToken,
    /// The key is taken; the index is the token's current one.
    #[error("the key is already registered")]
    Exists { current_index: i64 },
    /// The token holds as many entries as it may.
    #[error("the token holds {limit} entries already")]
    Full { limit: i64 },
    #[error(transparent)]
    Database(#[from] DbError),
}

fn token_of(row: &sqlx::any::AnyRow) -> DbResult<DiscoveryToken> {
    Ok(DiscoveryToken {
        token: row::text(row, "token")?,
        project_id: row::text(row, "project_id")?,
        cluster_uuid: row::optional_text(row, "cluster_uuid")?,
        size: row::integer(row, "cluster_size")?,
        current_index: row::integer(row, "current_index")?,
        created_at: time::decode("created_at", &row::text(row, "created_at")?)?,
    })
}

const TOKEN_COLUMNS: &str =
    "token, project_id, cluster_uuid, cluster_size, current_index, created_at";

/// Inserts a token within `connection`'s transaction (a cluster's, with the cluster's row).
pub(crate) async fn insert_in(
    database: &Database,
    connection: &mut sqlx::AnyConnection,
    token: &DiscoveryToken,
) -> DbResult<()> {
    sqlx::query(database.dialect().sql(format!(
        "INSERT INTO discovery_token ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
    )))
    .bind(token.token.clone())
    .bind(token.project_id.clone())
    .bind(token.cluster_uuid.clone())
    .bind(token.size)
    .bind(token.current_index)
    .bind(time::encode(&token.created_at))
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Repository of discovery tokens.
#[derive(Debug, Clone, Copy)]
pub struct Discovery<'a> {
    database: &'a Database,
}

impl Database {
    pub fn discovery(&self) -> Discovery<'_> {
        Discovery { database: self }
    }
}

impl Discovery<'_> {
    /// Stores a new token made on request, unless the project holds `limit` such tokens
    /// already (then false).
    pub async fn insert(&self, token: &DiscoveryToken, limit: i64) -> DbResult<bool> {
        let _turn = self.database.write_turn().await;
        let mut transaction = self.database.begin_write().await?;
        let held: i64 = sqlx::query_scalar(self.database.dialect().sql(format!(
            "SELECT {} FROM discovery_token WHERE project_id = ? AND cluster_uuid IS NULL",
            self.database.dialect().as_bigint("COUNT(*)")
        )))
        .bind(token.project_id.clone())
        .fetch_one(&mut *transaction)
        .await?;
        if held >= limit {
            return Ok(false);
        }
        insert_in(self.database, &mut transaction, token).await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// The token, or [`DbError::NotFound`].
    pub async fn get(&self, token: &str) -> DbResult<DiscoveryToken> {
        let row = sqlx::query(self.database.dialect().sql(format!(
            "SELECT {TOKEN_COLUMNS} FROM discovery_token WHERE token = ?"
        )))
        .bind(token.to_string())
        .fetch_optional(self.database.pool())
        .await?
        .ok_or(DbError::NotFound)?;
        token_of(&row)
    }

    /// The token's members, oldest first.
    pub async fn entries(&self, token: &str) -> DbResult<Vec<DiscoveryEntry>> {
        let rows = sqlx::query(self.database.dialect().sql(
            "SELECT entry_key, entry_value, created_index FROM discovery_entry \
             WHERE token = ? ORDER BY created_index",
        ))
        .bind(token.to_string())
        .fetch_all(self.database.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DiscoveryEntry {
                    key: row::text(row, "entry_key")?,
                    value: row::text(row, "entry_value")?,
                    created_index: row::integer(row, "created_index")?,
                })
            })
            .collect()
    }

    /// Registers `key` once under the token, at the token's next index; at most `limit`
    /// entries per token.
    pub async fn register(
        &self,
        token: &str,
        key: &str,
        value: &str,
        limit: i64,
    ) -> Result<DiscoveryEntry, RegisterError> {
        let _turn = self.database.write_turn().await;
        let dialect = self.database.dialect();
        let mut transaction = self.database.begin_write().await?;
        let current_index: i64 = sqlx::query_scalar(dialect.sql(format!(
            "SELECT current_index FROM discovery_token WHERE token = ?{}",
            dialect.lock_rows()
        )))
        .bind(token.to_string())
        .fetch_optional(&mut *transaction)
        .await
        .map_err(DbError::from)?
        .ok_or(RegisterError::UnknownToken)?;
        let held: i64 = sqlx::query_scalar(dialect.sql(format!(
            "SELECT {} FROM discovery_entry WHERE token = ?",
            dialect.as_bigint("COUNT(*)")
        )))
        .bind(token.to_string())
        .fetch_one(&mut *transaction)
        .await
        .map_err(DbError::from)?;
        let taken: i64 = sqlx::query_scalar(dialect.sql(format!(
            "SELECT {} FROM discovery_entry WHERE token = ? AND entry_key = ?",
            dialect.as_bigint("COUNT(*)")
        )))
        .bind(token.to_string())
        .bind(key.to_string())
        .fetch_one(&mut *transaction)
        .await
        .map_err(DbError::from)?;
        if taken > 0 {
            return Err(RegisterError::Exists { current_index });
        }
        if held >= limit {
            return Err(RegisterError::Full { limit });
        }
        let created_index = current_index + 1;
        sqlx::query(dialect.sql("UPDATE discovery_token SET current_index = ? WHERE token = ?"))
            .bind(created_index)
            .bind(token.to_string())
            .execute(&mut *transaction)
            .await
            .map_err(DbError::from)?;
        sqlx::query(dialect.sql(
            "INSERT INTO discovery_entry (token, entry_key, entry_value, created_index) \
             VALUES (?, ?, ?, ?)",
        ))
        .bind(token.to_string())
        .bind(key.to_string())
        .bind(value.to_string())
        .bind(created_index)
        .execute(&mut *transaction)
        .await
        .map_err(DbError::from)?;
        transaction.commit().await.map_err(DbError::from)?;
        Ok(DiscoveryEntry {
            key: key.to_string(),
            value: value.to_string(),
            created_index,
        })
    }

    /// Forgets tokens made on request before `before`.
    pub async fn delete_unattached_before(&self, before: &DateTime<Utc>) -> DbResult<()> {
        let _turn = self.database.write_turn().await;
        let mut transaction = self.database.begin_write().await?;
        delete_in(
            self.database,
            &mut transaction,
            "cluster_uuid IS NULL AND created_at < ?",
            time::encode(before),
        )
        .await?;
        transaction.commit().await?;
        Ok(())
    }
}

/// Forgets the tokens of a cluster within `connection`'s transaction (the one removing the
/// cluster's rows).
pub(crate) async fn delete_for_cluster_in(
    database: &Database,
    connection: &mut sqlx::AnyConnection,
    cluster_uuid: &str,
) -> DbResult<()> {
    delete_in(
        database,
        connection,
        "cluster_uuid = ?",
        cluster_uuid.to_string(),
    )
    .await
}

async fn delete_in(
    database: &Database,
    connection: &mut sqlx::AnyConnection,
    condition: &str,
    value: String,
) -> DbResult<()> {
    let dialect = database.dialect();
    sqlx::query(dialect.sql(format!(
        "DELETE FROM discovery_entry WHERE token IN \
         (SELECT token FROM discovery_token WHERE {condition})"
    )))
    .bind(value.clone())
    .execute(&mut *connection)
    .await?;
    sqlx::query(dialect.sql(format!("DELETE FROM discovery_token WHERE {condition}")))
        .bind(value)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::database;

    fn token(name: &str, cluster: Option<&str>, created_at: &str) -> DiscoveryToken {
        DiscoveryToken {
            token: name.to_string(),
            project_id: "p1".to_string(),
            cluster_uuid: cluster.map(str::to_string),
            size: 3,
            current_index: SIZE_INDEX,
            created_at: time::decode("created_at", created_at).unwrap(),
        }
    }

    #[tokio::test]
    async fn members_register_once_each_at_increasing_indexes_up_to_the_limit() {
        let test = database().await;
        let discovery = test.database.discovery();
        discovery
            .insert(&token("t1", None, "2026-12-02T05:00:00.000000Z"), 5)
            .await
            .unwrap();
        let first = discovery
            .register("t1", "a1", "one=http://a:2380", 3)
            .await
            .unwrap();
        let second = discovery
            .register("t1", "b2", "two=http://b:2380", 3)
            .await
            .unwrap();
        assert_eq!((first.created_index, second.created_index), (2, 3));
        assert!(matches!(
            discovery.register("t1", "a1", "again", 3).await,
            Err(RegisterError::Exists { current_index: 3 })
        ));
        discovery.register("t1", "c3", "three", 3).await.unwrap();
        assert!(matches!(
            discovery.register("t1", "d4", "four", 3).await,
            Err(RegisterError::Full { limit: 3 })
        ));
        assert!(matches!(
            discovery.register("nope", "a1", "x", 3).await,
            Err(RegisterError::UnknownToken)
        ));
        let entries = discovery.entries("t1").await.unwrap();
        assert_eq!(
            entries
                .iter()
                .map(|entry| entry.key.as_str())
                .collect::<Vec<_>>(),
            ["a1", "b2", "c3"]
        );
        assert_eq!(discovery.get("t1").await.unwrap().current_index, 4);
    }

    #[tokio::test]
    async fn a_project_holds_a_bounded_number_of_tokens_and_old_ones_expire() {
        let test = database().await;
        let discovery = test.database.discovery();
        discovery
            .insert(&token("old", None, "2026-12-01T05:00:00.000000Z"), 2)
            .await
            .unwrap();
        discovery
            .insert(&token("new", None, "2026-12-02T05:00:00.000000Z"), 2)
            .await
            .unwrap();
        assert!(!discovery
            .insert(&token("third", None, "2026-12-02T06:00:00.000000Z"), 2)
            .await
            .unwrap());
        discovery.register("old", "a1", "x", 3).await.unwrap();
        discovery
            .delete_unattached_before(&time::decode("t", "2026-12-02T00:00:00.000000Z").unwrap())
            .await
            .unwrap();
        assert!(matches!(discovery.get("old").await, Err(DbError::NotFound)));
        assert!(discovery.entries("old").await.unwrap().is_empty());
        assert_eq!(discovery.get("new").await.unwrap().token, "new");
    }

    #[tokio::test]
    async fn a_clusters_token_goes_with_the_cluster() {
        let test = database().await;
        let discovery = test.database.discovery();
        let mut connection = test.database.pool().acquire().await.unwrap();
        insert_in(
            &test.database,
            &mut connection,
            &token("c", Some("cluster-1"), "2026-12-02T05:00:00.000000Z"),
        )
        .await
        .unwrap();
        drop(connection);
        assert_eq!(
            discovery.get("c").await.unwrap().cluster_uuid.as_deref(),
            Some("cluster-1")
        );
        let mut connection = test.database.pool().acquire().await.unwrap();
        delete_for_cluster_in(&test.database, &mut connection, "cluster-1")
            .await
            .unwrap();
        drop(connection);
        assert!(matches!(discovery.get("c").await, Err(DbError::NotFound)));
    }
}
