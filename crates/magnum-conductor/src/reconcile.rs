//! One step of a cluster operation the conductor has claimed.
//!
//! A step asks the driver to take the infrastructure one step closer to what the database
//! asks for (or to remove it), and ends in one of four ways: the operation is finished
//! (its final state is recorded), it must wait (the work is postponed until the driver's
//! "look again" time and the worker is freed), it failed in a way worth retrying (postponed
//! with exponential backoff and jitter, until the retry budget is spent), or it failed for
//! good. A failed upgrade turns into a rollback to the template it came from.
//!
//! While the driver works, a keeper task renews the lease, writes progress messages into
//! `status_reason`, and notices when the operation is superseded (a delete during a create,
//! a second resize) or the lease cannot be kept: then the work is abandoned and the new
//! operation is claimed afresh. Operations have deadlines: a create its `create_timeout`,
//! others `[conductor] operation_timeout`. A crash anywhere leaves the operation in the
//! database; the lease expires (or the restarted conductor releases it) and the idempotent
//! driver call runs again.

use crate::spec::{cluster_ref, cluster_spec, trusted_credentials};
use crate::{certificates, Conductor};
use chrono::{DateTime, Utc};
use magnum_core::cluster::{Cluster, HealthStatus};
use magnum_core::lifecycle::Operation;
use magnum_db::nodegroup::ObservedGroups;
use magnum_driver::{
    ClusterCertificates, ClusterDriver, DriverError, Observed, Progress, ProgressSink, Removal,
    Waiting,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How one step ended.
enum Step {
    /// The operation ended well: record this final state, with what the driver observed of
    /// each nodegroup when it reported that.
    Done(Box<Cluster>, Option<ObservedGroups>),
    /// Under way: look again later.
    Waiting(Waiting),
    /// Failed; worth another attempt after a pause.
    Retry(String),
    /// Failed for good.
    Failed(String),
    /// The cluster's rows are gone (a finished delete).
    Removed,
}

/// Sends progress messages to the keeper task.
struct ProgressChannel(watch::Sender<Option<String>>);

impl ProgressSink for ProgressChannel {
    fn report(&self, message: &str) {
        tracing::info!(progress = message);
        let _ = self.0.send(Some(message.to_string()));
    }
}

/// A cluster's state with what the driver observed.
fn with_observed(cluster: &Cluster, observed: &Observed) -> Cluster {
    let mut updated = cluster.clone();
    updated.stack_id = observed.stack_id.clone().or(updated.stack_id);
    updated.api_address = observed.api_address.clone();
    updated.master_addresses = observed.master_addresses.clone();
    updated.node_addresses = observed.node_addresses.clone();
    updated.coe_version = observed.coe_version.clone();
    updated.container_version = observed.container_version.clone();
    updated.health_status = Some(if observed.health.healthy {
        HealthStatus::Healthy
    } else {
        HealthStatus::Unhealthy
    });
    updated.health_status_reason = observed.health.reason.clone();
    updated
}

fn from_driver_error(error: DriverError) -> Step {
    match error {
        DriverError::Retryable(reason) => Step::Retry(reason),
        DriverError::Permanent(reason) => Step::Failed(reason),
    }
}

/// The driver of a cluster: the one recorded with it, else its template's.
fn driver_of(
    conductor: &Conductor,
    cluster: &Cluster,
    template: Option<&magnum_core::cluster_template::ClusterTemplate>,
) -> Option<Result<Arc<dyn ClusterDriver>, String>> {
    let name = cluster
        .driver
        .clone()
        .or_else(|| template.and_then(|template| template.driver.clone()))?;
    Some(
        conductor
            .infrastructure
            .driver(&name)
            .map_err(|error| error.message),
    )
}

async fn delete_step(conductor: &Conductor, cluster: &Cluster, progress: &ProgressChannel) -> Step {
    let template = match conductor
        .database
        .cluster_templates()
        .get_by_uuid(&cluster.cluster_template_id)
        .await
    {
        Ok(template) => Some(template),
        Err(magnum_db::DbError::NotFound) => None,
        Err(error) => return Step::Retry(error.to_string()),
    };
    match driver_of(conductor, cluster, template.as_deref()) {
        // No driver was ever chosen for it, so nothing can have been built.
        None => remove_rows(conductor, cluster).await,
        Some(Err(reason)) => Step::Failed(format!(
            "The cluster's infrastructure cannot be removed: {reason}"
        )),
        Some(Ok(driver)) => {
            progress.report("deleting the cluster's infrastructure");
            let mut reference = cluster_ref(cluster);
            match trusted_credentials(&conductor.database, cluster).await {
                Ok(credentials) => reference.credentials = credentials,
                Err(reason) => return Step::Retry(reason),
            }
            match driver.delete(&reference).await {
                Ok(Removal::Gone) => remove_rows(conductor, cluster).await,
                Ok(Removal::Waiting(waiting)) => Step::Waiting(waiting),
                Err(error) => from_driver_error(error),
            }
        }
    }
}

async fn apply_step(
    conductor: &Conductor,
    cluster: &Cluster,
    operation: Operation,
    progress: &ProgressChannel,
) -> Step {
    let database = &conductor.database;
    let template = match database
        .cluster_templates()
        .get_by_uuid(&cluster.cluster_template_id)
        .await
    {
        Ok(template) => template,
        Err(magnum_db::DbError::NotFound) => {
            return Step::Failed(format!(
                "The cluster template {} no longer exists.",
                cluster.cluster_template_id
            ))
        }
        Err(error) => return Step::Retry(error.to_string()),
    };
    let driver = match driver_of(conductor, cluster, Some(&template)) {
        Some(Ok(driver)) => driver,
        Some(Err(reason)) => return Step::Failed(reason),
        None => {
            return Step::Failed(format!(
                "No driver can build clusters from template {}.",
                template.uuid
            ))
        }
    };
    let certificates: Option<Arc<dyn ClusterCertificates>> = if template.tls_disabled {
        None
    } else {
        // A rotation makes a new CA once: the first step of the operation makes it, later
        // steps find one younger than the operation.
        let rotate_before = (operation == Operation::RotateCa)
            .then_some(cluster.operation_started_at)
            .flatten();
        match certificates::ensure(
            database,
            &conductor.certificates,
            &cluster.uuid,
            &crate::spec::display_name(cluster),
            certificates::extra_ca_types(template.coe),
            rotate_before,
        )
        .await
        {
            Ok(stored) => Some(stored),
            Err(error) => {
                return Step::Retry(format!(
                    "cannot prepare the cluster's certificates: {error}"
                ))
            }
        }
    };
    let groups = match database.nodegroups().all(&cluster.uuid).await {
        Ok(groups) => groups,
        Err(error) => return Step::Retry(error.to_string()),
    };
    let mut spec = cluster_spec(
        cluster,
        &template,
        &groups,
        certificates,
        operation == Operation::RotateCa,
    );
    match trusted_credentials(database, cluster).await {
        Ok(credentials) => spec.credentials = credentials,
        Err(reason) => return Step::Retry(reason),
    }
    match driver.apply(&spec, progress).await {
        Ok(Progress::Done(observed)) => {
            let mut ended = with_observed(cluster, &observed);
            ended.finish(operation, true, None);
            Step::Done(
                Box::new(ended),
                Some(ObservedGroups {
                    addresses: observed.nodegroup_addresses,
                    stack_ids: observed.nodegroup_stack_ids,
                }),
            )
        }
        Ok(Progress::Waiting(waiting)) => Step::Waiting(waiting),
        Err(error) => from_driver_error(error),
    }
}

async fn remove_rows(conductor: &Conductor, cluster: &Cluster) -> Step {
    if let Err(reason) = release_trust(conductor, cluster).await {
        return Step::Retry(reason);
    }
    match conductor
        .database
        .work_queue()
        .remove_deleted(
            cluster.id,
            &cluster.uuid,
            &conductor.settings.lease_owner,
            cluster.operation_generation,
        )
        .await
    {
        Ok(_) => Step::Removed,
        Err(error) => Step::Retry(error.to_string()),
    }
}

/// Removes the trust and trustee a cloud gave the cluster (see `magnum_db::trust`), once
/// its infrastructure is gone; nothing to do for clusters without one.
async fn release_trust(conductor: &Conductor, cluster: &Cluster) -> Result<(), String> {
    let trusts = conductor.database.trusts();
    let record = match trusts.get(&cluster.uuid).await {
        Ok(record) => record,
        Err(magnum_db::DbError::NotFound) => return Ok(()),
        Err(error) => return Err(error.to_string()),
    };
    let kind = cluster
        .driver
        .as_deref()
        .and_then(|name| conductor.infrastructure.registry().by_name(name))
        .map(|driver| driver.provider)
        .unwrap_or(magnum_driver::ProviderKind::OpenStack);
    let provider = conductor
        .infrastructure
        .lookups(kind)
        .map_err(|error| format!("the cluster's trust cannot be removed: {}", error.message))?;
    let grant = magnum_driver::ClusterGrant {
        trustee_user_id: record.trustee_user_id,
        trustee_username: record.trustee_username,
        trust_id: record.trust_id,
    };
    provider
        .revoke_cluster(&cluster.uuid, &grant)
        .await
        .map_err(|error| format!("the cluster's trust cannot be removed yet: {error}"))?;
    trusts
        .delete(&cluster.uuid)
        .await
        .map_err(|error| error.to_string())
}

/// Extends our lease on a cluster by `lease` from the database's clock; false when the lease
/// is no longer ours.
async fn renew(
    database: &magnum_db::Database,
    cluster_id: i64,
    owner: &str,
    lease: Duration,
) -> Result<bool, magnum_db::DbError> {
    let now = database.clock().await?;
    let until = now + chrono::Duration::from_std(lease).unwrap_or_default();
    database
        .work_queue()
        .renew_lease(cluster_id, owner, until)
        .await
}

/// When the operation must have finished, and how to say it did not.
fn deadline(
    conductor: &Conductor,
    cluster: &Cluster,
    operation: Operation,
) -> Option<(DateTime<Utc>, String)> {
    match operation {
        Operation::Create => cluster.create_deadline.map(|at| {
            (
                at,
                format!(
                    "Cluster creation timed out after {} minute(s) (create_timeout).",
                    cluster.create_timeout
                ),
            )
        }),
        _ => {
            let timeout = chrono::Duration::from_std(conductor.settings.operation_timeout).ok()?;
            let started = cluster.operation_started_at?;
            Some((
                started.checked_add_signed(timeout)?,
                format!(
                    "The {} operation timed out after {} minute(s) ([conductor] operation_timeout).",
                    operation.as_str(),
                    timeout.num_minutes()
                ),
            ))
        }
    }
}

/// Carries out one step of the claimed operation of `cluster`.
pub(crate) async fn reconcile(
    conductor: Arc<Conductor>,
    cluster: Cluster,
    shutdown: CancellationToken,
) {
    let Some(operation) = cluster.operation else {
        let _ = conductor
            .database
            .work_queue()
            .release_lease(cluster.id, &conductor.settings.lease_owner)
            .await;
        return;
    };
    let span = tracing::info_span!(
        "reconcile",
        cluster = %cluster.uuid,
        operation = operation.as_str(),
        generation = cluster.operation_generation
    );
    reconcile_operation(conductor, cluster, operation, shutdown)
        .instrument(span)
        .await
}

/// Runs `step` while a keeper renews the lease and records progress; None when the work was
/// superseded, the lease lost, or the conductor is shutting down.
async fn with_keeper(
    conductor: &Arc<Conductor>,
    cluster: &Cluster,
    step: impl std::future::Future<Output = Step>,
    progress_receiver: watch::Receiver<Option<String>>,
    shutdown: &CancellationToken,
) -> Option<Step> {
    let owner = conductor.settings.lease_owner.clone();
    let superseded = CancellationToken::new();
    let finished = CancellationToken::new();
    let keeper = {
        let conductor = conductor.clone();
        let cluster = cluster.clone();
        let superseded = superseded.clone();
        let finished = finished.clone();
        let mut progress_receiver = progress_receiver;
        tokio::spawn(async move {
            let queue = conductor.database.work_queue();
            let lease = conductor.settings.lease;
            let mut ticker = tokio::time::interval(lease / 3);
            ticker.tick().await;
            let mut last_renewed = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = finished.cancelled() => break,
                    _ = ticker.tick() => {
                        match renew(&conductor.database, cluster.id, &owner, lease).await {
                            Ok(true) => last_renewed = tokio::time::Instant::now(),
                            Ok(false) => {
                                tracing::warn!("the lease was taken over; abandoning the work");
                                superseded.cancel();
                                break;
                            }
                            // The lease may run out before a renewal gets through: stop
                            // before another conductor can start the same work.
                            Err(error) if last_renewed.elapsed() >= lease / 2 => {
                                tracing::warn!(%error, "cannot renew the lease; abandoning the work");
                                superseded.cancel();
                                break;
                            }
                            Err(error) => {
                                tracing::warn!(%error, "cannot renew the lease; trying again");
                                continue;
                            }
                        }
                        let generation = queue.operation_generation(cluster.id).await.ok().flatten();
                        if generation != Some(cluster.operation_generation) {
                            superseded.cancel();
                            break;
                        }
                    }
                    changed = progress_receiver.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let message = progress_receiver.borrow_and_update().clone();
                        let mut in_progress = cluster.clone();
                        in_progress.status_reason = message;
                        if let Ok(false) = queue.record_progress(&in_progress, &owner, cluster.operation_generation, false, None).await {
                            superseded.cancel();
                            break;
                        }
                    }
                }
            }
        })
    };
    let outcome = tokio::select! {
        step = step => Some(step),
        _ = superseded.cancelled() => None,
        _ = shutdown.cancelled() => None,
    };
    finished.cancel();
    let _ = keeper.await;
    outcome
}

