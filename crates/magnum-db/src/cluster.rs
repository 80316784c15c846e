//! The `cluster` and `nodegroup` tables, and the conductor's work queue on them.
//!
//! A cluster row holds the desired shape, the observed state, the pending `operation` and a
//! lease (`lease_owner`, `lease_expires_at`). A conductor claims work with one conditional
//! UPDATE, so two conductors can never both win; a crashed conductor's lease expires and
//! another (or its restart, which reuses its host name) takes the work over.

use crate::page::{after_marker, order_by, Bind, Page, SortValue};
use crate::{row, time, Database, DbError, DbResult};
use chrono::{DateTime, Utc};
use magnum_core::cluster::{Cluster, HealthStatus};
use std::collections::BTreeMap;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::AnyConnection;
use sqlx::{Arguments, Row};

const COLUMNS: &str = "id, uuid, name, project_id, user_id, cluster_template_id, keypair, \
    docker_volume_size, labels, master_flavor_id, flavor_id, fixed_network, fixed_subnet, \
    floating_ip_enabled, master_lb_enabled, create_timeout, discovery_url, master_count, \
    node_count, stack_id, status, status_reason, health_status, health_status_reason, \
    api_address, master_addresses, node_addresses, coe_version, container_version, operation, \
    operation_generation, nodes_to_remove, create_deadline, version, created_at, updated_at";

pub use magnum_core::cluster::{
    DEFAULT_MASTER_NODEGROUP as DEFAULT_MASTER, DEFAULT_WORKER_NODEGROUP as DEFAULT_WORKER,
};

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
    fn condition(&self) -> (&'static str, Option<String>) {
        match self {
            ClusterVisibility::All => ("1 = 1", None),
            ClusterVisibility::Project(project_id) => ("project_id = ?", Some(project_id.clone())),
        }
    }
}

fn corrupt(column: &'static str, reason: impl ToString) -> DbError {
    DbError::Corrupt {
        column,
        reason: reason.to_string(),
    }
}

fn json_column<T: serde::de::DeserializeOwned>(row: &AnyRow, column: &'static str) -> DbResult<T> {
    let text = row::text(row, column)?;
    serde_json::from_str(&text).map_err(|error| corrupt(column, error))
}

fn decode(row: &AnyRow) -> DbResult<Cluster> {
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
        created_at: time::decode("created_at", &row::text(row, "created_at")?)?,
        updated_at: time::decode_optional("updated_at", row::optional_text(row, "updated_at")?)?,
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

fn argument_error(error: sqlx::error::BoxDynError) -> DbError {
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
    Ok(())
}

const ATTRIBUTE_ASSIGNMENTS: &str = "uuid = ?, name = ?, project_id = ?, user_id = ?, \
    cluster_template_id = ?, keypair = ?, docker_volume_size = ?, labels = ?, master_flavor_id = ?, \
    flavor_id = ?, fixed_network = ?, fixed_subnet = ?, floating_ip_enabled = ?, \
    master_lb_enabled = ?, create_timeout = ?, discovery_url = ?, master_count = ?, node_count = ?, \
    stack_id = ?, status = ?, status_reason = ?, health_status = ?, health_status_reason = ?, \
    api_address = ?, master_addresses = ?, node_addresses = ?, coe_version = ?, \
    container_version = ?, operation = ?, operation_generation = ?, nodes_to_remove = ?, \
    create_deadline = ?";

/// A nodegroup row.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeGroup {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    pub cluster_id: String,
    pub project_id: String,
    pub docker_volume_size: Option<i64>,
    pub labels: magnum_core::labels::Labels,
    pub flavor_id: Option<String>,
    pub image_id: Option<String>,
    pub node_addresses: Vec<String>,
    pub node_count: i64,
    pub role: String,
    pub max_node_count: Option<i64>,
    pub min_node_count: i64,
    pub is_default: bool,
    pub stack_id: Option<String>,
    pub status: Option<String>,
    pub status_reason: Option<String>,
    /// Kubernetes node labels (a JSON object), when set.
    pub node_labels: Option<serde_json::Value>,
    /// Kubernetes node taints (a JSON list of `{key, value, effect}`), when set.
    pub node_taints: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

const NODEGROUP_COLUMNS: &str = "id, uuid, name, cluster_id, project_id, docker_volume_size, \
    labels, flavor_id, image_id, node_addresses, node_count, role, max_node_count, \
    min_node_count, is_default, stack_id, status, status_reason, node_labels, node_taints, \
    created_at, updated_at";

fn optional_json(row: &AnyRow, column: &'static str) -> DbResult<Option<serde_json::Value>> {
    match row::optional_text(row, column)? {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| corrupt(column, error)),
    }
}

