//! The `quota` table: per-project limits (only the `Cluster` resource exists).

use crate::{row, time, Database, DbError, DbResult};
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

/// A stored quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaRecord {
    pub id: i64,
    pub project_id: String,
    pub resource: String,
    pub hard_limit: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

fn decode(row: &AnyRow) -> DbResult<QuotaRecord> {
    Ok(QuotaRecord {
        id: row::integer(row, "id")?,
        project_id: row::text(row, "project_id")?,
        resource: row::text(row, "resource")?,
        hard_limit: row::integer(row, "hard_limit")?,
        created_at: time::decode("created_at", &row::text(row, "created_at")?)?,
        updated_at: time::decode_optional("updated_at", row::optional_text(row, "updated_at")?)?,
    })
}

const COLUMNS: &str = "id, project_id, resource, hard_limit, created_at, updated_at";

/// Repository of quotas.
#[derive(Debug, Clone, Copy)]
pub struct Quotas<'a> {
    database: &'a Database,
}

impl Database {
    pub fn quotas(&self) -> Quotas<'_> {
        Quotas { database: self }
    }
}

impl Quotas<'_> {
    /// Creates a quota; an existing (project, resource) is [`DbError::Duplicate`].
    pub async fn create(
        &self,
        project_id: &str,
        resource: &str,
        hard_limit: i64,
        now: DateTime<Utc>,
    ) -> DbResult<QuotaRecord> {
        {
            let _turn = self.database.write_turn().await;
            sqlx::query(self.database.dialect().sql(
                "INSERT INTO quota (project_id, resource, hard_limit, created_at) VALUES (?, ?, ?, ?)",
            ))
            .bind(project_id.to_string())
            .bind(resource.to_string())
            .bind(hard_limit)
            .bind(time::encode(&now))
            .execute(self.database.pool())
            .await?;
        }
        self.get(project_id, resource).await
    }

    pub async fn get(&self, project_id: &str, resource: &str) -> DbResult<QuotaRecord> {
        let sql = format!("SELECT {COLUMNS} FROM quota WHERE project_id = ? AND resource = ?");
        let row = sqlx::query(self.database.dialect().sql(sql))
            .bind(project_id.to_string())
            .bind(resource.to_string())
            .fetch_optional(self.database.pool())
            .await?
            .ok_or(DbError::NotFound)?;
        decode(&row)
    }

    pub async fn update(
        &self,
        project_id: &str,
        resource: &str,
        hard_limit: i64,
        now: DateTime<Utc>,
    ) -> DbResult<QuotaRecord> {
        let updated = {
            let _turn = self.database.write_turn().await;
            sqlx::query(self.database.dialect().sql(
                "UPDATE quota SET hard_limit = ?, updated_at = ? WHERE project_id = ? AND resource = ?",
            ))
            .bind(hard_limit)
            .bind(time::encode(&now))
            .bind(project_id.to_string())
            .bind(resource.to_string())
            .execute(self.database.pool())
            .await?
            .rows_affected()
        };
        if updated == 0 {
            return Err(DbError::NotFound);
        }
        self.get(project_id, resource).await
    }

    pub async fn delete(&self, project_id: &str, resource: &str) -> DbResult<()> {
        let _turn = self.database.write_turn().await;
        let deleted = sqlx::query(
            self.database
                .dialect()
                .sql("DELETE FROM quota WHERE project_id = ? AND resource = ?"),
        )
        .bind(project_id.to_string())
        .bind(resource.to_string())
        .execute(self.database.pool())
        .await?
        .rows_affected();
        if deleted == 0 {
            Err(DbError::NotFound)
        } else {
            Ok(())
        }
    }

    /// Quotas of one project, or of every project, by id, after `marker` (an id).
    pub async fn list(
        &self,
        project_id: Option<&str>,
        marker: Option<i64>,
        limit: usize,
        descending: bool,
    ) -> DbResult<Vec<QuotaRecord>> {
        let direction = if descending { "DESC" } else { "ASC" };
        let comparison = if descending { "<" } else { ">" };
        let mut sql = format!("SELECT {COLUMNS} FROM quota WHERE 1 = 1");
        if project_id.is_some() {
            sql.push_str(" AND project_id = ?");
        }
        if marker.is_some() {
            sql.push_str(&format!(" AND id {comparison} ?"));
        }
        sql.push_str(&format!(" ORDER BY id {direction} LIMIT ?"));
        let mut query = sqlx::query(self.database.dialect().sql(sql));
        if let Some(project_id) = project_id {
            query = query.bind(project_id.to_string());
        }
        if let Some(marker) = marker {
            query = query.bind(marker);
        }
        let rows = query
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.database.pool())
            .await?;
        rows.iter().map(decode).collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::database;
    use crate::DbError;
    use chrono::Utc;

    #[tokio::test]
    async fn quotas_round_trip() {
        let test = database().await;
        let quotas = test.database.quotas();
        let created = quotas.create("p", "Cluster", 3, Utc::now()).await.unwrap();
        assert_eq!(created.hard_limit, 3);
        assert!(matches!(
            quotas.create("p", "Cluster", 4, Utc::now()).await,
            Err(DbError::Duplicate)
        ));
        assert_eq!(
            quotas
                .update("p", "Cluster", 5, Utc::now())
                .await
                .unwrap()
                .hard_limit,
            5
        );
        assert_eq!(
            quotas.list(Some("p"), None, 10, false).await.unwrap().len(),
            1
        );
        assert_eq!(
            quotas
                .list(None, Some(created.id), 10, false)
                .await
                .unwrap()
                .len(),
            0
        );
        quotas.delete("p", "Cluster").await.unwrap();
        assert!(matches!(
            quotas.delete("p", "Cluster").await,
            Err(DbError::NotFound)
        ));
    }
}
