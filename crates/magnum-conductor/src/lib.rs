//! The conductor: makes infrastructure match what the database asks for.
//!
//! The API records a cluster's desired shape and a pending operation; conductors claim
//! operations with leases in the database (so several conductor processes can share one
//! database and none is needed for the others to progress), carry them out through drivers
//! ([`reconcile`]), and record the outcome. Periodically they also compare idle clusters
//! with what the infrastructure reports ([`health`]) and heartbeat in `magnum_service`.
//!
//! Architecture invariant: a conductor may be killed at any instant. All it knows lives in
//! the database and in the infrastructure's labels; every driver call is idempotent.

pub mod certificates;
mod health;
pub mod instance;
mod reconcile;

use chrono::Utc;
use magnum_db::Database;
use magnum_driver::DriverSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use certificates::CertificateSettings;

/// The binary name conductors register under, as upstream's `magnum-conductor`.
pub const CONDUCTOR_BINARY: &str = "magnum-conductor";

/// Settings of one conductor process.
#[derive(Debug, Clone)]
pub struct ConductorSettings {
    /// The host name reported in the service list.
    pub host: String,
    /// The owner name written into leases: the host plus an instance id
    /// ([`instance::ConductorInstance`]), unique among running conductors.
    pub lease_owner: String,
    /// Time between heartbeats.
    pub heartbeat_interval: Duration,
    /// Operations carried out at the same time.
    pub workers: usize,
    /// How long a claim lasts without renewal.
    pub lease: Duration,
    /// Time between looks for new work.
    pub poll_interval: Duration,
    /// Time between health checks of idle clusters.
    pub sync_interval: Duration,
    /// Pause before retrying an operation that failed in a retryable way.
    pub retry_after: Duration,
}

/// Everything the conductor's tasks share.
#[derive(Debug)]
pub struct Conductor {
    pub database: Database,
    pub drivers: DriverSet,
    pub certificates: CertificateSettings,
    pub settings: ConductorSettings,
}

/// Registers the conductor with its first heartbeat, and takes back the leases an earlier
/// run of it held; call before announcing it runs.
pub async fn register(
    database: &Database,
    settings: &ConductorSettings,
) -> Result<(), magnum_db::DbError> {
    let service = database
        .services()
        .heartbeat(&settings.host, CONDUCTOR_BINARY, Utc::now())
        .await?;
    let released = database
        .work_queue()
        .release_all_leases(&settings.lease_owner)
        .await?;
    tracing::info!(host = %settings.host, lease_owner = %settings.lease_owner, id = service.id, resumed_operations = released, "conductor registered");
    Ok(())
}

async fn heartbeat_loop(conductor: Arc<Conductor>, shutdown: CancellationToken) {
    let interval = conductor.settings.heartbeat_interval;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {
                match conductor.database.services().heartbeat(&conductor.settings.host, CONDUCTOR_BINARY, Utc::now()).await {
                    Ok(service) => tracing::debug!(report_count = service.report_count, "heartbeat"),
                    Err(error) => tracing::warn!(%error, "heartbeat failed; retrying at the next interval"),
                }
            }
        }
    }
}

async fn work_loop(conductor: Arc<Conductor>, shutdown: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(
        conductor.settings.workers.max(1),
    ));
    let running = TaskTracker::new();
    let lease = chrono::Duration::from_std(conductor.settings.lease)
        .unwrap_or_else(|_| chrono::Duration::seconds(30));
    loop {
        while let Ok(slot) = slots.clone().try_acquire_owned() {
            let claimed = match conductor.database.clock().await {
                Ok(now) => {
                    conductor
                        .database
                        .work_queue()
                        .claim_next(&conductor.settings.lease_owner, lease, now)
                        .await
                }
                Err(error) => Err(error),
            };
            match claimed {
                Ok(Some(cluster)) => {
                    let conductor = conductor.clone();
                    let shutdown = shutdown.child_token();
                    running.spawn(async move {
                        reconcile::reconcile(conductor, cluster, shutdown).await;
                        drop(slot);
                    });
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, "cannot claim work");
                    break;
                }
            }
        }
        // Work recorded by this process (an API in `serve`) starts at once; other
        // processes' work is found by the next poll.
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(conductor.settings.poll_interval) => {}
            _ = conductor.database.work_recorded() => {}
        }
    }
    running.close();
    running.wait().await;
}

/// Runs the conductor until `shutdown` is cancelled: heartbeats, cluster operations and
/// health checks. Operations under way at shutdown release their leases and are resumed by
/// the next conductor to claim them.
pub async fn run(conductor: Arc<Conductor>, shutdown: CancellationToken) {
    // Keys for the next clusters' CAs and certificates are made ahead, off the request path.
    magnum_x509::key_pool::warm(conductor.certificates.x509.rsa_key_size);
    tracing::info!(host = %conductor.settings.host, workers = conductor.settings.workers, "conductor started");
    let tasks = TaskTracker::new();
    tasks.spawn(heartbeat_loop(conductor.clone(), shutdown.clone()));
    tasks.spawn(work_loop(conductor.clone(), shutdown.clone()));
    tasks.spawn(health::sync_loop(conductor.clone(), shutdown.clone()));
    tasks.close();
    tasks.wait().await;
    tracing::info!("conductor stopped");
}