/// A change to one nodegroup, stored in the same transaction as its cluster's new operation.
#[derive(Debug, Clone)]
pub enum NodeGroupChange {
    /// A new (non-default) nodegroup.
    Insert(NodeGroup),
    /// New counts, limits, node labels/taints and status of an existing nodegroup (by uuid).
    Update(NodeGroup),
}

fn decode_nodegroup(row: &AnyRow) -> DbResult<NodeGroup> {
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
        role: row::text(row, "role")?,
        max_node_count: row::optional_integer(row, "max_node_count")?,
        min_node_count: row::integer(row, "min_node_count")?,
        is_default: row::boolean(row, "is_default")?,
        stack_id: row::optional_text(row, "stack_id")?,
        status: row::optional_text(row, "status")?,
        status_reason: row::optional_text(row, "status_reason")?,
        node_labels: optional_json(row, "node_labels")?,
        node_taints: optional_json(row, "node_taints")?,
        created_at: time::decode("created_at", &row::text(row, "created_at")?)?,
        updated_at: time::decode_optional("updated_at", row::optional_text(row, "updated_at")?)?,
    })
}

/// What the default nodegroups are made from when a cluster is created.
#[derive(Debug, Clone)]
pub struct DefaultNodeGroups {
    /// The revision of the cluster's template the request was checked against: the insert
    /// is refused ([`DbError::Stale`]) when the template changed since.
    pub template_revision: i64,
    pub image_id: String,
    pub master_flavor_id: Option<String>,
    pub worker_flavor_id: Option<String>,
    pub min_node_count: i64,
}

/// Repository of clusters and their nodegroups.
#[derive(Debug, Clone, Copy)]
pub struct Clusters<'a> {
    database: &'a Database,
}

impl Database {
    pub fn clusters(&self) -> Clusters<'_> {
        Clusters { database: self }
    }
}

