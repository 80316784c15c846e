//! Periodic comparison of idle clusters with their infrastructure: `health_status` and its
//! reason, and auto-healing (label `auto_healing_enabled=true`) by asking for an update that
//! re-applies the cluster's shape.

use crate::reconcile::{cluster_spec, nodegroup_specs};
use crate::{certificates, Conductor};
use magnum_core::cluster::HealthStatus;
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
        // A check may wait on an unresponsive node; shutting down does not wait for it.
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

/// Checks every idle, usable cluster once.
pub(crate) async fn sync_once(conductor: &Conductor) -> Result<(), String> {
    let clusters = conductor
        .database
        .clusters()
        .idle()
        .await
        .map_err(|error| error.to_string())?;
    for cluster in clusters
        .into_iter()
        .filter(|cluster| cluster.status.is_complete())
    {
        let Ok(template) = conductor
            .database
            .cluster_templates()
            .get_by_uuid(&cluster.cluster_template_id)
            .await
        else {
            continue;
        };
        let Ok(driver) = conductor.drivers.for_template(&template) else {
            continue;
        };
        let certificates: Option<Arc<dyn ClusterCertificates>> = if template.tls_disabled {
            None
        } else {
            match certificates::load(&conductor.database, &conductor.certificates, &cluster.uuid)
                .await
            {
                Ok(Some(stored)) => Some(stored),
                _ => continue,
            }
        };
        let Ok(groups) = nodegroup_specs(&conductor.database, &cluster.uuid).await else {
            continue;
        };
        let spec = cluster_spec(&cluster, &template, groups, certificates, false);
        let observed = match driver.observe(&spec).await {
            Ok(observed) => observed,
            Err(error) => {
                tracing::debug!(cluster = %cluster.uuid, %error, "cannot observe");
                continue;
            }
        };
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
            let Ok(mut repair) = conductor
                .database
                .clusters()
                .get_by_uuid(&cluster.uuid)
                .await
            else {
                continue;
            };
            if repair.operation.is_some() {
                continue;
            }
            if repair.begin(Operation::Update).is_err() {
                continue;
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
    }
    Ok(())
}
