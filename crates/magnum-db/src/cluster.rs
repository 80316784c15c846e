//! The `cluster` table: the desired shape a user asked for, the observed state, and the
//! pending operation the API records for a conductor.
//!
//! Every write of a cluster row also rewrites its default nodegroups in the same
//! transaction ([`crate::nodegroup`]); the conductor's side of the table (claims, leases,
//! progress) is [`crate::work_queue`].

use crate::nodegroup::{self, DefaultNodeGroups, NodeGroupChange};
use crate::page::{after_marker, order_by, Page, SortValue};
use crate::{row, time, Database, DbError, DbResult, ProjectLimits, Resource};
use chrono::Utc;
use magnum_core::cluster::{Cluster, HealthStatus};
use magnum_core::cluster_template::ClusterTemplate;
use std::sync::Arc;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Arguments, Row};

const COLUMNS: &str = "id, uuid, name, project_id, user_id, cluster_template_id, keypair, \
    docker_volume_size, labels, master_flavor_id, flavor_id, fixed_network, fixed_subnet, \
    floating_ip_enabled, master_lb_enabled, create_timeout, discovery_url, master_count, \
    node_count, stack_id, status, status_reason, health_status, health_status_reason, \
    api_address, master_addresses, node_addresses, coe_version, container_version, operation, \
    operation_generation, nodes_to_remove, create_deadline, driver, operation_started_at, \
    operation_attempts, rollback_template_id, rollback_reason, version, created_at, updated_at";

/// Columns a cluster list may be sorted by, with whether they hold integers.
const SORTABLE_COLUMNS: &[(&str, bool)] = &[
    ("id", true),
    ("uuid", false),
    ("name", false),
    ("project_id", false),
    ("user_id", false),
    ("cluster_template_id", false),
    ("keypair", false),
    ("docker_volume_size", true),
    ("master_flavor_id", false),
    ("flavor_id", false),
    ("create_timeout", true),
    ("discovery_url", false),
    ("master_count", true),
    ("node_count", true),
    ("stack_id", false),
    ("status", false),
    ("status_reason", false),
    ("health_status", false),
    ("api_address", false),
    ("coe_version", false),
    ("container_version", false),
    ("created_at", false),
    ("updated_at", false),
];

/// Whether `column` can be used as a cluster sort key.
pub fn is_sortable(column: &str) -> bool {
    SORTABLE_COLUMNS.iter().any(|(name, _)| *name == column)
}

/// Which clusters a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterVisibility {
    All,
    Project(String),
}

impl ClusterVisibility {
    /// Whether a cluster of `project_id` is visible.
    pub fn includes(&self, project_id: &str) -> bool {
        match self {
            ClusterVisibility::All => true,
            ClusterVisibility::Project(visible) => visible == project_id,
        }
    }

    fn condition(&self) -> (&'static str, Option<String>) {
        match self {
            ClusterVisibility::All => ("1 = 1", None),
            ClusterVisibility::Project(project_id) => ("project_id = ?", Some(project_id.clone())),
        }
    }
}

pub(crate) fn corrupt(column: &'static str, reason: impl ToString) -> DbError {
    DbError::Corrupt {
        column,
        reason: reason.to_string(),
    }
}

pub(crate) fn json_column<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    column: &'static str,
) -> DbResult<T> {
    let text = row::text(row, column)?;
    serde_json::from_str(&text).map_err(|error| corrupt(column, error))
}

