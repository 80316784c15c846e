//! The `cluster_template` table (2016 API: baymodels).

use crate::page::{after_marker, order_by, Bind, Page, SortValue};
use crate::{row, time, Database, DbError, DbResult};
use magnum_core::cluster_template::ClusterTemplate;
use magnum_core::coe::Coe;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Arguments, Row};
use std::sync::Arc;

/// Every column, in table order.
const COLUMNS: &str = "id, uuid, name, project_id, user_id, coe, image_id, flavor_id, \
    master_flavor_id, keypair_id, dns_nameserver, external_network_id, fixed_network, \
    fixed_subnet, network_driver, volume_driver, apiserver_port, docker_volume_size, \
    docker_storage_driver, ssh_authorized_key, cluster_distro, http_proxy, https_proxy, \
    no_proxy, registry_enabled, insecure_registry, labels, tls_disabled, public, server_type, \
    master_lb_enabled, floating_ip_enabled, hidden, tags, driver, version, created_at, updated_at";

/// Columns a list may be sorted by, with whether they hold integers.
const SORTABLE_COLUMNS: &[(&str, bool)] = &[
    ("id", true),
    ("uuid", false),
    ("name", false),
    ("project_id", false),
    ("user_id", false),
    ("coe", false),
    ("image_id", false),
    ("flavor_id", false),
    ("master_flavor_id", false),
    ("keypair_id", false),
    ("dns_nameserver", false),
    ("external_network_id", false),
    ("fixed_network", false),
    ("fixed_subnet", false),
    ("network_driver", false),
    ("volume_driver", false),
    ("apiserver_port", true),
    ("docker_volume_size", true),
    ("docker_storage_driver", false),
    ("ssh_authorized_key", false),
    ("cluster_distro", false),
    ("http_proxy", false),
    ("https_proxy", false),
    ("no_proxy", false),
    ("registry_enabled", true),
    ("insecure_registry", false),
    ("labels", false),
    ("tls_disabled", true),
    ("public", true),
    ("server_type", false),
    ("master_lb_enabled", true),
    ("floating_ip_enabled", true),
    ("hidden", true),
    ("tags", false),
    ("driver", false),
    ("created_at", false),
    ("updated_at", false),
];

/// Whether `column` can be used as a sort key.
pub fn is_sortable(column: &str) -> bool {
    SORTABLE_COLUMNS.iter().any(|(name, _)| *name == column)
}

/// Which templates a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateVisibility {
    /// Every template (admin).
    All,
    /// The project's own templates plus public ones that are not hidden.
    Project(String),
}

impl TemplateVisibility {
    fn condition(&self) -> (&'static str, Option<Bind>) {
        match self {
            TemplateVisibility::All => ("1 = 1", None),
            TemplateVisibility::Project(project_id) => (
                "(project_id = ? OR (public = 1 AND hidden = 0))",
                Some(Bind::Text(project_id.clone())),
            ),
        }
    }
}

fn bool_column(flag: bool) -> i16 {
    i16::from(flag)
}

