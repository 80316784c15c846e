//! The `nodegroup` table: the groups of each cluster's nodes.
//!
//! The default groups (`default-master`, `default-worker`) mirror their cluster's row: their
//! sizes are its counts and their status is its status, rewritten in the same transaction as
//! every change of the cluster. Other worker groups keep their own size and status; a change
//! of one is stored together with the cluster's new operation ([`NodeGroupChange`]), and
//! ended with it when the conductor records the operation's end. Everything here that writes
//! runs on the connection of the cluster's transaction.

use crate::cluster::{argument_error, corrupt, json_column, to_json};
use crate::page::{order_by, Bind, Page};
use crate::{row, time, Database, DbResult};
use chrono::Utc;
use magnum_core::cluster::Cluster;
use magnum_core::cluster::{DEFAULT_MASTER_NODEGROUP, DEFAULT_WORKER_NODEGROUP};
use magnum_core::lifecycle::NodeGroupEnd;
use magnum_core::nodegroup::{NodeGroup, NodeGroupRole};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::AnyConnection;
use std::collections::BTreeMap;

/// What a driver observed of a cluster's nodegroups, by nodegroup name: their nodes'
/// addresses, and the infrastructure handle of those that have their own (a Heat stack
/// per non-default nodegroup; the others take the cluster's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedGroups {
    pub addresses: BTreeMap<String, Vec<String>>,
    pub stack_ids: BTreeMap<String, String>,
}

pub use magnum_core::cluster::{
    DEFAULT_MASTER_NODEGROUP as DEFAULT_MASTER, DEFAULT_WORKER_NODEGROUP as DEFAULT_WORKER,
};

pub(crate) const NODEGROUP_COLUMNS: &str = "id, uuid, name, cluster_id, project_id, \
    docker_volume_size, labels, flavor_id, image_id, node_addresses, node_count, role, \
    max_node_count, min_node_count, is_default, stack_id, status, status_reason, node_labels, \
    node_taints, created_at, updated_at";

fn optional_json(row: &AnyRow, column: &'static str) -> DbResult<Option<serde_json::Value>> {
    match row::optional_text(row, column)? {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| corrupt(column, error)),
    }
}

pub(crate) fn decode_nodegroup(row: &AnyRow) -> DbResult<NodeGroup> {
    let status = row::optional_text(row, "status")?.unwrap_or_default();
    Ok(NodeGroup {
        id: row::integer(row, "id")?,
        uuid: row::text(row, "uuid")?,
        name: row::text(row, "name")?,
        cluster_id: row::text(row, "cluster_id")?,
        project_id: row::text(row, "project_id")?,
        docker_volume_size: row::optional_integer(row, "docker_volume_size")?,
        labels: json_column(row, "labels")?,
        flavor_id: row::optional_text(row, "flavor_id")?,
        image_id: row::optional_text(row, "image_id")?,
        node_addresses: json_column(row, "node_addresses")?,
        node_count: row::integer(row, "node_count")?,
        role: NodeGroupRole::parse(&row::text(row, "role")?),
        max_node_count: row::optional_integer(row, "max_node_count")?,
        min_node_count: row::integer(row, "min_node_count")?,
        is_default: row::boolean(row, "is_default")?,
        stack_id: row::optional_text(row, "stack_id")?,
        status: status
            .parse()
            .map_err(|error: String| corrupt("status", error))?,
        status_reason: row::optional_text(row, "status_reason")?,
        node_labels: optional_json(row, "node_labels")?,
        node_taints: optional_json(row, "node_taints")?,
        created_at: time::decode("created_at", &row::text(row, "created_at")?)?,
        updated_at: time::decode_optional("updated_at", row::optional_text(row, "updated_at")?)?,
    })
}

/// A change to one nodegroup, stored in the same transaction as its cluster's new operation.
#[derive(Debug, Clone)]
pub enum NodeGroupChange {
    /// A new (non-default) nodegroup.
    Insert(NodeGroup),
    /// New counts, limits, node labels/taints and status of an existing nodegroup (by uuid).
    Update(NodeGroup),
}

/// What the default nodegroups are made from when a cluster is created.
#[derive(Debug, Clone)]
pub struct DefaultNodeGroups {
    /// The revision of the cluster's template the request was checked against: the insert
    /// is refused ([`crate::DbError::Stale`]) when the template changed since.
    pub template_revision: i64,
    pub image_id: String,
    pub master_flavor_id: Option<String>,
    pub worker_flavor_id: Option<String>,
    pub min_node_count: i64,
}