pub(crate) fn decode(row: &AnyRow) -> DbResult<Cluster> {
    let status_text = row::text(row, "status")?;
    let health = row::optional_text(row, "health_status")?;
    let operation = row::optional_text(row, "operation")?;
    Ok(Cluster {
        id: row::integer(row, "id")?,
        revision: row::integer(row, "version")?,
        uuid: row::text(row, "uuid")?,
        name: row::optional_text(row, "name")?,
        project_id: row::text(row, "project_id")?,
        user_id: row::text(row, "user_id")?,
        cluster_template_id: row::text(row, "cluster_template_id")?,
        keypair: row::optional_text(row, "keypair")?,
        docker_volume_size: row::optional_integer(row, "docker_volume_size")?,
        labels: json_column(row, "labels")?,
        master_flavor_id: row::optional_text(row, "master_flavor_id")?,
        flavor_id: row::optional_text(row, "flavor_id")?,
        fixed_network: row::optional_text(row, "fixed_network")?,
        fixed_subnet: row::optional_text(row, "fixed_subnet")?,
        floating_ip_enabled: row::boolean(row, "floating_ip_enabled")?,
        master_lb_enabled: row::boolean(row, "master_lb_enabled")?,
        create_timeout: row::integer(row, "create_timeout")?,
        discovery_url: row::optional_text(row, "discovery_url")?,
        master_count: row::integer(row, "master_count")?,
        node_count: row::integer(row, "node_count")?,
        extra_worker_count: row::integer(row, "extra_worker_count")?,
        stack_id: row::optional_text(row, "stack_id")?,
        status: status_text
            .parse()
            .map_err(|error: String| corrupt("status", error))?,
        status_reason: row::optional_text(row, "status_reason")?,
        health_status: match health {
            None => None,
            Some(text) => {
                Some(HealthStatus::parse(&text).ok_or_else(|| corrupt("health_status", text))?)
            }
        },
        health_status_reason: json_column(row, "health_status_reason")?,
        api_address: row::optional_text(row, "api_address")?,
        master_addresses: json_column(row, "master_addresses")?,
        node_addresses: json_column(row, "node_addresses")?,
        coe_version: row::optional_text(row, "coe_version")?,
        container_version: row::optional_text(row, "container_version")?,
        operation: match operation {
            None => None,
            Some(text) => Some(
                text.parse()
                    .map_err(|error: String| corrupt("operation", error))?,
            ),
        },
        operation_generation: row::integer(row, "operation_generation")?,
        nodes_to_remove: json_column(row, "nodes_to_remove")?,
        create_deadline: time::decode_optional(
            "create_deadline",
            row::optional_text(row, "create_deadline")?,
        )?,
        driver: row::optional_text(row, "driver")?,
        operation_started_at: time::decode_optional(
            "operation_started_at",
            row::optional_text(row, "operation_started_at")?,
        )?,
        operation_attempts: row::integer(row, "operation_attempts")?,
        rollback_template_id: row::optional_text(row, "rollback_template_id")?,
        rollback_reason: row::optional_text(row, "rollback_reason")?,
        created_at: time::decode("created_at", &row::text(row, "created_at")?)?,
        updated_at: time::decode_optional("updated_at", row::optional_text(row, "updated_at")?)?,
    })
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

pub(crate) fn argument_error(error: sqlx::error::BoxDynError) -> DbError {
    DbError::Backend(sqlx::Error::Encode(error))
}

/// Binds every stored attribute except `id`, lease and revision, in insert order.
fn bind_attributes(
    arguments: &mut AnyArguments,
    cluster: &Cluster,
) -> Result<(), sqlx::error::BoxDynError> {
    arguments.add(cluster.uuid.clone())?;
    arguments.add(cluster.name.clone())?;
    arguments.add(cluster.project_id.clone())?;
    arguments.add(cluster.user_id.clone())?;
    arguments.add(cluster.cluster_template_id.clone())?;
    arguments.add(cluster.keypair.clone())?;
    arguments.add(cluster.docker_volume_size)?;
    arguments.add(to_json(&cluster.labels))?;
    arguments.add(cluster.master_flavor_id.clone())?;
    arguments.add(cluster.flavor_id.clone())?;
    arguments.add(cluster.fixed_network.clone())?;
    arguments.add(cluster.fixed_subnet.clone())?;
    arguments.add(i16::from(cluster.floating_ip_enabled))?;
    arguments.add(i16::from(cluster.master_lb_enabled))?;
    arguments.add(cluster.create_timeout)?;
    arguments.add(cluster.discovery_url.clone())?;
    arguments.add(cluster.master_count)?;
    arguments.add(cluster.node_count)?;
    arguments.add(cluster.stack_id.clone())?;
    arguments.add(cluster.status.as_str().to_string())?;
    arguments.add(cluster.status_reason.clone())?;
    arguments.add(
        cluster
            .health_status
            .map(|status| status.as_str().to_string()),
    )?;
    arguments.add(to_json(&cluster.health_status_reason))?;
    arguments.add(cluster.api_address.clone())?;
    arguments.add(to_json(&cluster.master_addresses))?;
    arguments.add(to_json(&cluster.node_addresses))?;
    arguments.add(cluster.coe_version.clone())?;
    arguments.add(cluster.container_version.clone())?;
    arguments.add(
        cluster
            .operation
            .map(|operation| operation.as_str().to_string()),
    )?;
    arguments.add(cluster.operation_generation)?;
    arguments.add(to_json(&cluster.nodes_to_remove))?;
    arguments.add(cluster.create_deadline.as_ref().map(time::encode))?;
    arguments.add(cluster.driver.clone())?;
    arguments.add(cluster.operation_started_at.as_ref().map(time::encode))?;
    arguments.add(cluster.operation_attempts)?;
    arguments.add(cluster.rollback_template_id.clone())?;
    arguments.add(cluster.rollback_reason.clone())?;
    Ok(())
}

const ATTRIBUTE_ASSIGNMENTS: &str = "uuid = ?, name = ?, project_id = ?, user_id = ?, \
    cluster_template_id = ?, keypair = ?, docker_volume_size = ?, labels = ?, master_flavor_id = ?, \
    flavor_id = ?, fixed_network = ?, fixed_subnet = ?, floating_ip_enabled = ?, \
    master_lb_enabled = ?, create_timeout = ?, discovery_url = ?, master_count = ?, node_count = ?, \
    stack_id = ?, status = ?, status_reason = ?, health_status = ?, health_status_reason = ?, \
    api_address = ?, master_addresses = ?, node_addresses = ?, coe_version = ?, \
    container_version = ?, operation = ?, operation_generation = ?, nodes_to_remove = ?, \
    create_deadline = ?, driver = ?, operation_started_at = ?, operation_attempts = ?, \
    rollback_template_id = ?, rollback_reason = ?";

/// Repository of clusters.
#[derive(Debug, Clone, Copy)]
pub struct Clusters<'a> {
    database: &'a Database,
}

impl Database {
    pub fn clusters(&self) -> Clusters<'_> {
        Clusters { database: self }
    }
}

/// What decides whether a decoded cluster is current: its row's id and revision, and the
/// workers of its non-default nodegroups (rows of another table, counted into the view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ClusterKey {
    id: i64,
    version: i64,
    extra_workers: i64,
}