async fn reconcile_operation(
    conductor: Arc<Conductor>,
    cluster: Cluster,
    operation: Operation,
    shutdown: CancellationToken,
) {
    let owner = conductor.settings.lease_owner.clone();
    let queue = conductor.database.work_queue();
    let now = conductor
        .database
        .clock()
        .await
        .unwrap_or_else(|_| Utc::now());
    tracing::debug!(status = %cluster.status, attempts = cluster.operation_attempts, "step");
    let deadline = deadline(&conductor, &cluster, operation);
    let step = match &deadline {
        Some((at, message)) if *at <= now => Some(Step::Failed(message.clone())),
        _ => {
            let (progress_sender, progress_receiver) = watch::channel(None::<String>);
            let progress = ProgressChannel(progress_sender);
            let remaining = deadline
                .as_ref()
                .and_then(|(at, _)| (*at - now).to_std().ok())
                .unwrap_or(Duration::MAX);
            let limit = conductor.settings.call_timeout.min(remaining);
            let work = async {
                let step = async {
                    match operation {
                        Operation::Delete => delete_step(&conductor, &cluster, &progress).await,
                        _ => apply_step(&conductor, &cluster, operation, &progress).await,
                    }
                };
                match tokio::time::timeout(limit, step).await {
                    Ok(step) => step,
                    Err(_) if limit == remaining => Step::Failed(
                        deadline
                            .as_ref()
                            .map(|(_, message)| message.clone())
                            .unwrap_or_default(),
                    ),
                    Err(_) => Step::Retry(format!(
                        "the driver did not answer within {} s",
                        limit.as_secs()
                    )),
                }
            };
            with_keeper(&conductor, &cluster, work, progress_receiver, &shutdown).await
        }
    };
    let Some(step) = step else {
        tracing::info!("stopped: superseded by a newer operation, or shutting down");
        let _ = queue.release_lease(cluster.id, &owner).await;
        return;
    };
    let step = match step {
        Step::Retry(reason) => {
            let attempts = cluster.operation_attempts + 1;
            if attempts >= conductor.settings.retry.max_attempts {
                Step::Failed(format!("{reason} (gave up after {attempts} attempts)"))
            } else {
                let delay = conductor.settings.retry.delay(attempts, rand::random());
                tracing::warn!(%reason, attempts, ?delay, "will retry");
                let status = format!("{reason} (attempt {attempts} failed; retrying)");
                postpone(&conductor, &cluster, delay, attempts, Some(&status)).await;
                return;
            }
        }
        other => other,
    };
    match step {
        Step::Retry(_) => {}
        Step::Removed => tracing::info!("deleted"),
        Step::Waiting(waiting) => {
            tracing::debug!(status = %waiting.status, after = ?waiting.recheck_after, "waiting");
            if waiting.stack_id.is_some() && waiting.stack_id != cluster.stack_id {
                let mut with_stack = cluster.clone();
                with_stack.stack_id = waiting.stack_id.clone();
                let _ = queue
                    .record_progress(
                        &with_stack,
                        &owner,
                        cluster.operation_generation,
                        false,
                        None,
                    )
                    .await;
            }
            postpone(
                &conductor,
                &cluster,
                waiting.recheck_after,
                0,
                Some(&waiting.status),
            )
            .await;
        }
        Step::Failed(reason)
            if operation == Operation::Upgrade && cluster.rollback_template_id.is_some() =>
        {
            let mut rolling_back = cluster.clone();
            // The versions return with the template the cluster came from.
            if let (Ok(failed), Some(Ok(previous))) = (
                conductor
                    .database
                    .cluster_templates()
                    .get_by_uuid(&cluster.cluster_template_id)
                    .await,
                match &cluster.rollback_template_id {
                    Some(uuid) => Some(
                        conductor
                            .database
                            .cluster_templates()
                            .get_by_uuid(uuid)
                            .await,
                    ),
                    None => None,
                },
            ) {
                magnum_core::labels::switch_version_labels(
                    &mut rolling_back.labels,
                    &failed.labels,
                    &previous.labels,
                );
            }
            match rolling_back.roll_back(&reason) {
                Ok(()) => {
                    tracing::warn!(%reason, "upgrade failed; rolling back");
                    record_end(&conductor, &cluster, &rolling_back, false, None).await;
                    conductor.wake_after(Duration::ZERO);
                }
                Err(_) => {
                    let mut ended = cluster.clone();
                    ended.finish(operation, false, Some(reason));
                    record_end(&conductor, &cluster, &ended, true, None).await;
                }
            }
        }
        Step::Failed(reason) => {
            let mut ended = cluster.clone();
            ended.finish(operation, false, Some(reason));
            record_end(&conductor, &cluster, &ended, true, None).await;
        }
        Step::Done(ended, nodegroups) => {
            record_end(&conductor, &cluster, &ended, true, nodegroups.as_ref()).await;
        }
    }
}

