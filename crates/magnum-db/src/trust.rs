//! The `cluster_trust` table: for a cluster on an OpenStack cloud, the trustee user made for
//! it and the trust its owner gave that user, kept until the cluster is gone so that the
//! conductor can act for the owner (and remove both) long after the owner's request.

use crate::{row, time, Database, DbError, DbResult};
use chrono::{DateTime, Utc};

/// A cluster's trustee and trust (no secret: the trustee's password is derived, not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustRecord {
    pub cluster_uuid: String,
    pub trustee_user_id: String,
    pub trustee_username: String,
    pub trust_id: String,
    pub created_at: DateTime<Utc>,
}

/// Inserts a trust row within `connection`'s transaction.
pub(crate) async fn insert_in(
    database: &Database,
    connection: &mut sqlx::AnyConnection,
    record: &TrustRecord,
) -> DbResult<()> {
    sqlx::query(database.dialect().sql(
        "INSERT INTO cluster_trust (cluster_uuid, trustee_user_id, trustee_username, trust_id, \
         created_at) VALUES (?, ?, ?, ?, ?)",
    ))
    .bind(record.cluster_uuid.clone())
    .bind(record.trustee_user_id.clone())
    .bind(record.trustee_username.clone())
    .bind(record.trust_id.clone())
    .bind(time::encode(&record.created_at))
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Repository of clusters' trusts.
#[derive(Debug, Clone, Copy)]
pub struct Trusts<'a> {
    database: &'a Database,
}

impl Database {
    pub fn trusts(&self) -> Trusts<'_> {
        Trusts { database: self }
    }
}

impl Trusts<'_> {
    /// Records a cluster's trust; a cluster has at most one ([`DbError::Duplicate`]).
    pub async fn insert(&self, record: &TrustRecord) -> DbResult<()> {
        let _turn = self.database.write_turn().await;
        let mut transaction = self.database.begin_write().await?;
        insert_in(self.database, &mut transaction, record).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// The cluster's trust, or [`DbError::NotFound`].
    pub async fn get(&self, cluster_uuid: &str) -> DbResult<TrustRecord> {
        let row = sqlx::query(self.database.dialect().sql(
            "SELECT cluster_uuid, trustee_user_id, trustee_username, trust_id, created_at \
             FROM cluster_trust WHERE cluster_uuid = ?",
        ))
        .bind(cluster_uuid.to_string())
        .fetch_optional(self.database.pool())
        .await?
        .ok_or(DbError::NotFound)?;
        Ok(TrustRecord {
            cluster_uuid: row::text(&row, "cluster_uuid")?,
            trustee_user_id: row::text(&row, "trustee_user_id")?,
            trustee_username: row::text(&row, "trustee_username")?,
            trust_id: row::text(&row, "trust_id")?,
            created_at: time::decode("created_at", &row::text(&row, "created_at")?)?,
        })
    }

    /// Forgets a cluster's trust (after it was removed from Keystone); none is not an error.
    pub async fn delete(&self, cluster_uuid: &str) -> DbResult<()> {
        let _turn = self.database.write_turn().await;
        sqlx::query(
            self.database
                .dialect()
                .sql("DELETE FROM cluster_trust WHERE cluster_uuid = ?"),
        )
        .bind(cluster_uuid.to_string())
        .execute(self.database.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::database;

    #[tokio::test]
    async fn a_clusters_trust_is_kept_once_and_forgotten() {
        let test = database().await;
        let trusts = test.database.trusts();
        let record = TrustRecord {
            cluster_uuid: "c1".to_string(),
            trustee_user_id: "u1".to_string(),
            trustee_username: "magnum_c1".to_string(),
            trust_id: "t1".to_string(),
            created_at: crate::time::decode("created_at", "2026-12-02T05:00:00.000000Z").unwrap(),
        };
        trusts.insert(&record).await.unwrap();
        assert!(matches!(
            trusts.insert(&record).await,
            Err(DbError::Duplicate)
        ));
        assert_eq!(trusts.get("c1").await.unwrap(), record);
        trusts.delete("c1").await.unwrap();
        trusts.delete("c1").await.unwrap();
        assert!(matches!(trusts.get("c1").await, Err(DbError::NotFound)));
    }
}