/// Keys from SQLite's aggregated `id:version:extra,…` text.
fn parse_keys(text: &str) -> DbResult<Vec<ClusterKey>> {
    let invalid = || {
        corrupt(
            "page_keys",
            format!("'{text}' is not a list of cluster keys"),
        )
    };
    text.split(',')
        .filter(|key| !key.is_empty())
        .map(|key| {
            let mut parts = key.split(':').map(str::parse::<i64>);
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(Ok(id)), Some(Ok(version)), Some(Ok(extra_workers)), None) => {
                    Ok(ClusterKey {
                        id,
                        version,
                        extra_workers,
                    })
                }
                _ => Err(invalid()),
            }
        })
        .collect()
}

impl Clusters<'_> {
    #[cfg(test)]
    pub(crate) fn database(&self) -> &Database {
        self.database
    }

    /// `SELECT … FROM cluster` with every column [`decode`] reads, including the workers of
    /// the cluster's non-default nodegroups.
    pub(crate) fn select(&self) -> String {
        format!(
            "SELECT {COLUMNS}, {} AS extra_worker_count FROM cluster",
            self.extra_workers()
        )
    }

    /// The workers of a cluster's non-default nodegroups, as a column expression.
    fn extra_workers(&self) -> String {
        self.database.dialect().as_bigint(
            "(SELECT COALESCE(SUM(n.node_count), 0) FROM nodegroup n \
             WHERE n.cluster_id = cluster.uuid AND n.is_default = 0 AND n.role <> 'master')",
        )
    }

    /// `SELECT` of the [`ClusterKey`] columns (`id`, `version`, `extra_worker_count`).
    fn select_keys(&self) -> String {
        format!(
            "SELECT id, version, {} AS extra_worker_count FROM cluster",
            self.extra_workers()
        )
    }

    /// The clusters with these keys, in the same order: from the cache when it holds that
    /// revision with the same extra workers, from one query for the rest. A row deleted in
    /// between is left out; a row changed in between comes back at its newer revision.
    async fn load(&self, keys: &[ClusterKey]) -> DbResult<Vec<Arc<Cluster>>> {
        let cache = &self.database.cluster_cache;
        let mut found: Vec<Option<Arc<Cluster>>> = keys
            .iter()
            .map(|key| {
                cache
                    .get(key.id, key.version)
                    .filter(|cluster| cluster.extra_worker_count == key.extra_workers)
            })
            .collect();
        let missing: Vec<i64> = keys
            .iter()
            .zip(&found)
            .filter(|(_, cached)| cached.is_none())
            .map(|(key, _)| key.id)
            .collect();
        if !missing.is_empty() {
            let placeholders = vec!["?"; missing.len()].join(", ");
            let sql = format!("{} WHERE id IN ({placeholders})", self.select());
            let mut query = sqlx::query(self.database.dialect().sql(sql));
            for id in &missing {
                query = query.bind(*id);
            }
            for row in query.fetch_all(self.database.pool()).await? {
                let cluster = Arc::new(decode(&row)?);
                cache.put(cluster.id, cluster.revision, cluster.clone());
                for (slot, key) in found.iter_mut().zip(keys) {
                    if key.id == cluster.id {
                        *slot = Some(cluster.clone());
                    }
                }
            }
        }
        Ok(found.into_iter().flatten().collect())
    }

    /// The keys of the rows a `select_keys` query returned.
    fn keys(rows: &[AnyRow]) -> DbResult<Vec<ClusterKey>> {
        rows.iter()
            .map(|row| {
                Ok(ClusterKey {
                    id: row::integer(row, "id")?,
                    version: row::integer(row, "version")?,
                    extra_workers: row::integer(row, "extra_worker_count")?,
                })
            })
            .collect()
    }

    /// Stores a new cluster with its default nodegroups (`default-master`, `default-worker`)
    /// in one transaction. A duplicate uuid or a name its project already uses is
    /// [`DbError::Duplicate`].
    pub async fn insert(
        &self,
        cluster: &Cluster,
        defaults: &DefaultNodeGroups,
    ) -> DbResult<Cluster> {
        self.insert_within(cluster, defaults, None).await
    }

    /// As [`Clusters::insert`], refused with [`DbError::QuotaExceeded`] when the project
    /// would have more clusters or nodes than `limits` allow. The check and the insert are
    /// one transaction holding the project's lock, so concurrent creates cannot both pass.
    pub async fn insert_within(
        &self,
        cluster: &Cluster,
        defaults: &DefaultNodeGroups,
        limits: Option<&ProjectLimits>,
    ) -> DbResult<Cluster> {
        self.insert_with_trust(cluster, defaults, limits, None, None)
            .await
    }

    /// As [`Clusters::insert_within`], recording the cluster's trust (see
    /// [`crate::trust`]) and its etcd discovery token ([`crate::discovery`]) in the same
    /// transaction: a cluster is never stored without the trust it was given, nor a trust
    /// or token without its cluster.
    pub async fn insert_with_trust(
        &self,
        cluster: &Cluster,
        defaults: &DefaultNodeGroups,
        limits: Option<&ProjectLimits>,
        trust: Option<&crate::trust::TrustRecord>,
        discovery: Option<&crate::discovery::DiscoveryToken>,
    ) -> DbResult<Cluster> {
        let dialect = self.database.dialect();
        let mut arguments = AnyArguments::default();
        bind_attributes(&mut arguments, cluster).map_err(argument_error)?;
        arguments.add(0_i64).map_err(argument_error)?;
        arguments
            .add(time::encode(&cluster.created_at))
            .map_err(argument_error)?;
        let columns = COLUMNS
            .trim_start_matches("id, ")
            .trim_end_matches(", version, created_at, updated_at");
        let n_columns = columns.split(',').count() + 2;
        let insert = format!(
            "INSERT INTO cluster ({columns}, version, created_at) VALUES ({placeholders})",
            placeholders = vec!["?"; n_columns].join(", ")
        );
        if limits.is_some() {
            self.ensure_project_row(&cluster.project_id).await?;
        }
        let _turn = self.database.write_turn().await;
        let mut transaction = self.database.begin_write().await?;
        // The template's row stays locked until the cluster exists, so a template change
        // that clusters forbid cannot slip in between (see `update_checked`).
        let template_revision: Option<i64> = sqlx::query_scalar(dialect.sql(format!(
            "SELECT version FROM cluster_template WHERE uuid = ?{}",
            dialect.lock_rows()
        )))
        .bind(cluster.cluster_template_id.clone())
        .fetch_optional(&mut *transaction)
        .await?;
        if template_revision != Some(defaults.template_revision) {
            return Err(DbError::Stale);
        }
        if let Some(limits) = limits {
            self.lock_project(&mut transaction, &cluster.project_id)
                .await?;
            let (clusters, nodes) = self.usage(&mut transaction, &cluster.project_id).await?;
            if clusters.saturating_add(1) > limits.clusters {
                return Err(DbError::QuotaExceeded {
                    resource: Resource::Cluster,
                    limit: limits.clusters,
                });
            }
            let new_nodes = cluster.master_count.saturating_add(cluster.node_count);
            if nodes.saturating_add(new_nodes) > limits.nodes {
                return Err(DbError::QuotaExceeded {
                    resource: Resource::Node,
                    limit: limits.nodes,
                });
            }
        }
        sqlx::query_with(dialect.sql(insert), arguments)
            .execute(&mut *transaction)
            .await?;
        nodegroup::insert_defaults(self.database, &mut transaction, cluster, defaults).await?;
        if let Some(trust) = trust {
            crate::trust::insert_in(self.database, &mut transaction, trust).await?;
        }
        if let Some(discovery) = discovery {
            crate::discovery::insert_in(self.database, &mut transaction, discovery).await?;
        }
        transaction.commit().await?;
        drop(_turn);
        if cluster.operation.is_some() {
            self.database.signal_work();
        }
        self.get_by_uuid(&cluster.uuid).await
    }

    pub async fn get_by_uuid(&self, uuid: &str) -> DbResult<Cluster> {
        let sql = format!("{} WHERE uuid = ?", self.select_keys());
        let rows = sqlx::query(self.database.dialect().sql(sql))
            .bind(uuid.to_string())
            .fetch_all(self.database.pool())
            .await?;
        let cluster = self
            .load(&Self::keys(&rows)?)
            .await?
            .pop()
            .ok_or(DbError::NotFound)?;
        Ok(Arc::unwrap_or_clone(cluster))
    }

    /// A cluster by uuid with its template (None when the template is gone): what a single
    /// GET shows, from one query for both rows' keys.
    pub async fn get_with_template(
        &self,
        uuid: &str,
    ) -> DbResult<(Arc<Cluster>, Option<Arc<ClusterTemplate>>)> {
        let sql = format!(
            "SELECT cluster.id AS id, cluster.version AS version, {} AS extra_worker_count, \
             t.id AS template_id, t.version AS template_version FROM cluster \
             LEFT JOIN cluster_template t ON t.uuid = cluster.cluster_template_id \
             WHERE cluster.uuid = ?",
            self.extra_workers()
        );
        let row = sqlx::query(self.database.dialect().sql(sql))
            .bind(uuid.to_string())
            .fetch_optional(self.database.pool())
            .await?
            .ok_or(DbError::NotFound)?;
        let cluster = self
            .load(&Self::keys(std::slice::from_ref(&row))?)
            .await?
            .pop()
            .ok_or(DbError::NotFound)?;
        let template_key = (
            row::optional_integer(&row, "template_id")?,
            row::optional_integer(&row, "template_version")?,
        );
        let template = match template_key {
            (Some(id), Some(version)) => self
                .database
                .cluster_templates()
                .load(&[(id, version)])
                .await?
                .pop(),
            _ => None,
        };
        Ok((cluster, template))
    }

    /// The one visible cluster with this name; [`DbError::Ambiguous`] when several match.
    pub async fn find_by_name(
        &self,
        name: &str,
        visibility: &ClusterVisibility,
    ) -> DbResult<Cluster> {
        let (condition, bind) = visibility.condition();
        let sql = format!(
            "{} WHERE name = ? AND {condition} LIMIT 2",
            self.select_keys()
        );
        let mut query = sqlx::query(self.database.dialect().sql(sql)).bind(name.to_string());
        if let Some(project_id) = bind {
            query = query.bind(project_id);
        }
        let rows = query.fetch_all(self.database.pool()).await?;
        match Self::keys(&rows)?.as_slice() {
            [] => Err(DbError::NotFound),
            [only] => self
                .load(&[*only])
                .await?
                .pop()
                .map(Arc::unwrap_or_clone)
                .ok_or(DbError::NotFound),
            _ => Err(DbError::Ambiguous),
        }
    }

    /// Makes sure the project has its row in `project_lock`, outside any transaction (so
    /// that transactions only ever lock it, and two of them never deadlock over making it).
    async fn ensure_project_row(&self, project_id: &str) -> DbResult<()> {
        let dialect = self.database.dialect();
        sqlx::query(dialect.sql(dialect.insert_ignoring_duplicates(
            "project_lock",
            "project_id",
            "?",
        )))
        .bind(project_id.to_string())
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Takes the project's lock for the rest of the transaction (see `project_lock`); the
    /// row must exist ([`Clusters::ensure_project_row`]).
    async fn lock_project(
        &self,
        connection: &mut sqlx::AnyConnection,
        project_id: &str,
    ) -> DbResult<()> {
        let dialect = self.database.dialect();
        sqlx::query(dialect.sql(format!(
            "SELECT project_id FROM project_lock WHERE project_id = ?{}",
            dialect.lock_rows()
        )))
        .bind(project_id.to_string())
        .fetch_optional(&mut *connection)
        .await?;
        Ok(())
    }

    /// (clusters, nodes) of a project as the transaction sees them.
    async fn usage(
        &self,
        connection: &mut sqlx::AnyConnection,
        project_id: &str,
    ) -> DbResult<(i64, i64)> {
        let dialect = self.database.dialect();
        let clusters: i64 =
            sqlx::query_scalar(dialect.sql("SELECT COUNT(*) FROM cluster WHERE project_id = ?"))
                .bind(project_id.to_string())
                .fetch_one(&mut *connection)
                .await?;
        let nodes: i64 = sqlx::query_scalar(dialect.sql(format!(
            "SELECT {} FROM nodegroup WHERE project_id = ?",
            dialect.as_bigint("COALESCE(SUM(node_count), 0)")
        )))
        .bind(project_id.to_string())
        .fetch_one(&mut *connection)
        .await?;
        Ok((clusters, nodes))
    }

    /// One page of the visible clusters.
    pub async fn list(
        &self,
        visibility: &ClusterVisibility,
        page: &Page,
    ) -> DbResult<Vec<Arc<Cluster>>> {
        let sort_column = SORTABLE_COLUMNS
            .iter()
            .find(|(name, _)| *name == page.sort_key)
            .ok_or_else(|| corrupt("sort_key", format!("{} is not sortable", page.sort_key)))?;
        let (condition, visibility_bind) = visibility.condition();
        let mut arguments = AnyArguments::default();
        if let Some(project_id) = &visibility_bind {
            arguments.add(project_id.clone()).map_err(argument_error)?;
        }
        let mut filter = format!("WHERE {condition}");
        if let Some(marker) = &page.marker {
            let marker_sql = format!(
                "SELECT id, {column} AS sort_value FROM cluster WHERE uuid = ? AND {condition}",
                column = sort_column.0
            );
            let mut query =
                sqlx::query(self.database.dialect().sql(marker_sql)).bind(marker.clone());
            if let Some(project_id) = &visibility_bind {
                query = query.bind(project_id.clone());
            }
            let marker_row = query
                .fetch_optional(self.database.pool())
                .await?
                .ok_or(DbError::MarkerNotFound)?;
            let marker_value = if sort_column.1 {
                marker_row
                    .try_get::<Option<i64>, _>("sort_value")?
                    .map(SortValue::Integer)
            } else {
                marker_row
                    .try_get::<Option<String>, _>("sort_value")?
                    .map(SortValue::Text)
            };
            let fragment = after_marker(
                sort_column.0,
                page.sort_dir,
                &marker_value.unwrap_or(SortValue::Null),
                row::integer(&marker_row, "id")?,
            );
            filter.push_str(" AND ");
            filter.push_str(&fragment.sql);
            for bind in &fragment.binds {
                bind.add_to(&mut arguments).map_err(argument_error)?;
            }
        }
        let order = order_by(sort_column.0, page.sort_dir);
        arguments
            .add(i64::try_from(page.limit).unwrap_or(i64::MAX))
            .map_err(argument_error)?;
        let keys = if self.database.dialect().backend() == magnum_config::DatabaseBackend::Sqlite {
            // sqlx hands every SQLite result row from the connection's thread to ours; one
            // aggregated row instead of one row per key saves a thread switch per item.
            let sql = format!(
                "SELECT group_concat(id || ':' || version || ':' || extra_worker_count, ',' \
                 ORDER BY position) AS page_keys FROM (SELECT id, version, {extra} AS \
                 extra_worker_count, ROW_NUMBER() OVER ({order}) AS position FROM cluster \
                 {filter} {order} LIMIT ?)",
                extra = self.extra_workers()
            );
            let row = sqlx::query_with(self.database.dialect().sql(sql), arguments)
                .fetch_one(self.database.pool())
                .await?;
            parse_keys(
                row::optional_text(&row, "page_keys")?
                    .as_deref()
                    .unwrap_or(""),
            )?
        } else {
            let sql = format!("{} {filter} {order} LIMIT ?", self.select_keys());
            let rows = sqlx::query_with(self.database.dialect().sql(sql), arguments)
                .fetch_all(self.database.pool())
                .await?;
            Self::keys(&rows)?
        };
        self.load(&keys).await
    }

    /// How many clusters a project has (every status), for quotas.
    pub async fn count_in_project(&self, project_id: &str) -> DbResult<i64> {
        Ok(sqlx::query_scalar(
            self.database
                .dialect()
                .sql("SELECT COUNT(*) FROM cluster WHERE project_id = ?"),
        )
        .bind(project_id.to_string())
        .fetch_one(self.database.pool())
        .await?)
    }

    /// How many clusters use a template (or may roll back to it from a running upgrade).
    pub async fn count_using_template(&self, template_uuid: &str) -> DbResult<i64> {
        Ok(sqlx::query_scalar(
            self.database
                .dialect()
                .sql("SELECT COUNT(*) FROM cluster WHERE cluster_template_id = ? OR rollback_template_id = ?"),
        )
        .bind(template_uuid.to_string())
        .bind(template_uuid.to_string())
        .fetch_one(self.database.pool())
        .await?)
    }

    /// (clusters, nodes over every nodegroup) in a project or everywhere, for `/v1/stats`.
    pub async fn stats(&self, project_id: Option<&str>) -> DbResult<(i64, i64)> {
        let dialect = self.database.dialect();
        let filter = if project_id.is_some() {
            " WHERE c.project_id = ?"
        } else {
            ""
        };
        let clusters_sql = format!("SELECT COUNT(*) FROM cluster c{filter}");
        let nodes_sql = format!(
            "SELECT {} FROM nodegroup n JOIN cluster c ON c.uuid = n.cluster_id{filter}",
            dialect.as_bigint("COALESCE(SUM(n.node_count), 0)")
        );
        let mut clusters = sqlx::query_scalar::<_, i64>(dialect.sql(clusters_sql));
        let mut nodes = sqlx::query_scalar::<_, i64>(dialect.sql(nodes_sql));
        if let Some(project_id) = project_id {
            clusters = clusters.bind(project_id.to_string());
            nodes = nodes.bind(project_id.to_string());
        }
        Ok((
            clusters.fetch_one(self.database.pool()).await?,
            nodes.fetch_one(self.database.pool()).await?,
        ))
    }

    /// Stores every attribute of `cluster` if its revision is unchanged (the API's way of
    /// recording a new desired state and operation). [`DbError::Stale`] when it changed.
    pub async fn update(&self, cluster: &Cluster) -> DbResult<Cluster> {
        self.update_with_nodegroup(cluster, None).await
    }

    /// As [`Clusters::update`], and in the same transaction inserts or changes one nodegroup
    /// (a nodegroup create, resize, update or delete records the cluster's operation with
    /// it). A nodegroup name the cluster already has is [`DbError::Duplicate`].
    pub async fn update_with_nodegroup(
        &self,
        cluster: &Cluster,
        change: Option<&NodeGroupChange>,
    ) -> DbResult<Cluster> {
        self.update_within(cluster, change, None).await
    }

    /// As [`Clusters::update_with_nodegroup`], refused with [`DbError::QuotaExceeded`] when
    /// the change adds nodes beyond the project's node limit (changes that do not add nodes
    /// are always stored). Checked in the transaction that writes, under the project's lock.
    pub async fn update_within(
        &self,
        cluster: &Cluster,
        change: Option<&NodeGroupChange>,
        limits: Option<&ProjectLimits>,
    ) -> DbResult<Cluster> {
        let dialect = self.database.dialect();
        let mut arguments = AnyArguments::default();
        bind_attributes(&mut arguments, cluster).map_err(argument_error)?;
        arguments
            .add(time::encode(&Utc::now()))
            .map_err(argument_error)?;
        arguments.add(cluster.id).map_err(argument_error)?;
        arguments.add(cluster.revision).map_err(argument_error)?;
        let sql = format!(
            "UPDATE cluster SET {ATTRIBUTE_ASSIGNMENTS}, updated_at = ?, version = version + 1 \
             WHERE id = ? AND version = ?"
        );
        if limits.is_some() {
            self.ensure_project_row(&cluster.project_id).await?;
        }
        let updated = {
            let _turn = self.database.write_turn().await;
            let mut transaction = self.database.begin_write().await?;
            let nodes_before = match limits {
                Some(_) => {
                    self.lock_project(&mut transaction, &cluster.project_id)
                        .await?;
                    Some(self.usage(&mut transaction, &cluster.project_id).await?.1)
                }
                None => None,
            };
            let updated = sqlx::query_with(dialect.sql(sql), arguments)
                .execute(&mut *transaction)
                .await?
                .rows_affected();
            if updated == 1 {
                if let Some(change) = change {
                    nodegroup::apply_change(self.database, &mut transaction, cluster, change)
                        .await?;
                }
                nodegroup::sync_default_groups(self.database, &mut transaction, cluster, None)
                    .await?;
                if let (Some(limits), Some(before)) = (limits, nodes_before) {
                    let after = self.usage(&mut transaction, &cluster.project_id).await?.1;
                    if after > limits.nodes && after > before {
                        return Err(DbError::QuotaExceeded {
                            resource: Resource::Node,
                            limit: limits.nodes,
                        });
                    }
                }
            }
            transaction.commit().await?;
            updated
        };
        if updated == 0 {
            return match self.get_by_uuid(&cluster.uuid).await {
                Ok(_) => Err(DbError::Stale),
                Err(error) => Err(error),
            };
        }
        if cluster.operation.is_some() {
            self.database.signal_work();
        }
        self.get_by_uuid(&cluster.uuid).await
    }

    /// Clusters with no pending operation, for periodic health checks.
    pub async fn idle(&self) -> DbResult<Vec<Cluster>> {
        let sql = format!("{} WHERE operation IS NULL ORDER BY id", self.select());
        let rows = sqlx::query(self.database.dialect().sql(sql))
            .fetch_all(self.database.pool())
            .await?;
        rows.iter().map(decode).collect()
    }

    /// Records a health observation of an idle cluster (skipped if an operation started).
    pub async fn record_health(
        &self,
        id: i64,
        health: HealthStatus,
        reason: &std::collections::BTreeMap<String, String>,
    ) -> DbResult<()> {
        let _turn = self.database.write_turn().await;
        sqlx::query(self.database.dialect().sql(
            "UPDATE cluster SET health_status = ?, health_status_reason = ?, version = version + 1 \
             WHERE id = ? AND operation IS NULL",
        ))
        .bind(health.as_str().to_string())
        .bind(to_json(reason))
        .bind(id)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{cluster, defaults, page, TEMPLATE_UUID};
    use crate::testing::database;
    use magnum_core::lifecycle::{ClusterStatus, Operation};

    /// Two pools on one database stand for two magnumd processes: a cluster read (and
    /// cached) through one reflects every later change made through the other — its own
    /// row, and the nodegroups counted into it.
    #[tokio::test]
    async fn cached_clusters_never_hide_a_change_made_elsewhere() {
        let directory = tempfile::tempdir().unwrap();
        let connection = magnum_config::DatabaseConnection::Sqlite {
            path: Some(directory.path().join("shared.sqlite")),
        };
        let first = Database::connect(&connection, 2).await.unwrap();
        first.upgrade().await.unwrap();
        let second = Database::connect(&connection, 2).await.unwrap();
        first
            .cluster_templates()
            .insert(&crate::test_fixtures::template())
            .await
            .unwrap();
        let writer = first.clusters();
        let stored = writer
            .insert(&cluster("p", "cached", 1), &defaults(&writer).await)
            .await
            .unwrap();
        let reader = second.clusters();
        let listed = reader.list(&ClusterVisibility::All, &page()).await.unwrap();
        assert_eq!(listed[0].name.as_deref(), Some("cached"));
        assert_eq!(
            reader.get_by_uuid(&stored.uuid).await.unwrap().revision,
            stored.revision
        );

        let mut renamed = stored.clone();
        renamed.name = Some("renamed".to_string());
        writer.update(&renamed).await.unwrap();
        let listed = reader.list(&ClusterVisibility::All, &page()).await.unwrap();
        assert_eq!(listed[0].name.as_deref(), Some("renamed"));
        assert_eq!(
            reader
                .find_by_name("renamed", &ClusterVisibility::All)
                .await
                .unwrap()
                .uuid,
            stored.uuid
        );

        // A nodegroup written beside the cluster changes what the cluster counts.
        let current = writer.get_by_uuid(&stored.uuid).await.unwrap();
        let mut growing = current.clone();
        growing.operation = Some(Operation::Resize);
        growing.operation_generation += 1;
        writer
            .update_with_nodegroup(
                &growing,
                Some(&NodeGroupChange::Insert(crate::test_fixtures::extra_group(
                    &current, "pool", 2,
                ))),
            )
            .await
            .unwrap();
        assert_eq!(
            reader
                .get_by_uuid(&stored.uuid)
                .await
                .unwrap()
                .extra_worker_count,
            2
        );
        assert_eq!(
            reader.list(&ClusterVisibility::All, &page()).await.unwrap()[0].extra_worker_count,
            2
        );
    }

    #[tokio::test]
    async fn a_template_in_use_changes_only_when_allowed() {
        let test = database().await;
        let clusters = test.database.clusters();
        let defaults = defaults(&clusters).await;
        let templates = test.database.cluster_templates();
        let template = templates.get_by_uuid(TEMPLATE_UUID).await.unwrap();
        // Unused, any change is stored.
        let mut renamed = (*template).clone();
        renamed.name = Some("renamed".to_string());
        let stored = templates.update_checked(&renamed, false).await.unwrap();
        // A cluster checked against the old revision is refused: the template changed.
        assert!(matches!(
            clusters.insert(&cluster("p", "late", 1), &defaults).await,
            Err(DbError::Stale)
        ));
        let fresh = DefaultNodeGroups {
            template_revision: stored.revision,
            ..defaults
        };
        clusters
            .insert(&cluster("p", "user", 1), &fresh)
            .await
            .unwrap();
        // In use: a change clusters depend on is refused and nothing is written.
        let mut changed = (*stored).clone();
        changed.tls_disabled = !changed.tls_disabled;
        assert!(matches!(
            templates.update_checked(&changed, false).await,
            Err(DbError::InUse)
        ));
        assert_eq!(
            templates.get_by_uuid(TEMPLATE_UUID).await.unwrap().revision,
            stored.revision
        );
        // A change the caller declares harmless (a rename) is still stored.
        let mut renamed_again = (*stored).clone();
        renamed_again.name = Some("again".to_string());
        assert!(templates.update_checked(&renamed_again, true).await.is_ok());
    }

    /// Twenty quota-checked creates of one-node clusters in project `quota` at once, spread
    /// over `databases` in turn.
    async fn race_creates(
        databases: &[Database],
        defaults: &DefaultNodeGroups,
        limits: &crate::ProjectLimits,
    ) -> Vec<DbResult<Cluster>> {
        let attempts = (0..20).map(|index| {
            let database = databases[index % databases.len()].clone();
            async move {
                database
                    .clusters()
                    .insert_within(
                        &cluster("quota", &format!("c{index}"), 1),
                        defaults,
                        Some(limits),
                    )
                    .await
            }
        });
        futures::future::join_all(attempts).await
    }

    /// Two pools on one SQLite file stand for two magnumd processes, which share no write
    /// gate: creates racing through both still end exactly at the quota, and none fails
    /// because the other process committed while it was checking.
    #[tokio::test]
    async fn quotas_hold_when_two_processes_create_at_once() {
        let directory = tempfile::tempdir().unwrap();
        let connection = magnum_config::DatabaseConnection::Sqlite {
            path: Some(directory.path().join("shared.sqlite")),
        };
        let first = Database::connect(&connection, 4).await.unwrap();
        first.upgrade().await.unwrap();
        let second = Database::connect(&connection, 4).await.unwrap();
        first
            .cluster_templates()
            .insert(&crate::test_fixtures::template())
            .await
            .unwrap();
        let defaults = defaults(&first.clusters()).await;
        let limits = crate::ProjectLimits {
            clusters: 5,
            nodes: 100,
        };
        let results = race_creates(&[first, second], &defaults, &limits).await;
        let created = results.iter().filter(|result| result.is_ok()).count();
        let refused = results
            .iter()
            .filter(|result| matches!(result, Err(DbError::QuotaExceeded { .. })))
            .count();
        assert_eq!((created, refused), (5, 15), "{results:?}");
    }

    #[tokio::test]
    async fn quotas_hold_under_concurrent_creates_and_scale_ups() {
        let test = database().await;
        let clusters = test.database.clusters();
        let defaults = defaults(&clusters).await;
        let limits = crate::ProjectLimits {
            clusters: 5,
            nodes: 100,
        };
        let results = race_creates(std::slice::from_ref(&test.database), &defaults, &limits).await;
        let created = results.iter().filter(|result| result.is_ok()).count();
        let refused = results
            .iter()
            .filter(|result| {
                matches!(
                    result,
                    Err(DbError::QuotaExceeded {
                        resource: Resource::Cluster,
                        limit: 5
                    })
                )
            })
            .count();
        assert_eq!((created, refused), (5, 15), "{results:?}");
        assert_eq!(clusters.count_in_project("quota").await.unwrap(), 5);

        // Nodes: 5 clusters of 2 nodes use 10 of 12; growing one by 3 is refused, by 2 not,
        // and shrinking is always allowed.
        let nodes = crate::ProjectLimits {
            clusters: 100,
            nodes: 12,
        };
        let mut grown = clusters.find_by_name("c0", &ClusterVisibility::All).await;
        if grown.is_err() {
            grown = clusters
                .list(&ClusterVisibility::Project("quota".to_string()), &page())
                .await
                .map(|mut all| Arc::unwrap_or_clone(all.remove(0)));
        }
        let mut grown = grown.unwrap();
        grown.node_count = 4;
        assert!(matches!(
            clusters.update_within(&grown, None, Some(&nodes)).await,
            Err(DbError::QuotaExceeded {
                resource: Resource::Node,
                limit: 12
            })
        ));
        grown.node_count = 3;
        let stored = clusters
            .update_within(&grown, None, Some(&nodes))
            .await
            .unwrap();
        let tighter = crate::ProjectLimits {
            clusters: 100,
            nodes: 2,
        };
        let mut shrunk = stored.clone();
        shrunk.node_count = 2;
        assert!(clusters
            .update_within(&shrunk, None, Some(&tighter))
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn insert_creates_the_default_nodegroups() {
        let test = database().await;
        let clusters = test.database.clusters();
        let stored = clusters
            .insert(&cluster("p1", "c1", 2), &defaults(&clusters).await)
            .await
            .unwrap();
        assert_eq!(stored.status, ClusterStatus::CreateInProgress);
        assert_eq!(stored.operation, Some(Operation::Create));
        let groups = test
            .database
            .nodegroups()
            .list(&stored.uuid, None, &page())
            .await
            .unwrap();
        let names: Vec<(&str, &str, i64)> = groups
            .iter()
            .map(|g| (g.name.as_str(), g.role.as_str(), g.node_count))
            .collect();
        assert_eq!(
            names,
            [
                ("default-master", "master", 1),
                ("default-worker", "worker", 2)
            ]
        );
        assert!(groups.iter().all(|group| group.is_default));
        assert_eq!(
            test.database
                .nodegroups()
                .list(&stored.uuid, Some("worker"), &page())
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            test.database
                .nodegroups()
                .get(&stored.uuid, "default-worker")
                .await
                .unwrap()
                .flavor_id
                .as_deref(),
            Some("m1.small")
        );
        assert!(matches!(
            clusters
                .insert(&cluster("p1", "c1", 1), &defaults(&clusters).await)
                .await,
            Err(DbError::Duplicate)
        ));
        assert_eq!(clusters.count_in_project("p1").await.unwrap(), 1);
        assert_eq!(
            clusters
                .count_using_template(&stored.cluster_template_id)
                .await
                .unwrap(),
            1
        );
        assert_eq!(clusters.stats(Some("p1")).await.unwrap(), (1, 3));
        assert_eq!(clusters.stats(Some("nobody")).await.unwrap(), (0, 0));
        let visible = clusters
            .list(&ClusterVisibility::Project("p2".to_string()), &page())
            .await
            .unwrap();
        assert!(visible.is_empty());
        assert_eq!(
            clusters
                .find_by_name("c1", &ClusterVisibility::Project("p1".to_string()))
                .await
                .unwrap()
                .uuid,
            stored.uuid
        );
    }
}
