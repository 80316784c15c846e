//! The `cluster_certificate` table: each cluster's certificate authorities. Private keys are
//! stored sealed (encrypted by the caller with the service's key); this crate never sees
//! them in clear.

use crate::{row, time, Database, DbError, DbResult};
use chrono::{DateTime, Utc};

/// A stored CA of one cluster.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    pub cluster_uuid: String,
    /// `kubernetes` (the default CA), `etcd` or `front_proxy`.
    pub ca_type: String,
    pub certificate_pem: String,
    /// The private key, encrypted; see `magnum-x509`.
    pub private_key_sealed: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for CertificateRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateRecord")
            .field("cluster_uuid", &self.cluster_uuid)
            .field("ca_type", &self.ca_type)
            .finish_non_exhaustive()
    }
}

/// Repository of cluster CAs.
#[derive(Debug, Clone, Copy)]
pub struct Certificates<'a> {
    database: &'a Database,
}

impl Database {
    pub fn certificates(&self) -> Certificates<'_> {
        Certificates { database: self }
    }
}

impl Certificates<'_> {
    /// Stores (or replaces, on rotation) a cluster's CA.
    pub async fn put(&self, record: &CertificateRecord) -> DbResult<()> {
        let _turn = self.database.write_turn().await;
        let mut transaction = self.database.begin_write().await?;
        sqlx::query(
            self.database
                .dialect()
                .sql("DELETE FROM cluster_certificate WHERE cluster_uuid = ? AND ca_type = ?"),
        )
        .bind(record.cluster_uuid.clone())
        .bind(record.ca_type.clone())
        .execute(&mut *transaction)
        .await?;
        sqlx::query(self.database.dialect().sql(
            "INSERT INTO cluster_certificate (cluster_uuid, ca_type, certificate_pem, private_key_sealed, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        ))
        .bind(record.cluster_uuid.clone())
        .bind(record.ca_type.clone())
        .bind(record.certificate_pem.clone())
        .bind(record.private_key_sealed.clone())
        .bind(time::encode(&record.created_at))
        .bind(record.updated_at.as_ref().map(time::encode))
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    pub async fn get(&self, cluster_uuid: &str, ca_type: &str) -> DbResult<CertificateRecord> {
        let row = sqlx::query(self.database.dialect().sql(
            "SELECT cluster_uuid, ca_type, certificate_pem, private_key_sealed, created_at, updated_at \
             FROM cluster_certificate WHERE cluster_uuid = ? AND ca_type = ?",
        ))
        .bind(cluster_uuid.to_string())
        .bind(ca_type.to_string())
        .fetch_optional(self.database.pool())
        .await?
        .ok_or(DbError::NotFound)?;
        Ok(CertificateRecord {
            cluster_uuid: row::text(&row, "cluster_uuid")?,
            ca_type: row::text(&row, "ca_type")?,
            certificate_pem: row::text(&row, "certificate_pem")?,
            private_key_sealed: row::text(&row, "private_key_sealed")?,
            created_at: time::decode("created_at", &row::text(&row, "created_at")?)?,
            updated_at: time::decode_optional(
                "updated_at",
                row::optional_text(&row, "updated_at")?,
            )?,
        })
    }
}
