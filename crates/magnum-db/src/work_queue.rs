//! The conductor's work queue on the `cluster` table.
//!
//! A cluster row holds its pending `operation` and a lease (`lease_owner`,
//! `lease_expires_at`). A conductor claims work with one conditional UPDATE, so two
//! conductors can never both win; while it works it renews the lease; a crashed conductor's
//! lease expires and another (or its restart, which reclaims its own leases) takes the work
//! over. Everything a worker writes is conditional on holding the lease and on the operation
//! generation it claimed, so work superseded by a newer request writes nothing.

use crate::cluster::{decode, to_json};
use crate::{nodegroup, time, Database, DbResult};
use chrono::{DateTime, Utc};
use magnum_core::cluster::Cluster;

/// The work queue of cluster operations.
#[derive(Debug, Clone, Copy)]
pub struct WorkQueue<'a> {
    database: &'a Database,
}

impl Database {
    pub fn work_queue(&self) -> WorkQueue<'_> {
        WorkQueue { database: self }
    }
}

impl WorkQueue<'_> {
    /// Claims the next cluster with a pending operation whose lease is free or expired, for
    /// `lease_for`. Returns the claimed row.
    pub async fn claim_next(
        &self,
        owner: &str,
        lease_for: chrono::Duration,
        now: DateTime<Utc>,
    ) -> DbResult<Option<Cluster>> {
        let now_text = time::encode(&now);
        let candidates: Vec<i64> = sqlx::query_scalar(self.database.dialect().sql(
            "SELECT id FROM cluster WHERE operation IS NOT NULL AND \
             (lease_expires_at IS NULL OR lease_expires_at < ?) ORDER BY id LIMIT 20",
        ))
        .bind(now_text.clone())
        .fetch_all(self.database.pool())
        .await?;
        for id in candidates {
            let claimed = {
                let _turn = self.database.write_turn().await;
                sqlx::query(self.database.dialect().sql(
                    "UPDATE cluster SET lease_owner = ?, lease_expires_at = ?, \
                     operation_started_at = COALESCE(operation_started_at, ?), version = version + 1 \
                     WHERE id = ? AND operation IS NOT NULL \
                     AND (lease_expires_at IS NULL OR lease_expires_at < ?)",
                ))
                .bind(owner.to_string())
                .bind(time::encode(&(now + lease_for)))
                .bind(now_text.clone())
                .bind(id)
                .bind(now_text.clone())
                .execute(self.database.pool())
                .await?
                .rows_affected()
            };
            if claimed == 1 {
                let sql = format!("{} WHERE id = ?", self.database.clusters().select());
                let row = sqlx::query(self.database.dialect().sql(sql))
                    .bind(id)
                    .fetch_optional(self.database.pool())
                    .await?;
                if let Some(row) = row {
                    return Ok(Some(decode(&row)?));
                }
            }
        }
        Ok(None)
    }

    /// Extends our lease; false when we no longer hold it.
    pub async fn renew_lease(&self, id: i64, owner: &str, until: DateTime<Utc>) -> DbResult<bool> {
        let _turn = self.database.write_turn().await;
        let result = sqlx::query(
            self.database
                .dialect()
                .sql("UPDATE cluster SET lease_expires_at = ? WHERE id = ? AND lease_owner = ?"),
        )
        .bind(time::encode(&until))
        .bind(id)
        .bind(owner.to_string())
        .execute(self.database.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The operation generation of a cluster now (None when it is gone).
    pub async fn operation_generation(&self, id: i64) -> DbResult<Option<i64>> {
        Ok(sqlx::query_scalar(
            self.database
                .dialect()
                .sql("SELECT operation_generation FROM cluster WHERE id = ?"),
        )
        .bind(id)
        .fetch_optional(self.database.pool())
        .await?)
    }

    /// Records what the conductor observed while it holds the lease and the operation is
    /// still `generation`: status, reason and observed attributes. With `finished`, the
    /// operation is cleared and the lease released. Returns false when the operation was
    /// superseded meanwhile (nothing is written then). A finished operation also ends the
    /// pending changes of the non-default nodegroups (see [`nodegroup::finish_groups`]);
    /// `nodegroups` is what the driver observed of them.
    pub async fn record_progress(
        &self,
        observed: &Cluster,
        owner: &str,
        generation: i64,
        finished: bool,
        nodegroups: Option<&nodegroup::ObservedGroups>,
    ) -> DbResult<bool> {
        let sql =
            "UPDATE cluster SET status = ?, status_reason = ?, stack_id = ?, api_address = ?, \
             master_addresses = ?, node_addresses = ?, coe_version = ?, container_version = ?, \
             discovery_url = ?, health_status = ?, health_status_reason = ?, node_count = ?, \
             master_count = ?, nodes_to_remove = ?, operation = ?, cluster_template_id = ?, \
             rollback_template_id = ?, rollback_reason = ?, operation_attempts = ?, \
             operation_started_at = ?, labels = ?, \
             lease_owner = ?, lease_expires_at = ?, updated_at = ?, version = version + 1 \
             WHERE id = ? AND lease_owner = ? AND operation_generation = ?";
        let operation = if finished {
            None
        } else {
            observed.operation.map(|op| op.as_str().to_string())
        };
        let lease_owner = if finished {
            None
        } else {
            Some(owner.to_string())
        };
        // The cluster row and its nodegroups change together: nobody sees a finished
        // cluster whose nodegroups are still in progress, even after a crash.
        let _turn = self.database.write_turn().await;
        let mut transaction = self.database.begin_write().await?;
        let lease_expiry: Option<String> = if finished {
            None
        } else {
            sqlx::query_scalar(
                self.database
                    .dialect()
                    .sql("SELECT lease_expires_at FROM cluster WHERE id = ?"),
            )
            .bind(observed.id)
            .fetch_optional(&mut *transaction)
            .await?
            .flatten()
        };
        let result = sqlx::query(self.database.dialect().sql(sql))
            .bind(observed.status.as_str().to_string())
            .bind(observed.status_reason.clone())
            .bind(observed.stack_id.clone())
            .bind(observed.api_address.clone())
            .bind(to_json(&observed.master_addresses))
            .bind(to_json(&observed.node_addresses))
            .bind(observed.coe_version.clone())
            .bind(observed.container_version.clone())
            .bind(observed.discovery_url.clone())
            .bind(
                observed
                    .health_status
                    .map(|status| status.as_str().to_string()),
            )
            .bind(to_json(&observed.health_status_reason))
            .bind(observed.node_count)
            .bind(observed.master_count)
            .bind(to_json(&observed.nodes_to_remove))
            .bind(operation)
            .bind(observed.cluster_template_id.clone())
            .bind(observed.rollback_template_id.clone())
            .bind(if finished {
                None
            } else {
                observed.rollback_reason.clone()
            })
            .bind(if finished {
                0
            } else {
                observed.operation_attempts
            })
            .bind(if finished {
                None
            } else {
                observed.operation_started_at.as_ref().map(time::encode)
            })
            .bind(to_json(&observed.labels))
            .bind(lease_owner)
            .bind(lease_expiry)
            .bind(time::encode(&Utc::now()))
            .bind(observed.id)
            .bind(owner.to_string())
            .bind(generation)
            .execute(&mut *transaction)
            .await?;
        if result.rows_affected() != 1 {
            return Ok(false);
        }
        nodegroup::sync_default_groups(self.database, &mut transaction, observed, nodegroups)
            .await?;
        if finished {
            nodegroup::finish_groups(self.database, &mut transaction, observed, nodegroups).await?;
        }
        transaction.commit().await?;
        Ok(true)
    }

    /// Releases every lease `owner` holds: a restarted conductor takes its interrupted work up
    /// again at once instead of waiting for its old leases to expire.
    pub async fn release_all_leases(&self, owner: &str) -> DbResult<u64> {
        let _turn = self.database.write_turn().await;
        Ok(sqlx::query(self.database.dialect().sql(
            "UPDATE cluster SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = ?",
        ))
        .bind(owner.to_string())
        .execute(self.database.pool())
        .await?
        .rows_affected())
    }

    /// Lets nobody (us included) take the work before `until`, recording the failed
    /// attempts so far and, when given, what the work waits for: how a worker frees itself
    /// while the infrastructure is busy, or before retrying. Nothing is written when the
    /// lease is no longer ours or the operation was superseded.
    pub async fn postpone(
        &self,
        id: i64,
        owner: &str,
        generation: i64,
        until: DateTime<Utc>,
        attempts: i64,
        status_reason: Option<&str>,
    ) -> DbResult<bool> {
        let _turn = self.database.write_turn().await;
        let result = sqlx::query(self.database.dialect().sql(
            "UPDATE cluster SET lease_owner = NULL, lease_expires_at = ?, operation_attempts = ?, \
             status_reason = COALESCE(?, status_reason), updated_at = ?, version = version + 1 \
             WHERE id = ? AND lease_owner = ? AND operation_generation = ?",
        ))
        .bind(time::encode(&until))
        .bind(attempts)
        .bind(status_reason.map(str::to_string))
        .bind(time::encode(&Utc::now()))
        .bind(id)
        .bind(owner.to_string())
        .bind(generation)
        .execute(self.database.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Gives a lease back without finishing (on shutdown, or when the work was superseded).
    pub async fn release_lease(&self, id: i64, owner: &str) -> DbResult<()> {
        {
            let _turn = self.database.write_turn().await;
            sqlx::query(self.database.dialect().sql(
                "UPDATE cluster SET lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND lease_owner = ?",
            ))
            .bind(id)
            .bind(owner.to_string())
            .execute(self.database.pool())
            .await?;
        }
        self.database.signal_work();
        Ok(())
    }

    /// Removes a deleted cluster's rows (cluster, nodegroups, certificates, discovery tokens) if the delete is
    /// still the operation `generation` and we hold its lease.
    pub async fn remove_deleted(
        &self,
        id: i64,
        uuid: &str,
        owner: &str,
        generation: i64,
    ) -> DbResult<bool> {
        let _turn = self.database.write_turn().await;
        let mut transaction = self.database.begin_write().await?;
        let removed = sqlx::query(self.database.dialect().sql(
            "DELETE FROM cluster WHERE id = ? AND lease_owner = ? AND operation_generation = ? AND operation = 'delete'",
        ))
        .bind(id)
        .bind(owner.to_string())
        .bind(generation)
        .execute(&mut *transaction)
        .await?
        .rows_affected();
        if removed == 1 {
            for sql in [
                "DELETE FROM nodegroup WHERE cluster_id = ?",
                "DELETE FROM cluster_certificate WHERE cluster_uuid = ?",
            ] {
                sqlx::query(self.database.dialect().sql(sql))
                    .bind(uuid.to_string())
                    .execute(&mut *transaction)
                    .await?;
            }
            crate::discovery::delete_for_cluster_in(self.database, &mut transaction, uuid).await?;
        }
        transaction.commit().await?;
        self.database.cluster_cache.forget(id);
        Ok(removed == 1)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_fixtures::{cluster, defaults, page};
    use crate::testing::database;
    use crate::DbError;
    use chrono::Utc;
    use magnum_core::lifecycle::{ClusterStatus, Operation};

    #[tokio::test]
    async fn only_one_conductor_wins_a_claim() {
        let test = database().await;
        let clusters = test.database.clusters();
        let queue = test.database.work_queue();
        let stored = clusters
            .insert(&cluster("p", "claimed", 1), &defaults(&clusters).await)
            .await
            .unwrap();
        let now = Utc::now();
        let lease = chrono::Duration::seconds(30);
        let (first, second) = tokio::join!(
            queue.claim_next("a", lease, now),
            queue.claim_next("b", lease, now)
        );
        let winners = [first.unwrap(), second.unwrap()]
            .into_iter()
            .flatten()
            .count();
        assert_eq!(winners, 1);
        // Nobody else gets it before the lease expires; after expiry anyone may.
        assert!(queue.claim_next("c", lease, now).await.unwrap().is_none());
        let later = now + chrono::Duration::seconds(31);
        let taken_over = queue.claim_next("c", lease, later).await.unwrap().unwrap();
        assert_eq!(taken_over.uuid, stored.uuid);
        // A restarted owner releases its leases and claims again at once.
        assert!(queue.claim_next("c", lease, later).await.unwrap().is_none());
        assert_eq!(queue.release_all_leases("c").await.unwrap(), 1);
        let reclaimed = queue.claim_next("c", lease, later).await.unwrap().unwrap();
        // Postponed work waits for its time, whoever asks.
        assert!(queue
            .postpone(
                reclaimed.id,
                "c",
                reclaimed.operation_generation,
                later + chrono::Duration::seconds(10),
                1,
                Some("waiting")
            )
            .await
            .unwrap());
        assert!(queue.claim_next("d", lease, later).await.unwrap().is_none());
        assert!(queue.claim_next("c", lease, later).await.unwrap().is_none());
        let after = later + chrono::Duration::seconds(11);
        assert!(queue.claim_next("d", lease, after).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn progress_is_refused_once_the_operation_is_superseded() {
        let test = database().await;
        let clusters = test.database.clusters();
        let groups = test.database.nodegroups();
        let queue = test.database.work_queue();
        clusters
            .insert(&cluster("p", "racing", 1), &defaults(&clusters).await)
            .await
            .unwrap();
        let claimed = queue
            .claim_next("a", chrono::Duration::seconds(30), Utc::now())
            .await
            .unwrap()
            .unwrap();
        // The API records a delete meanwhile.
        let mut deleting = claimed.clone();
        deleting.operation = Some(Operation::Delete);
        deleting.operation_generation += 1;
        deleting.status = ClusterStatus::DeleteInProgress;
        let deleting = clusters.update(&deleting).await.unwrap();
        let mut observed = claimed.clone();
        observed.status = ClusterStatus::CreateComplete;
        assert!(!queue
            .record_progress(&observed, "a", claimed.operation_generation, true, None)
            .await
            .unwrap());
        assert_eq!(
            clusters.get_by_uuid(&claimed.uuid).await.unwrap().status,
            ClusterStatus::DeleteInProgress
        );
        // The superseded worker lets go; the delete's worker finishes it.
        queue.release_lease(claimed.id, "a").await.unwrap();
        let claimed_delete = queue
            .claim_next("a", chrono::Duration::seconds(30), Utc::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed_delete.operation, Some(Operation::Delete));
        assert!(queue
            .remove_deleted(
                claimed_delete.id,
                &claimed_delete.uuid,
                "a",
                deleting.operation_generation
            )
            .await
            .unwrap());
        assert!(matches!(
            clusters.get_by_uuid(&claimed.uuid).await,
            Err(DbError::NotFound)
        ));
        assert!(groups
            .list(&claimed.uuid, None, &page())
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn finishing_clears_the_operation_and_the_lease() {
        let test = database().await;
        let clusters = test.database.clusters();
        let groups = test.database.nodegroups();
        let queue = test.database.work_queue();
        clusters
            .insert(&cluster("p", "finishing", 2), &defaults(&clusters).await)
            .await
            .unwrap();
        let claimed = queue
            .claim_next("a", chrono::Duration::seconds(30), Utc::now())
            .await
            .unwrap()
            .unwrap();
        let mut observed = claimed.clone();
        observed.api_address = Some("https://10.0.0.10:2376".to_string());
        observed.node_addresses = vec!["10.0.0.20".to_string(), "10.0.0.21".to_string()];
        assert!(queue
            .record_progress(&observed, "a", claimed.operation_generation, false, None)
            .await
            .unwrap());
        assert!(queue
            .claim_next("b", chrono::Duration::seconds(30), Utc::now())
            .await
            .unwrap()
            .is_none());
        observed.status = ClusterStatus::CreateComplete;
        assert!(queue
            .record_progress(&observed, "a", claimed.operation_generation, true, None)
            .await
            .unwrap());
        let done = clusters.get_by_uuid(&claimed.uuid).await.unwrap();
        assert_eq!(done.status, ClusterStatus::CreateComplete);
        assert_eq!(done.operation, None);
        assert_eq!(done.node_addresses.len(), 2);
        let worker = groups.get(&done.uuid, "default-worker").await.unwrap();
        assert_eq!(worker.node_addresses.len(), 2);
        assert_eq!(worker.status, ClusterStatus::CreateComplete);
        assert!(queue
            .claim_next("b", chrono::Duration::seconds(30), Utc::now())
            .await
            .unwrap()
            .is_none());
        assert_eq!(clusters.idle().await.unwrap().len(), 1);
    }
}