fn decode(row: &AnyRow) -> DbResult<ClusterTemplate> {
    let coe_text = row::text(row, "coe")?;
    let coe = coe_text.parse::<Coe>().map_err(|_| DbError::Corrupt {
        column: "coe",
        reason: format!("unknown engine '{coe_text}'"),
    })?;
    let labels_text = row::text(row, "labels")?;
    let labels = serde_json::from_str(&labels_text).map_err(|error| DbError::Corrupt {
        column: "labels",
        reason: error.to_string(),
    })?;
    Ok(ClusterTemplate {
        id: row::integer(row, "id")?,
        revision: row::integer(row, "version")?,
        uuid: row::text(row, "uuid")?,
        name: row::optional_text(row, "name")?,
        project_id: row::text(row, "project_id")?,
        user_id: row::text(row, "user_id")?,
        coe,
        image_id: row::text(row, "image_id")?,
        flavor_id: row::optional_text(row, "flavor_id")?,
        master_flavor_id: row::optional_text(row, "master_flavor_id")?,
        keypair_id: row::optional_text(row, "keypair_id")?,
        dns_nameserver: row::optional_text(row, "dns_nameserver")?,
        external_network_id: row::optional_text(row, "external_network_id")?,
        fixed_network: row::optional_text(row, "fixed_network")?,
        fixed_subnet: row::optional_text(row, "fixed_subnet")?,
        network_driver: row::optional_text(row, "network_driver")?,
        volume_driver: row::optional_text(row, "volume_driver")?,
        apiserver_port: row::optional_integer(row, "apiserver_port")?,
        docker_volume_size: row::optional_integer(row, "docker_volume_size")?,
        docker_storage_driver: row::optional_text(row, "docker_storage_driver")?,
        ssh_authorized_key: row::optional_text(row, "ssh_authorized_key")?,
        cluster_distro: row::optional_text(row, "cluster_distro")?,
        http_proxy: row::optional_text(row, "http_proxy")?,
        https_proxy: row::optional_text(row, "https_proxy")?,
        no_proxy: row::optional_text(row, "no_proxy")?,
        registry_enabled: row::boolean(row, "registry_enabled")?,
        insecure_registry: row::optional_text(row, "insecure_registry")?,
        labels,
        tls_disabled: row::boolean(row, "tls_disabled")?,
        public: row::boolean(row, "public")?,
        server_type: row::text(row, "server_type")?,
        master_lb_enabled: row::boolean(row, "master_lb_enabled")?,
        floating_ip_enabled: row::boolean(row, "floating_ip_enabled")?,
        hidden: row::boolean(row, "hidden")?,
        tags: row::optional_text(row, "tags")?,
        driver: row::optional_text(row, "driver")?,
        created_at: time::decode("created_at", &row::text(row, "created_at")?)?,
        updated_at: time::decode_optional("updated_at", row::optional_text(row, "updated_at")?)?,
    })
}

/// Binds every stored attribute except `id`, in [`COLUMNS`] order starting at `uuid` and
/// ending before `version`.
fn bind_attributes(
    arguments: &mut AnyArguments,
    template: &ClusterTemplate,
) -> Result<(), sqlx::error::BoxDynError> {
    let labels = serde_json::to_string(&template.labels)?;
    arguments.add(template.uuid.clone())?;
    arguments.add(template.name.clone())?;
    arguments.add(template.project_id.clone())?;
    arguments.add(template.user_id.clone())?;
    arguments.add(template.coe.as_str().to_string())?;
    arguments.add(template.image_id.clone())?;
    arguments.add(template.flavor_id.clone())?;
    arguments.add(template.master_flavor_id.clone())?;
    arguments.add(template.keypair_id.clone())?;
    arguments.add(template.dns_nameserver.clone())?;
    arguments.add(template.external_network_id.clone())?;
    arguments.add(template.fixed_network.clone())?;
    arguments.add(template.fixed_subnet.clone())?;
    arguments.add(template.network_driver.clone())?;
    arguments.add(template.volume_driver.clone())?;
    arguments.add(template.apiserver_port)?;
    arguments.add(template.docker_volume_size)?;
    arguments.add(template.docker_storage_driver.clone())?;
    arguments.add(template.ssh_authorized_key.clone())?;
    arguments.add(template.cluster_distro.clone())?;
    arguments.add(template.http_proxy.clone())?;
    arguments.add(template.https_proxy.clone())?;
    arguments.add(template.no_proxy.clone())?;
    arguments.add(bool_column(template.registry_enabled))?;
    arguments.add(template.insecure_registry.clone())?;
    arguments.add(labels)?;
    arguments.add(bool_column(template.tls_disabled))?;
    arguments.add(bool_column(template.public))?;
    arguments.add(template.server_type.clone())?;
    arguments.add(bool_column(template.master_lb_enabled))?;
    arguments.add(bool_column(template.floating_ip_enabled))?;
    arguments.add(bool_column(template.hidden))?;
    arguments.add(template.tags.clone())?;
    arguments.add(template.driver.clone())?;
    Ok(())
}