/// Inserts a new cluster's default nodegroups.
pub(crate) async fn insert_defaults(
    database: &Database,
    connection: &mut AnyConnection,
    cluster: &Cluster,
    defaults: &DefaultNodeGroups,
) -> DbResult<()> {
    for (name, role, count, flavor, min_count) in [
        (
            DEFAULT_MASTER_NODEGROUP,
            NodeGroupRole::Master,
            cluster.master_count,
            &defaults.master_flavor_id,
            0,
        ),
        (
            DEFAULT_WORKER_NODEGROUP,
            NodeGroupRole::Worker,
            cluster.node_count,
            &defaults.worker_flavor_id,
            defaults.min_node_count,
        ),
    ] {
        sqlx::query(database.dialect().sql(
            "INSERT INTO nodegroup (uuid, name, cluster_id, project_id, docker_volume_size, labels, \
             flavor_id, image_id, node_addresses, node_count, role, max_node_count, min_node_count, \
             is_default, stack_id, status, status_reason, version, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, '[]', ?, ?, NULL, ?, 1, NULL, ?, NULL, 0, ?)",
        ))
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(name.to_string())
        .bind(cluster.uuid.clone())
        .bind(cluster.project_id.clone())
        .bind(cluster.docker_volume_size)
        .bind(to_json(&cluster.labels))
        .bind(flavor.clone())
        .bind(defaults.image_id.clone())
        .bind(count)
        .bind(role.as_str().to_string())
        .bind(min_count)
        .bind(cluster.status.as_str().to_string())
        .bind(time::encode(&cluster.created_at))
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// Stores one nodegroup change of `cluster`.
pub(crate) async fn apply_change(
    database: &Database,
    connection: &mut AnyConnection,
    cluster: &Cluster,
    change: &NodeGroupChange,
) -> DbResult<()> {
    let dialect = database.dialect();
    match change {
        NodeGroupChange::Insert(group) => {
            sqlx::query(dialect.sql(
                "INSERT INTO nodegroup (uuid, name, cluster_id, project_id, docker_volume_size, \
                 labels, flavor_id, image_id, node_addresses, node_count, role, max_node_count, \
                 min_node_count, is_default, stack_id, status, status_reason, node_labels, \
                 node_taints, version, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, '[]', ?, ?, ?, ?, 0, ?, ?, NULL, ?, ?, 0, ?)",
            ))
            .bind(group.uuid.clone())
            .bind(group.name.clone())
            .bind(group.cluster_id.clone())
            .bind(group.project_id.clone())
            .bind(group.docker_volume_size)
            .bind(to_json(&group.labels))
            .bind(group.flavor_id.clone())
            .bind(group.image_id.clone())
            .bind(group.node_count)
            .bind(group.role.as_str().to_string())
            .bind(group.max_node_count)
            .bind(group.min_node_count)
            .bind(group.stack_id.clone())
            .bind(group.status.as_str().to_string())
            .bind(group.node_labels.as_ref().map(to_json))
            .bind(group.node_taints.as_ref().map(to_json))
            .bind(time::encode(&group.created_at))
            .execute(&mut *connection)
            .await?;
        }
        NodeGroupChange::Update(group) => {
            sqlx::query(dialect.sql(
                "UPDATE nodegroup SET node_count = ?, min_node_count = ?, max_node_count = ?, \
                 status = ?, status_reason = ?, node_labels = ?, node_taints = ?, \
                 updated_at = ?, version = version + 1 WHERE uuid = ? AND cluster_id = ?",
            ))
            .bind(group.node_count)
            .bind(group.min_node_count)
            .bind(group.max_node_count)
            .bind(group.status.as_str().to_string())
            .bind(group.status_reason.clone())
            .bind(group.node_labels.as_ref().map(to_json))
            .bind(group.node_taints.as_ref().map(to_json))
            .bind(time::encode(&Utc::now()))
            .bind(group.uuid.clone())
            .bind(cluster.uuid.clone())
            .execute(&mut *connection)
            .await?;
        }
    }
    Ok(())
}

/// Keeps the default nodegroups' counts, addresses and status in line with the cluster.
/// `addresses` (by nodegroup name, from the driver) gives each group its own nodes;
/// without it the default worker group shows the cluster's worker addresses.
pub(crate) async fn sync_default_groups(
    database: &Database,
    connection: &mut AnyConnection,
    cluster: &Cluster,
    observed: Option<&ObservedGroups>,
) -> DbResult<()> {
    let worker_addresses = observed
        .and_then(|observed| observed.addresses.get(DEFAULT_WORKER))
        .unwrap_or(&cluster.node_addresses);
    for (role, count, addresses) in [
        (
            NodeGroupRole::Master,
            cluster.master_count,
            &cluster.master_addresses,
        ),
        (NodeGroupRole::Worker, cluster.node_count, worker_addresses),
    ] {
        sqlx::query(database.dialect().sql(
            "UPDATE nodegroup SET node_count = ?, node_addresses = ?, status = ?, status_reason = ?, \
             stack_id = ?, updated_at = ?, version = version + 1, \
             image_id = COALESCE((SELECT t.image_id FROM cluster_template t WHERE t.uuid = ?), image_id) \
             WHERE cluster_id = ? AND role = ? AND is_default = 1",
        ))
        .bind(count)
        .bind(to_json(addresses))
        .bind(cluster.status.as_str().to_string())
        .bind(cluster.status_reason.clone())
        .bind(cluster.stack_id.clone())
        .bind(time::encode(&Utc::now()))
        .bind(cluster.cluster_template_id.clone())
        .bind(cluster.uuid.clone())
        .bind(role.as_str().to_string())
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// Ends the pending changes of a cluster's non-default nodegroups once its operation
/// finished, as the lifecycle table says ([`NodeGroup::finish`]): a deleted group's row is
/// removed when the deletion succeeded, a failed change takes the cluster's reason, and
/// every group takes its node addresses and stack from `observed`.
pub(crate) async fn finish_groups(
    database: &Database,
    connection: &mut AnyConnection,
    cluster: &Cluster,
    observed: Option<&ObservedGroups>,
) -> DbResult<()> {
    let succeeded = !cluster.status.is_failed();
    let sql = format!(
        "SELECT {NODEGROUP_COLUMNS} FROM nodegroup WHERE cluster_id = ? AND is_default = 0"
    );
    let rows = sqlx::query(database.dialect().sql(sql))
        .bind(cluster.uuid.clone())
        .fetch_all(&mut *connection)
        .await?;
    let groups: Vec<NodeGroup> = rows.iter().map(decode_nodegroup).collect::<DbResult<_>>()?;
    for group in groups {
        let (status, reason) = match group.finish(succeeded) {
            NodeGroupEnd::Removed => {
                sqlx::query(
                    database
                        .dialect()
                        .sql("DELETE FROM nodegroup WHERE uuid = ?"),
                )
                .bind(group.uuid.clone())
                .execute(&mut *connection)
                .await?;
                continue;
            }
            NodeGroupEnd::Status(status) if status == group.status => {
                (status, group.status_reason.clone())
            }
            NodeGroupEnd::Status(status) if status.is_failed() => {
                (status, cluster.status_reason.clone())
            }
            NodeGroupEnd::Status(status) => (status, None),
        };
        let node_addresses = observed
            .and_then(|observed| observed.addresses.get(&group.name))
            .cloned()
            .unwrap_or(group.node_addresses);
        let stack_id = observed
            .and_then(|observed| observed.stack_ids.get(&group.name))
            .cloned()
            .or_else(|| cluster.stack_id.clone());
        sqlx::query(database.dialect().sql(
            "UPDATE nodegroup SET status = ?, status_reason = ?, node_addresses = ?, \
             stack_id = ?, updated_at = ?, version = version + 1 WHERE uuid = ?",
        ))
        .bind(status.as_str().to_string())
        .bind(reason)
        .bind(to_json(&node_addresses))
        .bind(stack_id)
        .bind(time::encode(&Utc::now()))
        .bind(group.uuid.clone())
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// Repository of nodegroups (reads; writes go with their cluster's, see [`crate::cluster`]).
#[derive(Debug, Clone, Copy)]
pub struct NodeGroups<'a> {
    database: &'a Database,
}

impl Database {
    pub fn nodegroups(&self) -> NodeGroups<'_> {
        NodeGroups { database: self }
    }
}

impl NodeGroups<'_> {
    /// Every nodegroup of a cluster, oldest first: what the conductor builds.
    pub async fn all(&self, cluster_uuid: &str) -> DbResult<Vec<NodeGroup>> {
        let sql =
            format!("SELECT {NODEGROUP_COLUMNS} FROM nodegroup WHERE cluster_id = ? ORDER BY id");
        let rows = sqlx::query(self.database.dialect().sql(sql))
            .bind(cluster_uuid.to_string())
            .fetch_all(self.database.pool())
            .await?;
        rows.iter().map(decode_nodegroup).collect()
    }

    /// The nodegroups of a cluster, optionally of one role, with paging by uuid marker.
    pub async fn list(
        &self,
        cluster_uuid: &str,
        role: Option<&str>,
        page: &Page,
    ) -> DbResult<Vec<NodeGroup>> {
        let mut sql = format!("SELECT {NODEGROUP_COLUMNS} FROM nodegroup WHERE cluster_id = ?");
        let mut binds = vec![Bind::Text(cluster_uuid.to_string())];
        if let Some(role) = role {
            sql.push_str(" AND role = ?");
            binds.push(Bind::Text(role.to_string()));
        }
        if let Some(marker) = &page.marker {
            let marker_id: Option<i64> = sqlx::query_scalar(
                self.database
                    .dialect()
                    .sql("SELECT id FROM nodegroup WHERE uuid = ? AND cluster_id = ?"),
            )
            .bind(marker.clone())
            .bind(cluster_uuid.to_string())
            .fetch_optional(self.database.pool())
            .await?;
            let marker_id = marker_id.ok_or(crate::DbError::MarkerNotFound)?;
            sql.push_str(if page.sort_dir == crate::SortDirection::Asc {
                " AND id > ?"
            } else {
                " AND id < ?"
            });
            binds.push(Bind::Integer(marker_id));
        }
        sql.push(' ');
        sql.push_str(&order_by("id", page.sort_dir));
        sql.push_str(" LIMIT ?");
        binds.push(Bind::Integer(i64::try_from(page.limit).unwrap_or(i64::MAX)));
        let mut arguments = AnyArguments::default();
        for bind in &binds {
            bind.add_to(&mut arguments).map_err(argument_error)?;
        }
        let rows = sqlx::query_with(self.database.dialect().sql(sql), arguments)
            .fetch_all(self.database.pool())
            .await?;
        rows.iter().map(decode_nodegroup).collect()
    }

    /// One nodegroup of a cluster by uuid or name.
    pub async fn get(&self, cluster_uuid: &str, ident: &str) -> DbResult<NodeGroup> {
        let sql = format!(
            "SELECT {NODEGROUP_COLUMNS} FROM nodegroup WHERE cluster_id = ? AND (uuid = ? OR name = ?)"
        );
        let row = sqlx::query(self.database.dialect().sql(sql))
            .bind(cluster_uuid.to_string())
            .bind(ident.to_string())
            .bind(ident.to_string())
            .fetch_optional(self.database.pool())
            .await?
            .ok_or(crate::DbError::NotFound)?;
        decode_nodegroup(&row)
    }
}

#[cfg(test)]
mod tests {
    use crate::nodegroup::{NodeGroupChange, DEFAULT_MASTER, DEFAULT_WORKER};
    use crate::test_fixtures::{cluster, defaults, extra_group, finish_operation};
    use crate::testing::database;
    use crate::DbError;
    use chrono::Utc;
    use magnum_core::lifecycle::{ClusterStatus, Operation};
    use serde_json::json;
    use std::collections::BTreeMap;

    #[tokio::test]
    async fn a_nodegroup_is_recorded_with_its_operation_and_ended_by_the_conductor() {
        let test = database().await;
        let clusters = test.database.clusters();
        let queue = test.database.work_queue();
        let groups = test.database.nodegroups();
        clusters
            .insert(&cluster("p", "ngs", 1), &defaults(&clusters).await)
            .await
            .unwrap();
        let built = finish_operation(&clusters, ClusterStatus::CreateComplete, None).await;
        assert_eq!(built.extra_worker_count, 0);

        // The API records the resize operation and the new group in one transaction.
        let mut changing = built.clone();
        changing.status = ClusterStatus::UpdateInProgress;
        changing.operation = Some(Operation::Resize);
        changing.operation_generation += 1;
        let group = extra_group(&built, "pool", 2);
        let stored = clusters
            .update_with_nodegroup(&changing, Some(&NodeGroupChange::Insert(group.clone())))
            .await
            .unwrap();
        assert_eq!(stored.extra_worker_count, 2);
        assert_eq!(stored.status, ClusterStatus::UpdateInProgress);
        // A second group of that name is a duplicate, and the cluster is left as it was.
        let mut again = stored.clone();
        again.operation_generation += 1;
        let clash = clusters
            .update_with_nodegroup(
                &again,
                Some(&NodeGroupChange::Insert(extra_group(&built, "pool", 1))),
            )
            .await;
        assert!(matches!(clash, Err(DbError::Duplicate)), "{clash:?}");
        let unchanged = clusters.get_by_uuid(&stored.uuid).await.unwrap();
        assert_eq!(unchanged.revision, stored.revision);
        assert_eq!(unchanged.extra_worker_count, 2);

        let addresses = BTreeMap::from([
            (
                "pool".to_string(),
                vec!["10.1.0.21".to_string(), "10.1.0.22".to_string()],
            ),
            (DEFAULT_WORKER.to_string(), vec!["10.1.0.20".to_string()]),
        ]);
        let observed = super::ObservedGroups {
            addresses: addresses.clone(),
            stack_ids: BTreeMap::from([("pool".to_string(), "stack-of-pool".to_string())]),
        };
        let updated =
            finish_operation(&clusters, ClusterStatus::UpdateComplete, Some(&observed)).await;
        assert_eq!(updated.extra_worker_count, 2);
        let pool = groups.get(&updated.uuid, "pool").await.unwrap();
        assert_eq!(pool.status, ClusterStatus::CreateComplete);
        assert_eq!(pool.node_addresses, addresses["pool"]);
        assert_eq!(pool.stack_id.as_deref(), Some("stack-of-pool"));
        assert_eq!(pool.node_labels, Some(json!({"tier": "b"})));
        let default_worker = groups.get(&updated.uuid, DEFAULT_WORKER).await.unwrap();
        assert_eq!(default_worker.node_addresses, addresses[DEFAULT_WORKER]);

        // A failed resize of the group leaves it UPDATE_FAILED with the cluster's reason.
        let mut resizing = updated.clone();
        resizing.status = ClusterStatus::UpdateInProgress;
        resizing.operation = Some(Operation::Resize);
        resizing.operation_generation += 1;
        let mut bigger = pool.clone();
        bigger.node_count = 3;
        bigger.status = ClusterStatus::UpdateInProgress;
        clusters
            .update_with_nodegroup(&resizing, Some(&NodeGroupChange::Update(bigger)))
            .await
            .unwrap();
        let claimed = queue
            .claim_next("a", chrono::Duration::seconds(30), Utc::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.extra_worker_count, 3);
        let mut failed = claimed.clone();
        failed.status = ClusterStatus::UpdateFailed;
        failed.status_reason = Some("no room".to_string());
        queue
            .record_progress(&failed, "a", claimed.operation_generation, true, None)
            .await
            .unwrap();
        let pool = groups.get(&updated.uuid, "pool").await.unwrap();
        assert_eq!(pool.status, ClusterStatus::UpdateFailed);
        assert_eq!(pool.status_reason.as_deref(), Some("no room"));

        // A deleted group's row goes once the conductor has removed its nodes.
        let mut deleting = clusters.get_by_uuid(&updated.uuid).await.unwrap();
        deleting.status = ClusterStatus::UpdateInProgress;
        deleting.operation = Some(Operation::Resize);
        deleting.operation_generation += 1;
        let mut gone = pool.clone();
        gone.status = ClusterStatus::DeleteInProgress;
        clusters
            .update_with_nodegroup(&deleting, Some(&NodeGroupChange::Update(gone)))
            .await
            .unwrap();
        let ended = finish_operation(&clusters, ClusterStatus::UpdateComplete, None).await;
        assert_eq!(ended.extra_worker_count, 0);
        assert!(matches!(
            groups.get(&ended.uuid, "pool").await,
            Err(DbError::NotFound)
        ));
        let names: Vec<String> = groups
            .all(&ended.uuid)
            .await
            .unwrap()
            .into_iter()
            .map(|group| group.name)
            .collect();
        assert_eq!(names, [DEFAULT_MASTER, DEFAULT_WORKER]);
    }
}
