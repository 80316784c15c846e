//! Periodic comparison of idle clusters with their infrastructure: `health_status` and its
//! reason, and auto-healing (label `auto_healing_enabled=true`) by asking for an update that
//! re-applies the cluster's shape.
//!
//! Clusters are checked side by side, each within its own deadline, so one tenant's
//! unresponsive nodes delay nobody else's check.

use crate::spec::cluster_spec;
use crate::{certificates, Conductor};
use futures::StreamExt;
use magnum_core::cluster::{Cluster, HealthStatus};
use magnum_core::lifecycle::Operation;
use magnum_driver::ClusterCertificates;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub(crate) async fn sync_loop(conductor: Arc<Conductor>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(conductor.settings.sync_interval) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            result = sync_once(&conductor) => {
                if let Err(error) = result {
                    tracing::warn!(%error, "health check failed");
                }
            }
        }
    }
}

/// Checks every idle, usable cluster once, several at a time.
pub(crate) async fn sync_once(conductor: &Conductor) -> Result<(), String> {
    let clusters = conductor
        .database
        .clusters()
        .idle()
        .await
        .map_err(|error| error.to_string())?;
    let limit = conductor.settings.health_check_timeout;
    futures::stream::iter(
        clusters
            .into_iter()
            .filter(|cluster| cluster.status.is_complete()),
    )
    .for_each_concurrent(conductor.settings.health_check_concurrency.max(1), |cluster| async move {
        let uuid = cluster.uuid.clone();
        match tokio::time::timeout(limit, check(conductor, cluster)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::debug!(cluster = %uuid, %error, "cannot check"),
            Err(_) => {
                tracing::warn!(cluster = %uuid, ?limit, "health check took too long; skipped this round")
            }
        }
    })
    .await;
    Ok(())
}

/// Checks one cluster and asks for a repair when it is unhealthy and auto-healing is on.
async fn check(conductor: &Conductor, cluster: Cluster) -> Result<(), String> {
    let template = conductor
        .database
        .cluster_templates()
        .get_by_uuid(&cluster.cluster_template_id)
        .await
        .map_err(|error| error.to_string())?;
    let driver_name = cluster
        .driver
        .clone()
        .or_else(|| template.driver.clone())
        .ok_or("no driver")?;
    let driver = conductor
        .infrastructure
        .driver(&driver_name)
        .map_err(|error| error.message)?;
    let certificates: Option<Arc<dyn ClusterCertificates>> = if template.tls_disabled {
        None
    } else {
        match certificates::load(&conductor.database, &conductor.certificates, &cluster.uuid)
            .await?
        {
            Some(stored) => Some(stored),
            None => return Err("no certificates yet".to_string()),
        }
    };
    let groups = conductor
        .database
        .nodegroups()
        .all(&cluster.uuid)
        .await
        .map_err(|error| error.to_string())?;
    let mut spec = cluster_spec(&cluster, &template, &groups, certificates, false);
    spec.credentials = crate::spec::trusted_credentials(&conductor.database, &cluster).await?;
    let observed = driver
        .observe(&spec)
        .await
        .map_err(|error| error.to_string())?;
    let health = if observed.health.healthy {
        HealthStatus::Healthy
    } else {
        HealthStatus::Unhealthy
    };
    if cluster.health_status != Some(health) {
        tracing::info!(cluster = %cluster.uuid, health = health.as_str(), reason = ?observed.health.reason, "health changed");
    }
    conductor
        .database
        .clusters()
        .record_health(cluster.id, health, &observed.health.reason)
        .await
        .map_err(|error| error.to_string())?;
    let auto_healing = cluster
        .labels
        .get("auto_healing_enabled")
        .is_some_and(|value| value.eq_ignore_ascii_case("true"));
    if health == HealthStatus::Unhealthy && auto_healing {
        let mut repair = conductor
            .database
            .clusters()
            .get_by_uuid(&cluster.uuid)
            .await
            .map_err(|error| error.to_string())?;
        if repair.operation.is_some() || repair.begin(Operation::Update).is_err() {
            return Ok(());
        }
        let problems: Vec<String> = observed
            .health
            .reason
            .iter()
            .filter(|(_, value)| !matches!(value.as_str(), "ok" | "True"))
            .map(|(key, value)| format!("{key}: {value}"))
            .collect();
        repair.status_reason = Some(format!("auto-healing: {}", problems.join("; ")));
        match conductor.database.clusters().update(&repair).await {
            Ok(_) => tracing::info!(cluster = %cluster.uuid, "auto-healing requested"),
            Err(error) => {
                tracing::debug!(cluster = %cluster.uuid, %error, "auto-healing request lost a race")
            }
        }
    }
    Ok(())
}