fn argument_error(error: sqlx::error::BoxDynError) -> DbError {
    DbError::Backend(sqlx::Error::Encode(error))
}

/// Parses `id:version,id:version,…` as the SQLite key aggregate produces it.
fn parse_keys(text: &str) -> DbResult<Vec<(i64, i64)>> {
    let corrupt = || DbError::Corrupt {
        column: "page_keys",
        reason: format!("'{text}' is not a list of id:version pairs"),
    };
    text.split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (id, version) = pair.split_once(':').ok_or_else(corrupt)?;
            Ok((
                id.parse().map_err(|_| corrupt())?,
                version.parse().map_err(|_| corrupt())?,
            ))
        })
        .collect()
}

/// Repository of cluster templates.
#[derive(Debug, Clone, Copy)]
pub struct ClusterTemplates<'a> {
    database: &'a Database,
}

impl Database {
    pub fn cluster_templates(&self) -> ClusterTemplates<'_> {
        ClusterTemplates { database: self }
    }
}

impl ClusterTemplates<'_> {
    /// Stores a new template and returns it with its id. A duplicate uuid, or a name the
    /// project already uses, is [`DbError::Duplicate`].
    pub async fn insert(&self, template: &ClusterTemplate) -> DbResult<Arc<ClusterTemplate>> {
        let mut arguments = AnyArguments::default();
        bind_attributes(&mut arguments, template).map_err(argument_error)?;
        arguments.add(0_i64).map_err(argument_error)?;
        arguments
            .add(time::encode(&template.created_at))
            .map_err(argument_error)?;
        arguments
            .add(template.updated_at.as_ref().map(time::encode))
            .map_err(argument_error)?;
        let insert =
            "INSERT INTO cluster_template (uuid, name, project_id, user_id, coe, image_id, \
            flavor_id, master_flavor_id, keypair_id, dns_nameserver, external_network_id, \
            fixed_network, fixed_subnet, network_driver, volume_driver, apiserver_port, \
            docker_volume_size, docker_storage_driver, ssh_authorized_key, cluster_distro, \
            http_proxy, https_proxy, no_proxy, registry_enabled, insecure_registry, labels, \
            tls_disabled, public, server_type, master_lb_enabled, floating_ip_enabled, hidden, \
            tags, driver, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, \
            ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        {
            let _turn = self.database.write_turn().await;
            sqlx::query_with(self.database.dialect().sql(insert), arguments)
                .execute(self.database.pool())
                .await?;
        }
        self.get_by_uuid(&template.uuid).await
    }

    /// The template with this uuid, whoever owns it.
    pub async fn get_by_uuid(&self, uuid: &str) -> DbResult<Arc<ClusterTemplate>> {
        let row = sqlx::query(
            self.database
                .dialect()
                .sql("SELECT id, version FROM cluster_template WHERE uuid = ?"),
        )
        .bind(uuid.to_string())
        .fetch_optional(self.database.pool())
        .await?
        .ok_or(DbError::NotFound)?;
        let key = (row::integer(&row, "id")?, row::integer(&row, "version")?);
        self.load(&[key]).await?.pop().ok_or(DbError::NotFound)
    }

    /// The templates with these uuids (each once, in no particular order; unknown uuids are
    /// left out), in one query for their keys.
    pub async fn get_many_by_uuid(&self, uuids: &[&str]) -> DbResult<Vec<Arc<ClusterTemplate>>> {
        if uuids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders = vec!["?"; uuids.len()].join(", ");
        let sql =
            format!("SELECT id, version FROM cluster_template WHERE uuid IN ({placeholders})");
        let mut query = sqlx::query(self.database.dialect().sql(sql));
        for uuid in uuids {
            query = query.bind(uuid.to_string());
        }
        let rows = query.fetch_all(self.database.pool()).await?;
        self.load(&Self::keys(&rows)?).await
    }

    /// The rows with these (id, version) keys, in the same order, from the cache when it
    /// holds that revision and from one query for the rest. A row deleted in between is
    /// left out; a row changed in between comes back at its newer revision.
    pub(crate) async fn load(&self, keys: &[(i64, i64)]) -> DbResult<Vec<Arc<ClusterTemplate>>> {
        let cache = &self.database.template_cache;
        let mut found: Vec<Option<Arc<ClusterTemplate>>> = keys
            .iter()
            .map(|(id, version)| cache.get(*id, *version))
            .collect();
        let missing: Vec<i64> = keys
            .iter()
            .zip(&found)
            .filter(|(_, cached)| cached.is_none())
            .map(|((id, _), _)| *id)
            .collect();
        if !missing.is_empty() {
            let placeholders = vec!["?"; missing.len()].join(", ");
            let sql =
                format!("SELECT {COLUMNS} FROM cluster_template WHERE id IN ({placeholders})");
            let mut query = sqlx::query(self.database.dialect().sql(sql));
            for id in &missing {
                query = query.bind(*id);
            }
            let rows = query.fetch_all(self.database.pool()).await?;
            for row in &rows {
                let template = Arc::new(decode(row)?);
                cache.put(template.id, template.revision, template.clone());
                for (slot, (id, _)) in found.iter_mut().zip(keys) {
                    if *id == template.id {
                        *slot = Some(template.clone());
                    }
                }
            }
        }
        Ok(found.into_iter().flatten().collect())
    }

    /// (id, version) of the rows a query matches.
    fn keys(rows: &[AnyRow]) -> DbResult<Vec<(i64, i64)>> {
        rows.iter()
            .map(|row| Ok((row::integer(row, "id")?, row::integer(row, "version")?)))
            .collect()
    }

    /// The one template with this name among those visible; [`DbError::Ambiguous`] when more
    /// than one matches.
    pub async fn find_by_name(
        &self,
        name: &str,
        visibility: &TemplateVisibility,
    ) -> DbResult<Arc<ClusterTemplate>> {
        let (condition, bind) = visibility.condition();
        let sql = format!(
            "SELECT id, version FROM cluster_template WHERE name = ? AND {condition} LIMIT 2"
        );
        let mut query = sqlx::query(self.database.dialect().sql(sql)).bind(name.to_string());
        if let Some(Bind::Text(project_id)) = bind {
            query = query.bind(project_id);
        }
        let rows = query.fetch_all(self.database.pool()).await?;
        match Self::keys(&rows)?.as_slice() {
            [] => Err(DbError::NotFound),
            [only] => self.load(&[*only]).await?.pop().ok_or(DbError::NotFound),
            _ => Err(DbError::Ambiguous),
        }
    }

    /// One page of the visible templates. The marker must be a visible template's uuid.
    pub async fn list(
        &self,
        visibility: &TemplateVisibility,
        page: &Page,
    ) -> DbResult<Vec<Arc<ClusterTemplate>>> {
        let sort_column = SORTABLE_COLUMNS
            .iter()
            .find(|(name, _)| *name == page.sort_key)
            .ok_or(DbError::Corrupt {
                column: "sort_key",
                reason: format!("{} is not sortable", page.sort_key),
            })?;
        let (condition, visibility_bind) = visibility.condition();
        let mut arguments = AnyArguments::default();
        if let Some(bind) = &visibility_bind {
            bind.add_to(&mut arguments).map_err(argument_error)?;
        }
        let mut filter = format!("WHERE {condition}");
        if let Some(marker) = &page.marker {
            let marker_row = self.marker(marker, visibility, sort_column).await?;
            let fragment = after_marker(sort_column.0, page.sort_dir, &marker_row.0, marker_row.1);
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
                "SELECT group_concat(id || ':' || version, ',' ORDER BY position) AS page_keys FROM \
                 (SELECT id, version, ROW_NUMBER() OVER ({order}) AS position \
                 FROM cluster_template {filter} {order} LIMIT ?)"
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
            let sql = format!("SELECT id, version FROM cluster_template {filter} {order} LIMIT ?");
            let rows = sqlx::query_with(self.database.dialect().sql(sql), arguments)
                .fetch_all(self.database.pool())
                .await?;
            Self::keys(&rows)?
        };
        self.load(&keys).await
    }

    async fn marker(
        &self,
        marker: &str,
        visibility: &TemplateVisibility,
        sort_column: &(&'static str, bool),
    ) -> DbResult<(SortValue, i64)> {
        let (condition, bind) = visibility.condition();
        let sql = format!(
            "SELECT id, {column} AS sort_value FROM cluster_template WHERE uuid = ? AND {condition}",
            column = sort_column.0
        );
        let mut query = sqlx::query(self.database.dialect().sql(sql)).bind(marker.to_string());
        if let Some(Bind::Text(project_id)) = bind {
            query = query.bind(project_id);
        }
        let row = query
            .fetch_optional(self.database.pool())
            .await?
            .ok_or(DbError::MarkerNotFound)?;
        let id = row::integer(&row, "id")?;
        let value = if sort_column.1 {
            row.try_get::<Option<i64>, _>("sort_value")
                .map_err(DbError::from)?
                .map(SortValue::Integer)
        } else {
            row.try_get::<Option<String>, _>("sort_value")
                .map_err(DbError::from)?
                .map(SortValue::Text)
        };
        Ok((value.unwrap_or(SortValue::Null), id))
    }

    /// Stores every attribute of `template` if its revision is still the stored one, and
    /// returns the stored result. A concurrent change in between is [`DbError::Stale`].
    pub async fn update(&self, template: &ClusterTemplate) -> DbResult<Arc<ClusterTemplate>> {
        self.update_checked(template, true).await
    }

    /// Stores a changed template if its revision is unchanged ([`DbError::Stale`] otherwise).
    /// Unless `allowed_in_use`, the change is refused with [`DbError::InUse`] when a cluster
    /// uses the template. The check and the write are one transaction that locks the
    /// template's row, and a cluster insert takes the same lock, so a cluster can never start
    /// to use a template between the check and the write.
    pub async fn update_checked(
        &self,
        template: &ClusterTemplate,
        allowed_in_use: bool,
    ) -> DbResult<Arc<ClusterTemplate>> {
        let mut arguments = AnyArguments::default();
        bind_attributes(&mut arguments, template).map_err(argument_error)?;
        arguments
            .add(template.updated_at.as_ref().map(time::encode))
            .map_err(argument_error)?;
        arguments.add(template.id).map_err(argument_error)?;
        arguments.add(template.revision).map_err(argument_error)?;
        let update = "UPDATE cluster_template SET uuid = ?, name = ?, project_id = ?, user_id = ?, \
            coe = ?, image_id = ?, flavor_id = ?, master_flavor_id = ?, keypair_id = ?, \
            dns_nameserver = ?, external_network_id = ?, fixed_network = ?, fixed_subnet = ?, \
            network_driver = ?, volume_driver = ?, apiserver_port = ?, docker_volume_size = ?, \
            docker_storage_driver = ?, ssh_authorized_key = ?, cluster_distro = ?, http_proxy = ?, \
            https_proxy = ?, no_proxy = ?, registry_enabled = ?, insecure_registry = ?, labels = ?, \
            tls_disabled = ?, public = ?, server_type = ?, master_lb_enabled = ?, \
            floating_ip_enabled = ?, hidden = ?, tags = ?, driver = ?, updated_at = ?, \
            version = version + 1 WHERE id = ? AND version = ?";
        {
            let dialect = self.database.dialect();
            let _turn = self.database.write_turn().await;
            let mut transaction = self.database.begin_write().await?;
            let current: Option<i64> = sqlx::query_scalar(dialect.sql(format!(
                "SELECT version FROM cluster_template WHERE id = ?{}",
                dialect.lock_rows()
            )))
            .bind(template.id)
            .fetch_optional(&mut *transaction)
            .await?;
            match current {
                None => return Err(DbError::NotFound),
                Some(version) if version != template.revision => return Err(DbError::Stale),
                Some(_) => {}
            }
            if !allowed_in_use {
                let users: i64 = sqlx::query_scalar(
                    dialect.sql("SELECT COUNT(*) FROM cluster WHERE cluster_template_id = ? OR rollback_template_id = ?"),
                )
                .bind(template.uuid.clone())
                .bind(template.uuid.clone())
                .fetch_one(&mut *transaction)
                .await?;
                if users > 0 {
                    return Err(DbError::InUse);
                }
            }
            let result = sqlx::query_with(dialect.sql(update), arguments)
                .execute(&mut *transaction)
                .await?;
            if result.rows_affected() == 0 {
                return Err(DbError::Stale);
            }
            transaction.commit().await?;
        }
        self.get_by_uuid(&template.uuid).await
    }

    /// Deletes the template with this id.
    pub async fn delete(&self, id: i64) -> DbResult<()> {
        let _turn = self.database.write_turn().await;
        let result = sqlx::query(
            self.database
                .dialect()
                .sql("DELETE FROM cluster_template WHERE id = ?"),
        )
        .bind(id)
        .execute(self.database.pool())
        .await?;
        self.database.template_cache.forget(id);
        if result.rows_affected() == 0 {
            Err(DbError::NotFound)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::SortDirection;
    use crate::testing::database;
    use chrono::{TimeZone, Utc};
    use magnum_core::cluster_template::{Ownership, TemplateInput};
    use magnum_core::coe::TemplateRules;
    use magnum_core::ApiGeneration;
    use serde_json::json;

    fn unique_project() -> String {
        format!("project-{}", uuid_like())
    }

    fn uuid_like() -> String {
        format!("{:x}", rand_number())
    }

    fn rand_number() -> u128 {
        use std::time::{SystemTime, UNIX_EPOCH};
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        nanos ^ (std::process::id() as u128) << 64
    }

    fn template(project: &str, name: &str, body: serde_json::Value) -> ClusterTemplate {
        let mut body = body;
        body["name"] = json!(name);
        let input = TemplateInput::decode(&body, ApiGeneration::Current).unwrap();
        ClusterTemplate::from_input(
            &input,
            ApiGeneration::Current,
            Ownership {
                project_id: project.to_string(),
                user_id: "user".to_string(),
                now: Utc.with_ymd_and_hms(2026, 5, 6, 7, 8, 9).unwrap(),
            },
            &TemplateRules::default(),
        )
        .unwrap()
    }

    fn swarm(project: &str, name: &str) -> ClusterTemplate {
        template(
            project,
            name,
            json!({"coe": "swarm", "image_id": "img", "labels": {"a": "1"}, "docker_volume_size": 5}),
        )
    }

    #[tokio::test]
    async fn insert_then_read_back_every_attribute() {
        let test = database().await;
        let repository = test.database.cluster_templates();
        let mut original = template(
            &unique_project(),
            "full",
            json!({"coe": "kubernetes", "image_id": "fedora", "flavor_id": "m1.small",
                   "master_flavor_id": "m1.medium", "keypair_id": "kp", "dns_nameserver": "8.8.8.8",
                   "external_network_id": "public", "fixed_network": "net", "fixed_subnet": "sub",
                   "volume_driver": "cinder", "apiserver_port": 8443, "docker_volume_size": 3,
                   "docker_storage_driver": "overlay2", "http_proxy": "http://p:3128",
                   "https_proxy": "http://p:3128", "no_proxy": "localhost", "registry_enabled": true,
                   "insecure_registry": "10.0.0.1:5000", "labels": {"kube_tag": "v1"},
                   "tls_disabled": true, "public": true, "server_type": "bm",
                   "master_lb_enabled": true, "floating_ip_enabled": false, "hidden": true,
                   "tags": "a,b", "driver": "k8s"}),
        );
        original.cluster_distro = Some("fedora-coreos".to_string());
        let stored = repository.insert(&original).await.unwrap();
        assert!(stored.id > 0);
        let mut expected = original.clone();
        expected.id = stored.id;
        assert_eq!(*stored, expected);
        assert_eq!(
            *repository.get_by_uuid(&original.uuid).await.unwrap(),
            expected
        );
    }

    #[tokio::test]
    async fn names_are_unique_per_project_only() {
        let test = database().await;
        let repository = test.database.cluster_templates();
        let project_a = unique_project();
        let project_b = unique_project();
        repository.insert(&swarm(&project_a, "same")).await.unwrap();
        assert!(matches!(
            repository.insert(&swarm(&project_a, "same")).await,
            Err(DbError::Duplicate)
        ));
        repository.insert(&swarm(&project_b, "same")).await.unwrap();
    }

    #[tokio::test]
    async fn visibility_limits_name_lookups() {
        let test = database().await;
        let repository = test.database.cluster_templates();
        let owner = unique_project();
        let other = unique_project();
        let name = format!("private-{}", uuid_like());
        repository.insert(&swarm(&owner, &name)).await.unwrap();
        let own = TemplateVisibility::Project(owner.clone());
        let foreign = TemplateVisibility::Project(other.clone());
        assert!(repository.find_by_name(&name, &own).await.is_ok());
        assert!(matches!(
            repository.find_by_name(&name, &foreign).await,
            Err(DbError::NotFound)
        ));
        // A public template of another project with the same name makes the name ambiguous.
        let mut shared = swarm(&other, &name);
        shared.public = true;
        repository.insert(&shared).await.unwrap();
        assert!(matches!(
            repository.find_by_name(&name, &own).await,
            Err(DbError::Ambiguous)
        ));
        assert!(repository.find_by_name(&name, &foreign).await.is_ok());
    }

    #[tokio::test]
    async fn pages_follow_the_sort_key_and_marker() {
        let test = database().await;
        let repository = test.database.cluster_templates();
        let project = unique_project();
        let visibility = TemplateVisibility::Project(project.clone());
        let mut uuids_by_name = Vec::new();
        for (index, name) in ["c", "a", "b", "e", "d"].iter().enumerate() {
            let mut template = swarm(&project, name);
            template.docker_volume_size = if index == 2 { None } else { Some(index as i64) };
            let stored = repository.insert(&template).await.unwrap();
            uuids_by_name.push((name.to_string(), stored.uuid.clone()));
        }
        let names = |templates: &[Arc<ClusterTemplate>]| {
            templates
                .iter()
                .map(|t| t.name.clone().unwrap())
                .collect::<Vec<_>>()
        };
        let mut page = Page {
            limit: 2,
            marker: None,
            sort_key: "name".to_string(),
            sort_dir: SortDirection::Asc,
        };
        let first = repository.list(&visibility, &page).await.unwrap();
        assert_eq!(names(&first), ["a", "b"]);
        page.marker = Some(first[1].uuid.clone());
        let second = repository.list(&visibility, &page).await.unwrap();
        assert_eq!(names(&second), ["c", "d"]);
        page.marker = Some(second[1].uuid.clone());
        assert_eq!(
            names(&repository.list(&visibility, &page).await.unwrap()),
            ["e"]
        );

        // Descending by a nullable integer: NULL first, then 4, 3, 1, 0.
        let mut by_size = Page {
            limit: 10,
            marker: None,
            sort_key: "docker_volume_size".to_string(),
            sort_dir: SortDirection::Desc,
        };
        let all = repository.list(&visibility, &by_size).await.unwrap();
        assert_eq!(names(&all), ["b", "d", "e", "a", "c"]);
        by_size.limit = 2;
        by_size.marker = Some(all[0].uuid.clone());
        assert_eq!(
            names(&repository.list(&visibility, &by_size).await.unwrap()),
            ["d", "e"]
        );
        by_size.sort_dir = SortDirection::Asc;
        by_size.marker = Some(all[1].uuid.clone());
        assert_eq!(
            names(&repository.list(&visibility, &by_size).await.unwrap()),
            ["b"]
        );

        let hidden_marker = Page {
            marker: Some(swarm(&unique_project(), "x").uuid),
            ..page
        };
        assert!(matches!(
            repository.list(&visibility, &hidden_marker).await,
            Err(DbError::MarkerNotFound)
        ));
    }

    /// Two pools on one database stand for two magnumd processes: a change made through one
    /// is seen through the other even though the other has the old revision cached.
    #[tokio::test]
    async fn cached_rows_never_hide_a_change_made_elsewhere() {
        let directory = tempfile::tempdir().unwrap();
        let connection = magnum_config::DatabaseConnection::Sqlite {
            path: Some(directory.path().join("shared.sqlite")),
        };
        let first = Database::connect(&connection, 2).await.unwrap();
        first.upgrade().await.unwrap();
        let second = Database::connect(&connection, 2).await.unwrap();
        let stored = first
            .cluster_templates()
            .insert(&swarm("p", "cached"))
            .await
            .unwrap();
        let visibility = TemplateVisibility::All;
        let page = Page {
            limit: 10,
            marker: None,
            sort_key: "id".to_string(),
            sort_dir: SortDirection::Asc,
        };
        assert_eq!(
            second
                .cluster_templates()
                .list(&visibility, &page)
                .await
                .unwrap()[0]
                .flavor_id,
            None
        );
        let mut changed = (*stored).clone();
        changed.flavor_id = Some("m1.large".to_string());
        first.cluster_templates().update(&changed).await.unwrap();
        let seen = second
            .cluster_templates()
            .list(&visibility, &page)
            .await
            .unwrap();
        assert_eq!(seen[0].flavor_id.as_deref(), Some("m1.large"));
        let by_uuid = second
            .cluster_templates()
            .get_by_uuid(&stored.uuid)
            .await
            .unwrap();
        assert_eq!(by_uuid.flavor_id.as_deref(), Some("m1.large"));
        first.cluster_templates().delete(stored.id).await.unwrap();
        assert!(second
            .cluster_templates()
            .list(&visibility, &page)
            .await
            .unwrap()
            .is_empty());
        assert!(matches!(
            second.cluster_templates().get_by_uuid(&stored.uuid).await,
            Err(DbError::NotFound)
        ));
    }

    #[tokio::test]
    async fn updates_refuse_stale_revisions() {
        let test = database().await;
        let repository = test.database.cluster_templates();
        let stored = repository
            .insert(&swarm(&unique_project(), "rev"))
            .await
            .unwrap();
        let mut first = (*stored).clone();
        first.flavor_id = Some("m1.large".to_string());
        let updated = repository.update(&first).await.unwrap();
        assert_eq!(updated.revision, stored.revision + 1);
        assert_eq!(updated.flavor_id.as_deref(), Some("m1.large"));
        let mut second = (*stored).clone();
        second.flavor_id = Some("m1.tiny".to_string());
        assert!(matches!(
            repository.update(&second).await,
            Err(DbError::Stale)
        ));
        repository.delete(stored.id).await.unwrap();
        assert!(matches!(
            repository.update(&updated).await,
            Err(DbError::NotFound)
        ));
        assert!(matches!(
            repository.delete(stored.id).await,
            Err(DbError::NotFound)
        ));
    }
}
