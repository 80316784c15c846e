//! The conductor: the process role that does work in the background.
//!
//! For now it registers itself in the `magnum_service` table and heartbeats, so that
//! `GET /v1/mservices` shows it `up`. Cluster reconciliation will live here too; the API
//! only records desired state, and conductors act on it.

use chrono::Utc;
use magnum_db::Database;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The binary name conductors register under, as upstream's `magnum-conductor`.
pub const CONDUCTOR_BINARY: &str = "magnum-conductor";

/// Settings of one conductor process.
#[derive(Debug, Clone)]
pub struct ConductorSettings {
    /// The host name reported in the service list.
    pub host: String,
    /// Time between heartbeats.
    pub heartbeat_interval: Duration,
}

/// Registers the conductor with its first heartbeat; call before announcing it runs.
pub async fn register(
    database: &Database,
    settings: &ConductorSettings,
) -> Result<(), magnum_db::DbError> {
    let service = database
        .services()
        .heartbeat(&settings.host, CONDUCTOR_BINARY, Utc::now())
        .await?;
    tracing::info!(host = %settings.host, id = service.id, "conductor registered");
    Ok(())
}

/// Runs the conductor until `shutdown` is cancelled, heartbeating once per interval (the
/// first heartbeat is [`register`]'s). A failed heartbeat is logged and retried at the next
/// tick; the process does not die because the database blinked.
pub async fn run(database: Database, settings: ConductorSettings, shutdown: CancellationToken) {
    tracing::info!(host = %settings.host, interval = ?settings.heartbeat_interval, "conductor started");
    let start = tokio::time::Instant::now() + settings.heartbeat_interval;
    let mut ticker = tokio::time::interval_at(start, settings.heartbeat_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {
                match database.services().heartbeat(&settings.host, CONDUCTOR_BINARY, Utc::now()).await {
                    Ok(service) => tracing::debug!(report_count = service.report_count, "heartbeat"),
                    Err(error) => tracing::warn!(%error, "heartbeat failed; retrying at the next interval"),
                }
            }
        }
    }
    tracing::info!("conductor stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnum_config::DatabaseConnection;

    #[tokio::test]
    async fn heartbeats_until_cancelled() {
        let directory = tempfile::tempdir().unwrap();
        let database = Database::connect(
            &DatabaseConnection::Sqlite {
                path: Some(directory.path().join("c.sqlite")),
            },
            2,
        )
        .await
        .unwrap();
        database.upgrade().await.unwrap();
        let settings = ConductorSettings {
            host: "test-host".to_string(),
            heartbeat_interval: Duration::from_millis(20),
        };
        register(&database, &settings).await.unwrap();
        assert_eq!(database.services().list().await.unwrap()[0].report_count, 1);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(database.clone(), settings, shutdown.clone()));
        let mut seen = 0;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let services = database.services().list().await.unwrap();
            if let Some(service) = services.first() {
                seen = service.report_count;
                if seen >= 3 {
                    break;
                }
            }
        }
        assert!(seen >= 3, "only {seen} heartbeats");
        shutdown.cancel();
        task.await.unwrap();
        let services = database.services().list().await.unwrap();
        assert_eq!(services.len(), 1);
        assert_eq!(services[0].binary, CONDUCTOR_BINARY);
        assert_eq!(services[0].host, "test-host");
    }
}