/// Records the end of a step that changes the cluster's status (finished, or turned into a
/// rollback); releases the lease when it cannot.
async fn record_end(
    conductor: &Conductor,
    claimed: &Cluster,
    ended: &Cluster,
    finished: bool,
    nodegroups: Option<&ObservedGroups>,
) {
    let queue = conductor.database.work_queue();
    let owner = &conductor.settings.lease_owner;
    match queue
        .record_progress(
            ended,
            owner,
            claimed.operation_generation,
            finished,
            nodegroups,
        )
        .await
    {
        Ok(true) if finished => {
            tracing::info!(from = %claimed.status, to = %ended.status, reason = ?ended.status_reason, "finished")
        }
        Ok(true) => {
            tracing::info!(from = %claimed.status, to = %ended.status, "continuing");
            let _ = queue.release_lease(claimed.id, owner).await;
        }
        Ok(false) => tracing::info!("ended, but the operation was superseded meanwhile"),
        Err(error) => {
            tracing::warn!(%error, "cannot record the outcome; the operation will run again");
            let _ = queue.release_lease(claimed.id, owner).await;
        }
    }
}

/// Frees the worker until `delay` has passed, keeping the operation.
async fn postpone(
    conductor: &Arc<Conductor>,
    cluster: &Cluster,
    delay: Duration,
    attempts: i64,
    status: Option<&str>,
) {
    let now = conductor
        .database
        .clock()
        .await
        .unwrap_or_else(|_| Utc::now());
    let until = now + chrono::Duration::from_std(delay).unwrap_or_default();
    match conductor
        .database
        .work_queue()
        .postpone(
            cluster.id,
            &conductor.settings.lease_owner,
            cluster.operation_generation,
            until,
            attempts,
            status,
        )
        .await
    {
        Ok(true) => conductor.wake_after(delay),
        Ok(false) => tracing::info!("postponed work was superseded meanwhile"),
        Err(error) => {
            tracing::warn!(%error, "cannot postpone; the lease will expire and the work run again");
        }
    }
}
