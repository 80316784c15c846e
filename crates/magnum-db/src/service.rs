//! The `magnum_service` table: one row per (host, binary) of a conductor process, kept alive
//! by heartbeats and shown by `GET /v1/mservices`.

use crate::{row, time, Database, DbError, DbResult};
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

/// A registered Magnum service process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    pub id: i64,
    pub host: String,
    pub binary: String,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub forced_down: bool,
    pub report_count: i64,
    pub last_seen_up: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl ServiceRecord {
    /// `up` when the last heartbeat is at most `down_after_seconds` old (and not forced down).
    pub fn is_up(&self, now: DateTime<Utc>, down_after_seconds: i64) -> bool {
        if self.forced_down {
            return false;
        }
        let last_heartbeat = self
            .last_seen_up
            .or(self.updated_at)
            .unwrap_or(self.created_at);
        (now - last_heartbeat).num_seconds().abs() <= down_after_seconds
    }
}

fn decode(row: &AnyRow) -> DbResult<ServiceRecord> {
    Ok(ServiceRecord {
        id: row::integer(row, "id")?,
        host: row::text(row, "host")?,
        binary: row::text(row, "service_binary")?,
        disabled: row::boolean(row, "disabled")?,
        disabled_reason: row::optional_text(row, "disabled_reason")?,
        forced_down: row::boolean(row, "forced_down")?,
        report_count: row::integer(row, "report_count")?,
        last_seen_up: time::decode_optional(
            "last_seen_up",
            row::optional_text(row, "last_seen_up")?,
        )?,
        created_at: time::decode("created_at", &row::text(row, "created_at")?)?,
        updated_at: time::decode_optional("updated_at", row::optional_text(row, "updated_at")?)?,
    })
}

const COLUMNS: &str = "id, host, service_binary, disabled, disabled_reason, forced_down, \
    report_count, last_seen_up, created_at, updated_at";

/// Repository of service heartbeats.
#[derive(Debug, Clone, Copy)]
pub struct Services<'a> {
    database: &'a Database,
}

impl Database {
    pub fn services(&self) -> Services<'_> {
        Services { database: self }
    }
}

impl Services<'_> {
    /// Records one heartbeat of (`host`, `binary`), registering it on the first one.
    /// Returns the row after the heartbeat.
    pub async fn heartbeat(
        &self,
        host: &str,
        binary: &str,
        now: DateTime<Utc>,
    ) -> DbResult<ServiceRecord> {
        let dialect = self.database.dialect();
        let now_text = time::encode(&now);
        for _attempt in 0..3 {
            let _turn = self.database.write_turn().await;
            let updated = sqlx::query(dialect.sql(
                "UPDATE magnum_service SET report_count = report_count + 1, last_seen_up = ?, \
                 updated_at = ? WHERE host = ? AND service_binary = ?",
            ))
            .bind(now_text.clone())
            .bind(now_text.clone())
            .bind(host.to_string())
            .bind(binary.to_string())
            .execute(self.database.pool())
            .await?;
            if updated.rows_affected() == 0 {
                let inserted = sqlx::query(dialect.sql(
                    "INSERT INTO magnum_service (host, service_binary, disabled, forced_down, \
                     report_count, last_seen_up, created_at, updated_at) VALUES (?, ?, 0, 0, 1, ?, ?, ?)",
                ))
                .bind(host.to_string())
                .bind(binary.to_string())
                .bind(now_text.clone())
                .bind(now_text.clone())
                .bind(now_text.clone())
                .execute(self.database.pool())
                .await;
                match inserted {
                    Ok(_) => {}
                    // Another process registered the same (host, binary) first: heartbeat again.
                    Err(error) if crate::dialect::is_unique_violation(&error) => continue,
                    Err(error) => return Err(error.into()),
                }
            }
            drop(_turn);
            return self.get(host, binary).await;
        }
        Err(DbError::Stale)
    }

    async fn get(&self, host: &str, binary: &str) -> DbResult<ServiceRecord> {
        let sql =
            format!("SELECT {COLUMNS} FROM magnum_service WHERE host = ? AND service_binary = ?");
        let row = sqlx::query(self.database.dialect().sql(sql))
            .bind(host.to_string())
            .bind(binary.to_string())
            .fetch_optional(self.database.pool())
            .await?
            .ok_or(DbError::NotFound)?;
        decode(&row)
    }

    /// Every registered service, oldest first.
    pub async fn list(&self) -> DbResult<Vec<ServiceRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM magnum_service ORDER BY id");
        let rows = sqlx::query(self.database.dialect().sql(sql))
            .fetch_all(self.database.pool())
            .await?;
        rows.iter().map(decode).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::database;
    use chrono::TimeZone;

    #[tokio::test]
    async fn heartbeats_register_once_and_count() {
        let test = database().await;
        let services = test.database.services();
        let host = format!("host-{}", std::process::id());
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let first = services
            .heartbeat(&host, "magnum-conductor", start)
            .await
            .unwrap();
        assert_eq!(first.report_count, 1);
        let later = start + chrono::Duration::seconds(60);
        let second = services
            .heartbeat(&host, "magnum-conductor", later)
            .await
            .unwrap();
        assert_eq!(second.id, first.id);
        assert_eq!(second.report_count, 2);
        assert_eq!(second.last_seen_up, Some(later));
        assert!(second.is_up(later + chrono::Duration::seconds(180), 180));
        assert!(!second.is_up(later + chrono::Duration::seconds(181), 180));
        let listed = services.list().await.unwrap();
        assert!(listed.iter().any(|service| service.host == host));
    }

    #[tokio::test]
    async fn concurrent_first_heartbeats_make_one_row() {
        let test = database().await;
        let host = format!("race-{}", std::process::id());
        let now = Utc::now();
        let services = test.database.services();
        let (a, b, c) = tokio::join!(
            services.heartbeat(&host, "magnum-conductor", now),
            services.heartbeat(&host, "magnum-conductor", now),
            services.heartbeat(&host, "magnum-conductor", now),
        );
        let ids = [a.unwrap().id, b.unwrap().id, c.unwrap().id];
        assert!(ids.iter().all(|id| *id == ids[0]));
        let row = services
            .list()
            .await
            .unwrap()
            .into_iter()
            .find(|service| service.host == host)
            .unwrap();
        assert_eq!(row.report_count, 3);
    }
}
