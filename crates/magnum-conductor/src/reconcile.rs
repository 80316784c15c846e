//! Carrying out one cluster operation the conductor has claimed.
//!
//! While the driver works, a keeper task renews the lease, writes progress messages into
//! `status_reason`, and notices when the operation is superseded (a delete during a create,
//! a second resize): then the work is abandoned and the lease released, and the new
//! operation is claimed afresh. A create that outlives `create_timeout` ends in
//! `CREATE_FAILED`. A crash anywhere leaves the operation in the database; the lease expires
//! (or the restarted conductor releases it) and the idempotent driver call runs again.

use crate::certificates;
use crate::Conductor;
use chrono::Utc;
use magnum_core::cluster::{Cluster, HealthStatus};
use magnum_core::lifecycle::Operation;
use magnum_driver::{
    ClusterCertificates, ClusterSpec, DriverError, Observed, ProgressSink, WorkerGroupSpec,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How one attempt ended.
enum Outcome {
    /// The operation ended (well or badly): record this final state, with the node
    /// addresses of each nodegroup when the driver reported them.
    Finished(Box<Cluster>, Option<BTreeMap<String, Vec<String>>>),
    /// Try again after a pause.
    Retry(String),
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

/// What the driver needs of a cluster's nodegroups: the worker groups besides
/// `default-worker` (a group being deleted is left out, so its nodes go) and every group's
/// node labels.
pub(crate) struct NodeGroupSpecs {
    pub extra_worker_groups: Vec<WorkerGroupSpec>,
    pub node_labels: BTreeMap<String, BTreeMap<String, String>>,
}

pub(crate) async fn nodegroup_specs(
    database: &magnum_db::Database,
    cluster_uuid: &str,
) -> Result<NodeGroupSpecs, magnum_db::DbError> {
    let groups = database.nodegroups().all(cluster_uuid).await?;
    let node_labels = groups
        .iter()
        .filter(|group| group.node_labels.is_some())
        .map(|group| (group.name.clone(), group.node_label_pairs()))
        .collect();
    let extra_worker_groups = groups
        .into_iter()
        .filter(|group| !group.is_default && !group.role.is_master())
        .filter(|group| !group.is_being_deleted())
        .map(|group| WorkerGroupSpec {
            name: group.name,
            node_count: group.node_count,
            flavor: group.flavor_id,
            image: group.image_id,
        })
        .collect();
    Ok(NodeGroupSpecs {
        extra_worker_groups,
        node_labels,
    })
}

/// Builds the driver's view of the cluster.
pub(crate) fn cluster_spec(
    cluster: &Cluster,
    template: &magnum_core::cluster_template::ClusterTemplate,
    groups: NodeGroupSpecs,
    certificates: Option<Arc<dyn ClusterCertificates>>,
    reissue_certificates: bool,
) -> ClusterSpec {
    ClusterSpec {
        uuid: cluster.uuid.clone(),
        name: cluster.name.clone().unwrap_or_else(|| cluster.uuid.clone()),
        coe: template.coe,
        image: template.image_id.clone(),
        master_flavor: cluster.master_flavor_id.clone(),
        node_flavor: cluster.flavor_id.clone(),
        master_count: cluster.master_count,
        master_lb_enabled: cluster.master_lb_enabled,
        node_count: cluster.node_count,
        extra_worker_groups: groups.extra_worker_groups,
        node_labels: groups.node_labels,
        nodes_to_remove: cluster.nodes_to_remove.clone(),
        dns_nameserver: template.dns_nameserver.clone(),
        fixed_network: cluster.fixed_network.clone(),
        http_proxy: template.http_proxy.clone(),
        https_proxy: template.https_proxy.clone(),
        no_proxy: template.no_proxy.clone(),
        network_driver: template.network_driver.clone(),
        tls_disabled: template.tls_disabled,
        labels: cluster.labels.clone(),
        docker_volume_size: cluster.docker_volume_size,
        certificates,
        reissue_certificates,
    }
}

fn failed(cluster: &Cluster, operation: Operation, reason: String) -> Outcome {
    let mut ended = cluster.clone();
    ended.finish(operation, false, Some(reason));
    Outcome::Finished(Box::new(ended), None)
}

fn from_driver_error(cluster: &Cluster, operation: Operation, error: DriverError) -> Outcome {
    match error {
        DriverError::Retryable(reason) => Outcome::Retry(reason),
        DriverError::Permanent(reason) => failed(cluster, operation, reason),
    }
}

async fn perform(
    conductor: &Conductor,
    cluster: &Cluster,
    operation: Operation,
    progress: &ProgressChannel,
) -> Outcome {
    let database = &conductor.database;
    let template = match database
        .cluster_templates()
        .get_by_uuid(&cluster.cluster_template_id)
        .await
    {
        Ok(template) => template,
        Err(magnum_db::DbError::NotFound) if operation == Operation::Delete => {
            return remove(conductor, cluster).await;
        }
        Err(magnum_db::DbError::NotFound) => {
            return failed(
                cluster,
                operation,
                format!(
                    "The cluster template {} no longer exists.",
                    cluster.cluster_template_id
                ),
            )
        }
        Err(error) => return Outcome::Retry(error.to_string()),
    };
    let driver = conductor.drivers.for_template(&template);
    if operation == Operation::Delete {
        if let Ok(driver) = &driver {
            progress.report("deleting the cluster's infrastructure");
            if let Err(error) = driver.delete(&cluster.uuid).await {
                return from_driver_error(cluster, operation, error);
            }
        }
        return remove(conductor, cluster).await;
    }
    let driver = match driver {
        Ok(driver) => driver,
        Err(error) => return failed(cluster, operation, error.message),
    };
    let certificates: Option<Arc<dyn ClusterCertificates>> = if template.tls_disabled {
        None
    } else {
        let name = cluster.name.clone().unwrap_or_else(|| cluster.uuid.clone());
        match certificates::ensure(
            database,
            &conductor.certificates,
            &cluster.uuid,
            &name,
            operation == Operation::RotateCa,
        )
        .await
        {
            Ok(stored) => Some(stored),
            Err(error) => {
                return Outcome::Retry(format!(
                    "cannot prepare the cluster's certificates: {error}"
                ))
            }
        }
    };
    let groups = match nodegroup_specs(database, &cluster.uuid).await {
        Ok(groups) => groups,
        Err(error) => return Outcome::Retry(error.to_string()),
    };
    let spec = cluster_spec(
        cluster,
        &template,
        groups,
        certificates,
        operation == Operation::RotateCa,
    );
    match driver.apply(&spec, progress).await {
        Ok(observed) => {
            let mut ended = with_observed(cluster, &observed);
            ended.finish(operation, true, None);
            Outcome::Finished(Box::new(ended), Some(observed.nodegroup_addresses))
        }
        Err(error) => from_driver_error(cluster, operation, error),
    }
}

async fn remove(conductor: &Conductor, cluster: &Cluster) -> Outcome {
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
        Ok(_) => Outcome::Removed,
        Err(error) => Outcome::Retry(error.to_string()),
    }
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

/// Carries out the claimed operation of `cluster` until it ends, is superseded, times out
/// or the conductor shuts down.
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

async fn reconcile_operation(
    conductor: Arc<Conductor>,
    cluster: Cluster,
    operation: Operation,
    shutdown: CancellationToken,
) {
    let owner = conductor.settings.lease_owner.clone();
    let clusters = conductor.database.work_queue();
    tracing::info!(status = %cluster.status, "starting");
    let (progress_sender, mut progress_receiver) = watch::channel(None::<String>);
    let superseded = CancellationToken::new();
    let finished = CancellationToken::new();
    let keeper = {
        let conductor = conductor.clone();
        let cluster = cluster.clone();
        let superseded = superseded.clone();
        let finished = finished.clone();
        let owner = owner.clone();
        tokio::spawn(async move {
            let clusters = conductor.database.work_queue();
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
                        let generation = clusters.operation_generation(cluster.id).await.ok().flatten();
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
                        if let Ok(false) = clusters.record_progress(&in_progress, &owner, cluster.operation_generation, false, None).await {
                            superseded.cancel();
                            break;
                        }
                    }
                }
            }
        })
    };
    let deadline = match (operation, cluster.create_deadline) {
        (Operation::Create, Some(deadline)) => {
            let remaining = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            Some((remaining, cluster.create_timeout))
        }
        _ => None,
    };
    let progress = ProgressChannel(progress_sender);
    let timeout = async {
        match deadline {
            Some((remaining, _)) => tokio::time::sleep(remaining).await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        outcome = perform(&conductor, &cluster, operation, &progress) => Some(outcome),
        _ = timeout => {
            let minutes = deadline.map(|(_, minutes)| minutes).unwrap_or_default();
            Some(failed(&cluster, operation, format!("Cluster creation timed out after {minutes} minute(s) (create_timeout).")))
        }
        _ = superseded.cancelled() => None,
        _ = shutdown.cancelled() => None,
    };
    finished.cancel();
    let _ = keeper.await;
    match outcome {
        None => {
            tracing::info!("stopped: superseded by a newer operation, or shutting down");
            let _ = clusters.release_lease(cluster.id, &owner).await;
        }
        Some(Outcome::Removed) => tracing::info!("deleted"),
        Some(Outcome::Finished(ended, addresses)) => {
            match clusters
                .record_progress(
                    &ended,
                    &owner,
                    cluster.operation_generation,
                    true,
                    addresses.as_ref(),
                )
                .await
            {
                Ok(true) => {
                    tracing::info!(from = %cluster.status, to = %ended.status, reason = ?ended.status_reason, "finished")
                }
                Ok(false) => tracing::info!("finished, but the operation was superseded meanwhile"),
                Err(error) => {
                    tracing::warn!(%error, "cannot record the outcome; the operation will run again");
                    let _ = clusters.release_lease(cluster.id, &owner).await;
                }
            }
        }
        Some(Outcome::Retry(reason)) => {
            tracing::warn!(%reason, "will retry");
            let mut waiting = cluster.clone();
            waiting.status_reason = Some(format!("{reason} (retrying)"));
            let _ = clusters
                .record_progress(&waiting, &owner, cluster.operation_generation, false, None)
                .await;
            let now = conductor
                .database
                .clock()
                .await
                .unwrap_or_else(|_| Utc::now());
            let until = now
                + chrono::Duration::from_std(conductor.settings.retry_after).unwrap_or_default();
            let _ = clusters.postpone(cluster.id, &owner, until).await;
        }
    }
}