impl Clusters<'_> {
    /// `SELECT … FROM cluster` with every column [`decode`] reads, including the workers of
    /// the cluster's non-default nodegroups.
    fn select(&self) -> String {
        let extra = self.database.dialect().as_bigint(
            "(SELECT COALESCE(SUM(n.node_count), 0) FROM nodegroup n \
             WHERE n.cluster_id = cluster.uuid AND n.is_default = 0 AND n.role <> 'master')",
        );
        format!("SELECT {COLUMNS}, {extra} AS extra_worker_count FROM cluster")
    }

    /// Stores a new cluster with its default nodegroups (`default-master`, `default-worker`)
    /// in one transaction. A duplicate uuid or a name its project already uses is
    /// [`DbError::Duplicate`].
    pub async fn insert(
        &self,
        cluster: &Cluster,
        defaults: &DefaultNodeGroups,
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
        let _turn = self.database.write_turn().await;
        let mut transaction = self.database.pool().begin().await?;
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
        sqlx::query_with(dialect.sql(insert), arguments)
            .execute(&mut *transaction)
            .await?;
        for (name, role, count, flavor, min_count) in [
            (
                "default-master",
                "master",
                cluster.master_count,
                &defaults.master_flavor_id,
                0,
            ),
            (
                "default-worker",
                "worker",
                cluster.node_count,
                &defaults.worker_flavor_id,
                defaults.min_node_count,
            ),
        ] {
            sqlx::query(dialect.sql(
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
            .bind(role.to_string())
            .bind(min_count)
            .bind(cluster.status.as_str().to_string())
            .bind(time::encode(&cluster.created_at))
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        drop(_turn);
        if cluster.operation.is_some() {
            self.database.signal_work();
        }
        self.get_by_uuid(&cluster.uuid).await
    }

    pub async fn get_by_uuid(&self, uuid: &str) -> DbResult<Cluster> {
        let sql = format!("{} WHERE uuid = ?", self.select());
        let row = sqlx::query(self.database.dialect().sql(sql))
            .bind(uuid.to_string())
            .fetch_optional(self.database.pool())
            .await?
            .ok_or(DbError::NotFound)?;
        decode(&row)
    }

    /// The one visible cluster with this name; [`DbError::Ambiguous`] when several match.
    pub async fn find_by_name(
        &self,
        name: &str,
        visibility: &ClusterVisibility,
    ) -> DbResult<Cluster> {
        let (condition, bind) = visibility.condition();
        let sql = format!("{} WHERE name = ? AND {condition} LIMIT 2", self.select());
        let mut query = sqlx::query(self.database.dialect().sql(sql)).bind(name.to_string());
        if let Some(project_id) = bind {
            query = query.bind(project_id);
        }
        let rows = query.fetch_all(self.database.pool()).await?;
        match rows.as_slice() {
            [] => Err(DbError::NotFound),
            [only] => decode(only),
            _ => Err(DbError::Ambiguous),
        }
    }

    /// One page of the visible clusters.
    pub async fn list(
        &self,
        visibility: &ClusterVisibility,
        page: &Page,
    ) -> DbResult<Vec<Cluster>> {
        let sort_column = SORTABLE_COLUMNS
            .iter()
            .find(|(name, _)| *name == page.sort_key)
            .ok_or_else(|| corrupt("sort_key", format!("{} is not sortable", page.sort_key)))?;
        let (condition, visibility_bind) = visibility.condition();
        let mut arguments = AnyArguments::default();
        if let Some(project_id) = &visibility_bind {
            arguments.add(project_id.clone()).map_err(argument_error)?;
        }
        let mut sql = format!("{} WHERE {condition}", self.select());
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
            sql.push_str(" AND ");
            sql.push_str(&fragment.sql);
            for bind in &fragment.binds {
                bind.add_to(&mut arguments).map_err(argument_error)?;
            }
        }
        sql.push(' ');
        sql.push_str(&order_by(sort_column.0, page.sort_dir));
        sql.push_str(" LIMIT ?");
        arguments
            .add(i64::try_from(page.limit).unwrap_or(i64::MAX))
            .map_err(argument_error)?;
        let rows = sqlx::query_with(self.database.dialect().sql(sql), arguments)
            .fetch_all(self.database.pool())
            .await?;
        rows.iter().map(decode).collect()
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

    /// How many clusters use a template.
    pub async fn count_using_template(&self, template_uuid: &str) -> DbResult<i64> {
        Ok(sqlx::query_scalar(
            self.database
                .dialect()
                .sql("SELECT COUNT(*) FROM cluster WHERE cluster_template_id = ?"),
        )
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
        let updated = {
            let _turn = self.database.write_turn().await;
            let mut transaction = self.database.pool().begin().await?;
            let updated = sqlx::query_with(dialect.sql(sql), arguments)
                .execute(&mut *transaction)
                .await?
                .rows_affected();
            if updated == 1 {
                match change {
                    None => {}
                    Some(NodeGroupChange::Insert(group)) => {
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
                        .bind(group.role.clone())
                        .bind(group.max_node_count)
                        .bind(group.min_node_count)
                        .bind(group.stack_id.clone())
                        .bind(group.status.clone())
                        .bind(group.node_labels.as_ref().map(to_json))
                        .bind(group.node_taints.as_ref().map(to_json))
                        .bind(time::encode(&group.created_at))
                        .execute(&mut *transaction)
                        .await?;
                    }
                    Some(NodeGroupChange::Update(group)) => {
                        sqlx::query(dialect.sql(
                            "UPDATE nodegroup SET node_count = ?, min_node_count = ?, max_node_count = ?, \
                             status = ?, status_reason = ?, node_labels = ?, node_taints = ?, \
                             updated_at = ?, version = version + 1 WHERE uuid = ? AND cluster_id = ?",
                        ))
                        .bind(group.node_count)
                        .bind(group.min_node_count)
                        .bind(group.max_node_count)
                        .bind(group.status.clone())
                        .bind(group.status_reason.clone())
                        .bind(group.node_labels.as_ref().map(to_json))
                        .bind(group.node_taints.as_ref().map(to_json))
                        .bind(time::encode(&Utc::now()))
                        .bind(group.uuid.clone())
                        .bind(cluster.uuid.clone())
                        .execute(&mut *transaction)
                        .await?;
                    }
                }
                self.sync_nodegroups(&mut transaction, cluster, None)
                    .await?;
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

    /// Keeps the default nodegroups' counts, addresses and status in line with the cluster.
    /// `addresses` (by nodegroup name, from the driver) gives each group its own nodes;
    /// without it the default worker group shows the cluster's worker addresses.
    /// Runs on the connection of the transaction that changed the cluster.
    async fn sync_nodegroups(
        &self,
        connection: &mut AnyConnection,
        cluster: &Cluster,
        addresses: Option<&BTreeMap<String, Vec<String>>>,
    ) -> DbResult<()> {
        let worker_addresses = addresses
            .and_then(|addresses| addresses.get(DEFAULT_WORKER))
            .unwrap_or(&cluster.node_addresses);
        for (role, count, addresses) in [
            ("master", cluster.master_count, &cluster.master_addresses),
            ("worker", cluster.node_count, worker_addresses),
        ] {
            sqlx::query(self.database.dialect().sql(
                "UPDATE nodegroup SET node_count = ?, node_addresses = ?, status = ?, status_reason = ?, \
                 stack_id = ?, updated_at = ?, version = version + 1 \
                 WHERE cluster_id = ? AND role = ? AND is_default = 1",
            ))
            .bind(count)
            .bind(to_json(addresses))
            .bind(cluster.status.as_str().to_string())
            .bind(cluster.status_reason.clone())
            .bind(cluster.stack_id.clone())
            .bind(time::encode(&Utc::now()))
            .bind(cluster.uuid.clone())
            .bind(role.to_string())
            .execute(&mut *connection)
            .await?;
        }
        Ok(())
    }

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
                    "UPDATE cluster SET lease_owner = ?, lease_expires_at = ? WHERE id = ? \
                     AND operation IS NOT NULL AND (lease_expires_at IS NULL OR lease_expires_at < ?)",
                ))
                .bind(owner.to_string())
                .bind(time::encode(&(now + lease_for)))
                .bind(id)
                .bind(now_text.clone())
                .execute(self.database.pool())
                .await?
                .rows_affected()
            };
            if claimed == 1 {
                let sql = format!("{} WHERE id = ?", self.select());
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
    /// pending changes of the non-default nodegroups (see [`Clusters::finish_nodegroups`]);
    /// `nodegroup_addresses` are the driver's node addresses by nodegroup name.
    pub async fn record_progress(
        &self,
        observed: &Cluster,
        owner: &str,
        generation: i64,
        finished: bool,
        nodegroup_addresses: Option<&BTreeMap<String, Vec<String>>>,
    ) -> DbResult<bool> {
        let sql =
            "UPDATE cluster SET status = ?, status_reason = ?, stack_id = ?, api_address = ?, \
             master_addresses = ?, node_addresses = ?, coe_version = ?, container_version = ?, \
             discovery_url = ?, health_status = ?, health_status_reason = ?, node_count = ?, \
             master_count = ?, nodes_to_remove = ?, operation = ?, \
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
        let mut transaction = self.database.pool().begin().await?;
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
        self.sync_nodegroups(&mut transaction, observed, nodegroup_addresses)
            .await?;
        if finished {
            self.finish_nodegroups(&mut transaction, observed, nodegroup_addresses)
                .await?;
        }
        transaction.commit().await?;
        Ok(true)
    }

    /// Ends the pending changes of a cluster's non-default nodegroups once its operation
    /// finished: `*_IN_PROGRESS` becomes `*_COMPLETE` or `*_FAILED` as the cluster's status
    /// did, a deleted group's row is removed when the deletion succeeded, and every group
    /// takes its node addresses from `addresses`.
    async fn finish_nodegroups(
        &self,
        connection: &mut AnyConnection,
        cluster: &Cluster,
        addresses: Option<&BTreeMap<String, Vec<String>>>,
    ) -> DbResult<()> {
        let succeeded = cluster.status.as_str().ends_with("_COMPLETE");
        let sql = format!(
            "SELECT {NODEGROUP_COLUMNS} FROM nodegroup WHERE cluster_id = ? AND is_default = 0"
        );
        let rows = sqlx::query(self.database.dialect().sql(sql))
            .bind(cluster.uuid.clone())
            .fetch_all(&mut *connection)
            .await?;
        let groups: Vec<NodeGroup> = rows.iter().map(decode_nodegroup).collect::<DbResult<_>>()?;
        for group in groups {
            let status = group.status.clone().unwrap_or_default();
            let action = status.strip_suffix("_IN_PROGRESS");
            if action == Some("DELETE") && succeeded {
                sqlx::query(
                    self.database
                        .dialect()
                        .sql("DELETE FROM nodegroup WHERE uuid = ?"),
                )
                .bind(group.uuid.clone())
                .execute(&mut *connection)
                .await?;
                continue;
            }
            let (status, reason) = match action {
                Some(action) if succeeded => (Some(format!("{action}_COMPLETE")), None),
                Some(action) => (
                    Some(format!("{action}_FAILED")),
                    cluster.status_reason.clone(),
                ),
                None => (group.status.clone(), group.status_reason.clone()),
            };
            let node_addresses = addresses
                .and_then(|addresses| addresses.get(&group.name))
                .cloned()
                .unwrap_or(group.node_addresses);
            sqlx::query(self.database.dialect().sql(
                "UPDATE nodegroup SET status = ?, status_reason = ?, node_addresses = ?, \
                 stack_id = ?, updated_at = ?, version = version + 1 WHERE uuid = ?",
            ))
            .bind(status)
            .bind(reason)
            .bind(to_json(&node_addresses))
            .bind(cluster.stack_id.clone())
            .bind(time::encode(&Utc::now()))
            .bind(group.uuid.clone())
            .execute(&mut *connection)
            .await?;
        }
        Ok(())
    }

    /// Every nodegroup of a cluster, oldest first: what the conductor builds.
    pub async fn all_nodegroups(&self, cluster_uuid: &str) -> DbResult<Vec<NodeGroup>> {
        let sql =
            format!("SELECT {NODEGROUP_COLUMNS} FROM nodegroup WHERE cluster_id = ? ORDER BY id");
        let rows = sqlx::query(self.database.dialect().sql(sql))
            .bind(cluster_uuid.to_string())
            .fetch_all(self.database.pool())
            .await?;
        rows.iter().map(decode_nodegroup).collect()
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

    /// Keeps our lease but lets nobody (us included) take the work before `until`: the way a
    /// retryable failure waits before the next attempt.
    pub async fn postpone(&self, id: i64, owner: &str, until: DateTime<Utc>) -> DbResult<()> {
        let _turn = self.database.write_turn().await;
        sqlx::query(self.database.dialect().sql(
            "UPDATE cluster SET lease_owner = NULL, lease_expires_at = ? WHERE id = ? AND lease_owner = ?",
        ))
        .bind(time::encode(&until))
        .bind(id)
        .bind(owner.to_string())
        .execute(self.database.pool())
        .await?;
        Ok(())
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

    /// Removes a deleted cluster's rows (cluster, nodegroups, certificates) if the delete is
    /// still the operation `generation` and we hold its lease.
    pub async fn remove_deleted(
        &self,
        id: i64,
        uuid: &str,
        owner: &str,
        generation: i64,
    ) -> DbResult<bool> {
        let _turn = self.database.write_turn().await;
        let mut transaction = self.database.pool().begin().await?;
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
        }
        transaction.commit().await?;
        Ok(removed == 1)
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

    /// The nodegroups of a cluster, optionally of one role, with paging by uuid marker.
    pub async fn nodegroups(
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
            let marker_id = marker_id.ok_or(DbError::MarkerNotFound)?;
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
    pub async fn nodegroup(&self, cluster_uuid: &str, ident: &str) -> DbResult<NodeGroup> {
        let sql = format!(
            "SELECT {NODEGROUP_COLUMNS} FROM nodegroup WHERE cluster_id = ? AND (uuid = ? OR name = ?)"
        );
        let row = sqlx::query(self.database.dialect().sql(sql))
            .bind(cluster_uuid.to_string())
            .bind(ident.to_string())
            .bind(ident.to_string())
            .fetch_optional(self.database.pool())
            .await?
            .ok_or(DbError::NotFound)?;
        decode_nodegroup(&row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::database;
    use crate::SortDirection;
    use magnum_core::cluster::{ClusterInput, ClusterOwner, CountRules};
    use magnum_core::cluster_template::{ClusterTemplate, Ownership, TemplateInput};
    use magnum_core::coe::TemplateRules;
    use magnum_core::lifecycle::{ClusterStatus, Operation};
    use magnum_core::ApiGeneration;
    use serde_json::json;

    fn template() -> ClusterTemplate {
        let input = TemplateInput::decode(
            &json!({"name": "t", "coe": "swarm", "image_id": "img"}),
            ApiGeneration::Current,
        )
        .unwrap();
        ClusterTemplate::from_input(
            &input,
            ApiGeneration::Current,
            Ownership {
                project_id: "p".to_string(),
                user_id: "u".to_string(),
                now: Utc::now(),
            },
            &TemplateRules::default(),
        )
        .map(|mut template| {
            template.uuid = TEMPLATE_UUID.to_string();
            template
        })
        .unwrap()
    }

    /// The uuid of the one template every test cluster is made from.
    const TEMPLATE_UUID: &str = "5a1c0b2e-3d4f-4a5b-8c6d-7e8f9a0b1c2d";

    fn cluster(project: &str, name: &str, nodes: i64) -> Cluster {
        let input = ClusterInput::decode(
            &json!({"cluster_template_id": "t", "name": name, "node_count": nodes}),
            ApiGeneration::Current,
            CountRules {
                zero_nodes_allowed: true,
            },
        )
        .unwrap();
        let owner = ClusterOwner {
            project_id: project.to_string(),
            user_id: "u".to_string(),
            now: chrono::SubsecRound::trunc_subsecs(Utc::now(), 6),
        };
        Cluster::new(&input, &template(), ApiGeneration::Current, owner).unwrap()
    }

    /// The default nodegroups of a test cluster, storing its template first when needed.
    async fn defaults(clusters: &Clusters<'_>) -> DefaultNodeGroups {
        let templates = clusters.database.cluster_templates();
        let stored = match templates.get_by_uuid(TEMPLATE_UUID).await {
            Ok(stored) => stored,
            Err(_) => templates.insert(&template()).await.unwrap(),
        };
        DefaultNodeGroups {
            template_revision: stored.revision,
            image_id: "img".to_string(),
            master_flavor_id: None,
            worker_flavor_id: Some("m1.small".to_string()),
            min_node_count: 0,
        }
    }

    fn page() -> Page {
        Page {
            limit: 100,
            marker: None,
            sort_key: "id".to_string(),
            sort_dir: SortDirection::Asc,
        }
    }

    /// Claims the cluster's pending operation and finishes it with `status`.
    async fn finish_operation(
        clusters: &Clusters<'_>,
        status: ClusterStatus,
        addresses: Option<&BTreeMap<String, Vec<String>>>,
    ) -> Cluster {
        let claimed = clusters
            .claim_next("a", chrono::Duration::seconds(30), Utc::now())
            .await
            .unwrap()
            .unwrap();
        let mut observed = claimed.clone();
        observed.status = status;
        assert!(clusters
            .record_progress(
                &observed,
                "a",
                claimed.operation_generation,
                true,
                addresses
            )
            .await
            .unwrap());
        clusters.get_by_uuid(&claimed.uuid).await.unwrap()
    }

    fn extra_group(cluster: &Cluster, name: &str, count: i64) -> NodeGroup {
        NodeGroup {
            id: 0,
            uuid: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            cluster_id: cluster.uuid.clone(),
            project_id: cluster.project_id.clone(),
            docker_volume_size: None,
            labels: Default::default(),
            flavor_id: None,
            image_id: Some("img".to_string()),
            node_addresses: Vec::new(),
            node_count: count,
            role: "worker".to_string(),
            max_node_count: None,
            min_node_count: 0,
            is_default: false,
            stack_id: None,
            status: Some("CREATE_IN_PROGRESS".to_string()),
            status_reason: None,
            node_labels: Some(json!({"tier": "b"})),
            node_taints: None,
            created_at: chrono::SubsecRound::trunc_subsecs(Utc::now(), 0),
            updated_at: None,
        }
    }

    #[tokio::test]
    async fn a_nodegroup_is_recorded_with_its_operation_and_ended_by_the_conductor() {
        let test = database().await;
        let clusters = test.database.clusters();
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
        let updated =
            finish_operation(&clusters, ClusterStatus::UpdateComplete, Some(&addresses)).await;
        assert_eq!(updated.extra_worker_count, 2);
        let pool = clusters.nodegroup(&updated.uuid, "pool").await.unwrap();
        assert_eq!(pool.status.as_deref(), Some("CREATE_COMPLETE"));
        assert_eq!(pool.node_addresses, addresses["pool"]);
        assert_eq!(pool.node_labels, Some(json!({"tier": "b"})));
        let default_worker = clusters
            .nodegroup(&updated.uuid, DEFAULT_WORKER)
            .await
            .unwrap();
        assert_eq!(default_worker.node_addresses, addresses[DEFAULT_WORKER]);

        // A failed resize of the group leaves it UPDATE_FAILED with the cluster's reason.
        let mut resizing = updated.clone();
        resizing.status = ClusterStatus::UpdateInProgress;
        resizing.operation = Some(Operation::Resize);
        resizing.operation_generation += 1;
        let mut bigger = pool.clone();
        bigger.node_count = 3;
        bigger.status = Some("UPDATE_IN_PROGRESS".to_string());
        clusters
            .update_with_nodegroup(&resizing, Some(&NodeGroupChange::Update(bigger)))
            .await
            .unwrap();
        let claimed = clusters
            .claim_next("a", chrono::Duration::seconds(30), Utc::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.extra_worker_count, 3);
        let mut failed = claimed.clone();
        failed.status = ClusterStatus::UpdateFailed;
        failed.status_reason = Some("no room".to_string());
        clusters
            .record_progress(&failed, "a", claimed.operation_generation, true, None)
            .await
            .unwrap();
        let pool = clusters.nodegroup(&updated.uuid, "pool").await.unwrap();
        assert_eq!(pool.status.as_deref(), Some("UPDATE_FAILED"));
        assert_eq!(pool.status_reason.as_deref(), Some("no room"));

        // A deleted group's row goes once the conductor has removed its nodes.
        let mut deleting = clusters.get_by_uuid(&updated.uuid).await.unwrap();
        deleting.status = ClusterStatus::UpdateInProgress;
        deleting.operation = Some(Operation::Resize);
        deleting.operation_generation += 1;
        let mut gone = pool.clone();
        gone.status = Some("DELETE_IN_PROGRESS".to_string());
        clusters
            .update_with_nodegroup(&deleting, Some(&NodeGroupChange::Update(gone)))
            .await
            .unwrap();
        let ended = finish_operation(&clusters, ClusterStatus::UpdateComplete, None).await;
        assert_eq!(ended.extra_worker_count, 0);
        assert!(matches!(
            clusters.nodegroup(&ended.uuid, "pool").await,
            Err(DbError::NotFound)
        ));
        let names: Vec<String> = clusters
            .all_nodegroups(&ended.uuid)
            .await
            .unwrap()
            .into_iter()
            .map(|group| group.name)
            .collect();
        assert_eq!(names, [DEFAULT_MASTER, DEFAULT_WORKER]);
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
        let groups = clusters
            .nodegroups(&stored.uuid, None, &page())
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
            clusters
                .nodegroups(&stored.uuid, Some("worker"), &page())
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            clusters
                .nodegroup(&stored.uuid, "default-worker")
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

    #[tokio::test]
    async fn only_one_conductor_wins_a_claim() {
        let test = database().await;
        let clusters = test.database.clusters();
        let stored = clusters
            .insert(&cluster("p", "claimed", 1), &defaults(&clusters).await)
            .await
            .unwrap();
        let now = Utc::now();
        let lease = chrono::Duration::seconds(30);
        let (first, second) = tokio::join!(
            clusters.claim_next("a", lease, now),
            clusters.claim_next("b", lease, now)
        );
        let winners = [first.unwrap(), second.unwrap()]
            .into_iter()
            .flatten()
            .count();
        assert_eq!(winners, 1);
        // Nobody else gets it before the lease expires; after expiry anyone may.
        assert!(clusters
            .claim_next("c", lease, now)
            .await
            .unwrap()
            .is_none());
        let later = now + chrono::Duration::seconds(31);
        let taken_over = clusters
            .claim_next("c", lease, later)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(taken_over.uuid, stored.uuid);
        // A restarted owner releases its leases and claims again at once.
        assert!(clusters
            .claim_next("c", lease, later)
            .await
            .unwrap()
            .is_none());
        assert_eq!(clusters.release_all_leases("c").await.unwrap(), 1);
        let reclaimed = clusters
            .claim_next("c", lease, later)
            .await
            .unwrap()
            .unwrap();
        // Postponed work waits for its time, whoever asks.
        clusters
            .postpone(reclaimed.id, "c", later + chrono::Duration::seconds(10))
            .await
            .unwrap();
        assert!(clusters
            .claim_next("d", lease, later)
            .await
            .unwrap()
            .is_none());
        assert!(clusters
            .claim_next("c", lease, later)
            .await
            .unwrap()
            .is_none());
        let after = later + chrono::Duration::seconds(11);
        assert!(clusters
            .claim_next("d", lease, after)
            .await
            .unwrap()
            .is_some());
    }

    #[tokio::test]
    async fn progress_is_refused_once_the_operation_is_superseded() {
        let test = database().await;
        let clusters = test.database.clusters();
        clusters
            .insert(&cluster("p", "racing", 1), &defaults(&clusters).await)
            .await
            .unwrap();
        let claimed = clusters
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
        assert!(!clusters
            .record_progress(&observed, "a", claimed.operation_generation, true, None)
            .await
            .unwrap());
        assert_eq!(
            clusters.get_by_uuid(&claimed.uuid).await.unwrap().status,
            ClusterStatus::DeleteInProgress
        );
        // The superseded worker lets go; the delete's worker finishes it.
        clusters.release_lease(claimed.id, "a").await.unwrap();
        let claimed_delete = clusters
            .claim_next("a", chrono::Duration::seconds(30), Utc::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed_delete.operation, Some(Operation::Delete));
        assert!(clusters
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
        assert!(clusters
            .nodegroups(&claimed.uuid, None, &page())
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn finishing_clears_the_operation_and_the_lease() {
        let test = database().await;
        let clusters = test.database.clusters();
        clusters
            .insert(&cluster("p", "finishing", 2), &defaults(&clusters).await)
            .await
            .unwrap();
        let claimed = clusters
            .claim_next("a", chrono::Duration::seconds(30), Utc::now())
            .await
            .unwrap()
            .unwrap();
        let mut observed = claimed.clone();
        observed.api_address = Some("https://10.0.0.10:2376".to_string());
        observed.node_addresses = vec!["10.0.0.20".to_string(), "10.0.0.21".to_string()];
        assert!(clusters
            .record_progress(&observed, "a", claimed.operation_generation, false, None)
            .await
            .unwrap());
        assert!(clusters
            .claim_next("b", chrono::Duration::seconds(30), Utc::now())
            .await
            .unwrap()
            .is_none());
        observed.status = ClusterStatus::CreateComplete;
        assert!(clusters
            .record_progress(&observed, "a", claimed.operation_generation, true, None)
            .await
            .unwrap());
        let done = clusters.get_by_uuid(&claimed.uuid).await.unwrap();
        assert_eq!(done.status, ClusterStatus::CreateComplete);
        assert_eq!(done.operation, None);
        assert_eq!(done.node_addresses.len(), 2);
        let worker = clusters
            .nodegroup(&done.uuid, "default-worker")
            .await
            .unwrap();
        assert_eq!(worker.node_addresses.len(), 2);
        assert_eq!(worker.status.as_deref(), Some("CREATE_COMPLETE"));
        assert!(clusters
            .claim_next("b", chrono::Duration::seconds(30), Utc::now())
            .await
            .unwrap()
            .is_none());
        assert_eq!(clusters.idle().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn quotas_round_trip() {
        let test = database().await;
        let quotas = test.database.quotas();
        let created = quotas.create("p", "Cluster", 3, Utc::now()).await.unwrap();
        assert_eq!(created.hard_limit, 3);
        assert!(matches!(
            quotas.create("p", "Cluster", 4, Utc::now()).await,
            Err(DbError::Duplicate)
        ));
        assert_eq!(
            quotas
                .update("p", "Cluster", 5, Utc::now())
                .await
                .unwrap()
                .hard_limit,
            5
        );
        assert_eq!(
            quotas.list(Some("p"), None, 10, false).await.unwrap().len(),
            1
        );
        assert_eq!(
            quotas
                .list(None, Some(created.id), 10, false)
                .await
                .unwrap()
                .len(),
            0
        );
        quotas.delete("p", "Cluster").await.unwrap();
        assert!(matches!(
            quotas.delete("p", "Cluster").await,
            Err(DbError::NotFound)
        ));
    }
}
