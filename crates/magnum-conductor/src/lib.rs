//! The conductor: makes infrastructure match what the database asks for.
//!
//! The API records a cluster's desired shape and a pending operation; conductors claim
//! operations with leases in the database (so several conductor processes can share one
//! database and none is needed for the others to progress), carry them out through drivers
//! one step at a time ([`reconcile`]), and record the outcome. A step that has to wait for
//! the infrastructure gives its worker back and the operation is claimed again when it is
//! due, so a few workers serve any number of slow operations. Periodically conductors also
//! compare idle clusters with what the infrastructure reports ([`health`]) and heartbeat in
//! `magnum_service`.
//!
//! Architecture invariant: a conductor may be killed at any instant. All it knows lives in
//! the database and in the infrastructure's labels; every driver call is idempotent.

pub mod certificates;
mod health;
pub mod instance;
mod reconcile;
pub mod spec;

use chrono::Utc;
use magnum_db::Database;
use magnum_driver::Infrastructure;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use certificates::CertificateSettings;

/// The binary name conductors register under, as upstream's `magnum-conductor`.
pub const CONDUCTOR_BINARY: &str = "magnum-conductor";

/// How often and how patiently a failing step is tried again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Failed attempts after which the operation ends `*_FAILED` with the last reason.
    pub max_attempts: i64,
    /// The pause after the first failure; each further failure doubles it.
    pub first_delay: Duration,
    /// The longest pause.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The pause before attempt `attempts + 1`, after `attempts` failures: exponential,
    /// capped, and spread by `jitter` (0 to 1) over its upper half so that operations that
    /// failed together do not retry together.
    pub fn delay(&self, attempts: i64, jitter: f64) -> Duration {
        let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let full = self
            .first_delay
            .saturating_mul(2_u32.saturating_pow(exponent))
            .min(self.max_delay);
        full.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            first_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(300),
        }
    }
}

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
    /// Operation steps carried out at the same time.
    pub workers: usize,
    /// How long a claim lasts without renewal.
    pub lease: Duration,
    /// Time between looks for new work.
    pub poll_interval: Duration,
    /// Time between health checks of idle clusters.
    pub sync_interval: Duration,
    /// How failing steps are retried.
    pub retry: RetryPolicy,
    /// How long an operation other than a create (which has `create_timeout`) may take.
    pub operation_timeout: Duration,
    /// How long one driver call may take.
    pub call_timeout: Duration,
    /// How long the health check of one cluster may take.
    pub health_check_timeout: Duration,
    /// Clusters checked at the same time by a health sync.
    pub health_check_concurrency: usize,
}

impl ConductorSettings {
    /// Settings for tests and examples: `host`, short intervals, the defaults otherwise.
    pub fn for_host(host: &str, lease_owner: &str) -> ConductorSettings {
        ConductorSettings {
            host: host.to_string(),
            lease_owner: lease_owner.to_string(),
            heartbeat_interval: Duration::from_secs(60),
            workers: 4,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            sync_interval: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            operation_timeout: Duration::from_secs(3600),
            call_timeout: Duration::from_secs(300),
            health_check_timeout: Duration::from_secs(30),
            health_check_concurrency: 8,
        }
    }
}

/// Everything the conductor's tasks share.
#[derive(Debug)]
pub struct Conductor {
    pub database: Database,
    pub infrastructure: Arc<Infrastructure>,
    pub certificates: CertificateSettings,
    pub settings: ConductorSettings,
    /// Woken when postponed work of this process comes due.
    wakeup: tokio::sync::Notify,
}

impl Conductor {
    pub fn new(
        database: Database,
        infrastructure: Arc<Infrastructure>,
        certificates: CertificateSettings,
        settings: ConductorSettings,
    ) -> Conductor {
        Conductor {
            database,
            infrastructure,
            certificates,
            settings,
            wakeup: tokio::sync::Notify::new(),
        }
    }

    /// Looks for work again after `delay` (work this process postponed comes due).
    fn wake_after(self: &Arc<Self>, delay: Duration) {
        let conductor = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(conductor) = conductor.upgrade() {
                conductor.wakeup.notify_one();
            }
        });
    }
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
        // Work recorded by this process (an API in `serve`), work of ours coming due and a
        // freed worker start at once; other processes' work is found by the next poll.
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(conductor.settings.poll_interval) => {}
            _ = conductor.database.work_recorded() => {}
            _ = conductor.wakeup.notified() => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_exponentially_within_the_cap_and_jitter() {
        let policy = RetryPolicy {
            max_attempts: 5,
            first_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
        };
        assert_eq!(policy.delay(1, 1.0), Duration::from_secs(2));
        assert_eq!(policy.delay(2, 1.0), Duration::from_secs(4));
        assert_eq!(policy.delay(3, 1.0), Duration::from_secs(8));
        assert_eq!(policy.delay(10, 1.0), Duration::from_secs(60));
        assert_eq!(policy.delay(i64::MAX, 1.0), Duration::from_secs(60));
        assert_eq!(policy.delay(3, 0.0), Duration::from_secs(4));
        let spread = policy.delay(3, 0.5);
        assert!(spread > Duration::from_secs(4) && spread < Duration::from_secs(8));
    }
}
