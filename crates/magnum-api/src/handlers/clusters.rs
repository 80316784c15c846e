//! Clusters: `/v1/clusters` (current: asynchronous, 202) and `/v1/bays` (2016: 201/200 with
//! the bay), plus the resize and upgrade actions. The API only records desired state and an
//! operation (checked against the lifecycle table first); conductors carry it out.

use crate::error::ApiError;
use crate::handlers::generation::{self, GenerationResource, RequestParts};
use crate::handlers::{cluster_templates, discovery};
use crate::pagination::{next_link, page_from_query};
use crate::policy::enforce;
use crate::policy::PolicyTarget;
use crate::request::{json_body, Caller};
use crate::version::{self, ApiVersion};
use crate::views::{cluster_view, ClusterView, ClusterViewKind, Collection};
use crate::SharedState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use chrono::{SubsecRound, Utc};
use magnum_core::cluster::{
    decode_cluster_patch, patch_document, Cluster, ClusterInput, ClusterOwner, ClusterPatchRules,
    CountRules,
};
use magnum_core::cluster_template::ClusterTemplate;
use magnum_core::fields::{decode_int, decode_string};
use magnum_core::lifecycle::{self, NodeGroupOperation, Operation};
use magnum_core::limits;
use magnum_core::patch::{apply_patch, decode_patch};
use magnum_core::{is_uuid_like, ApiGeneration, DomainError};
use magnum_db::cluster::{is_sortable, ClusterVisibility};
use magnum_db::nodegroup::{DefaultNodeGroups, NodeGroupChange, DEFAULT_WORKER};
use magnum_db::trust::TrustRecord;
use magnum_db::{DbError, ProjectLimits, Resource};
use magnum_driver::provider::LookupKind;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub fn routes() -> Router<SharedState> {
    generation::routes::<Clusters>("/v1/clusters", "/v1/bays")
        .route("/v1/clusters/{ident}/actions/resize", post(resize))
        .route("/v1/clusters/{ident}/actions/upgrade", post(upgrade))
}

/// The words of each generation.
pub(crate) struct Words {
    generation: ApiGeneration,
    policy: &'static str,
    collection: &'static str,
    title: &'static str,
    noun: &'static str,
}

const CURRENT: Words = Words {
    generation: ApiGeneration::Current,
    policy: "cluster",
    collection: "clusters",
    title: "Cluster",
    noun: "cluster",
};

const SEED: Words = Words {
    generation: ApiGeneration::Seed,
    policy: "bay",
    collection: "bays",
    title: "Bay",
    noun: "bay",
};

impl Words {
    fn rule(&self, action: &str) -> String {
        format!("{}:{action}", self.policy)
    }

    fn not_found(&self, ident: &str) -> ApiError {
        ApiError::not_found(format!("{} {ident} could not be found.", self.title))
    }

    fn templates(&self) -> &'static cluster_templates::Vocabulary {
        match self.generation {
            ApiGeneration::Current => &cluster_templates::CURRENT,
            ApiGeneration::Seed => &cluster_templates::SEED,
        }
    }
}

fn visibility(caller: &Caller) -> ClusterVisibility {
    if caller.is_admin {
        ClusterVisibility::All
    } else {
        ClusterVisibility::Project(caller.context.project_id.clone())
    }
}

/// The uuid an identifier names, when it is one (otherwise it is a name).
fn uuid_of(ident: &str) -> Option<String> {
    magnum_core::normalize_uuid(ident).filter(|_| is_uuid_like(ident))
}

/// A visible cluster by uuid or name with its template (None when the template is gone):
/// what a single GET shows.
async fn find_cluster_with_template(
    state: &SharedState,
    caller: &Caller,
    ident: &str,
    words_title: &str,
) -> Result<(Arc<Cluster>, Option<Arc<ClusterTemplate>>), ApiError> {
    if let Some(uuid) = uuid_of(ident) {
        return match state.database.clusters().get_with_template(&uuid).await {
            Ok((cluster, template)) if visibility(caller).includes(&cluster.project_id) => {
                Ok((cluster, template))
            }
            Ok(_) | Err(DbError::NotFound) => Err(ApiError::not_found(format!(
                "{words_title} {ident} could not be found."
            ))),
            Err(other) => Err(other.into()),
        };
    }
    let cluster = find_cluster(state, caller, ident, words_title).await?;
    let template = match state
        .database
        .cluster_templates()
        .get_by_uuid(&cluster.cluster_template_id)
        .await
    {
        Ok(template) => Some(template),
        Err(DbError::NotFound) => None,
        Err(other) => return Err(other.into()),
    };
    Ok((Arc::new(cluster), template))
}

/// A visible cluster by uuid or name.
pub(crate) async fn find_cluster(
    state: &SharedState,
    caller: &Caller,
    ident: &str,
    words_title: &str,
) -> Result<Cluster, ApiError> {
    let not_found = || ApiError::not_found(format!("{words_title} {ident} could not be found."));
    let visibility = visibility(caller);
    if let Some(uuid) = uuid_of(ident) {
        return match state.database.clusters().get_by_uuid(&uuid).await {
            Ok(cluster) if visibility.includes(&cluster.project_id) => Ok(cluster),
            Ok(_) | Err(DbError::NotFound) => Err(not_found()),
            Err(other) => Err(other.into()),
        };
    }
    match state
        .database
        .clusters()
        .find_by_name(ident, &visibility)
        .await
    {
        Ok(cluster) => Ok(cluster),
        Err(DbError::NotFound) => Err(not_found()),
        Err(DbError::Ambiguous) => Err(ApiError::conflict(format!(
            "Multiple {}s exist with same name. Please use the {} uuid instead.",
            words_title.to_ascii_lowercase(),
            words_title.to_ascii_lowercase()
        ))),
        Err(other) => Err(other.into()),
    }
}

fn count_rules(version: ApiVersion) -> CountRules {
    CountRules {
        zero_nodes_allowed: version >= ApiVersion::new(1, 10),
    }
}

/// The templates of a page of clusters, by uuid, from one query.
async fn templates_of(
    state: &SharedState,
    clusters: &[Arc<Cluster>],
) -> Result<HashMap<String, Arc<ClusterTemplate>>, ApiError> {
    let mut uuids: Vec<&str> = clusters
        .iter()
        .map(|cluster| cluster.cluster_template_id.as_str())
        .collect();
    uuids.sort_unstable();
    uuids.dedup();
    Ok(state
        .database
        .cluster_templates()
        .get_many_by_uuid(&uuids)
        .await?
        .into_iter()
        .map(|template| (template.uuid.clone(), template))
        .collect())
}

async fn list(
    state: SharedState,
    caller: Caller,
    base: String,
    version: ApiVersion,
    query: HashMap<String, String>,
    words: &Words,
    detail: bool,
) -> Result<Response, ApiError> {
    let rule = words.rule(if detail { "detail" } else { "get_all" });
    enforce(&state, &rule, &caller, &PolicyTarget::own(&caller.context))?;
    let page = page_from_query(&query, state.max_limit, is_sortable)?;
    let clusters = match state
        .database
        .clusters()
        .list(&visibility(&caller), &page)
        .await
    {
        Ok(clusters) => clusters,
        Err(DbError::MarkerNotFound) => {
            return Err(words.not_found(page.marker.as_deref().unwrap_or_default()))
        }
        Err(other) => return Err(other.into()),
    };
    let kind = if detail {
        ClusterViewKind::Full
    } else {
        ClusterViewKind::Summary
    };
    let templates = if detail && words.generation == ApiGeneration::Current {
        templates_of(&state, &clusters).await?
    } else {
        HashMap::new()
    };
    let items: Vec<ClusterView> = clusters
        .iter()
        .map(|cluster| {
            let labels = templates
                .get(&cluster.cluster_template_id)
                .map(|template| &template.labels);
            cluster_view(
                cluster,
                words.generation,
                kind,
                &base,
                labels,
                version >= ApiVersion::new(1, 13),
                false,
            )
        })
        .collect();
    let path = if detail {
        format!("{}/detail", words.collection)
    } else {
        words.collection.to_string()
    };
    let next = next_link(
        &base,
        &path,
        &page,
        clusters.len(),
        clusters.last().map(|cluster| cluster.uuid.as_str()),
    );
    Ok(Json(Collection {
        key: words.collection,
        items: &items,
        next,
    })
    .into_response())
}

async fn show(
    state: SharedState,
    caller: Caller,
    base: String,
    version: ApiVersion,
    ident: String,
    words: &Words,
) -> Result<Response, ApiError> {
    let (cluster, template) =
        find_cluster_with_template(&state, &caller, &ident, words.title).await?;
    enforce(
        &state,
        &words.rule("get"),
        &caller,
        &PolicyTarget::of(&cluster.project_id, &cluster.user_id),
    )?;
    Ok(Json(cluster_view(
        &cluster,
        words.generation,
        ClusterViewKind::Full,
        &base,
        template.as_ref().map(|template| &template.labels),
        version >= ApiVersion::new(1, 13),
        true,
    ))
    .into_response())
}

/// Checks what a cluster names against the infrastructure of its template's provider
/// (spec §3.3), for the caller.
async fn check_references(
    state: &SharedState,
    caller: &Caller,
    template: &ClusterTemplate,
    cluster: &Cluster,
) -> Result<(), ApiError> {
    let kind = state.infrastructure.provider_of(template)?;
    if let Some(asked) = cluster.labels.get(magnum_driver::PROVIDER_LABEL) {
        if asked != kind.as_str() {
            return Err(ApiError::bad_request(format!(
                "The label {} of a cluster cannot differ from its template's provider ({kind}).",
                magnum_driver::PROVIDER_LABEL
            )));
        }
    }
    let provider = state.infrastructure.lookups(kind)?;
    provider.check_docker_volume_size(cluster.docker_volume_size)?;
    let asking = caller.provider_context();
    for flavor in [&cluster.flavor_id, &cluster.master_flavor_id]
        .into_iter()
        .flatten()
    {
        provider
            .find_flavor(&asking, flavor)
            .await
            .map_err(|error| error.into_domain(LookupKind::Flavor, flavor))?;
    }
    if let Some(keypair) = &cluster.keypair {
        provider
            .find_keypair(&asking, keypair)
            .await
            .map_err(|error| error.into_domain(LookupKind::Keypair, keypair))?;
    }
    if let Some(network) = &cluster.fixed_network {
        provider
            .find_fixed_network(&asking, network)
            .await
            .map_err(|error| error.into_domain(LookupKind::FixedNetwork, network))?;
    }
    Ok(())
}

/// The template a cluster is built from; 400 when it is gone (which templates in use
/// cannot be, short of a database edit).
pub(crate) async fn template_of(
    state: &SharedState,
    cluster: &Cluster,
) -> Result<Arc<ClusterTemplate>, ApiError> {
    match state
        .database
        .cluster_templates()
        .get_by_uuid(&cluster.cluster_template_id)
        .await
    {
        Ok(template) => Ok(template),
        Err(DbError::NotFound) => Err(ApiError::bad_request(
            "The cluster's template no longer exists.",
        )),
        Err(other) => Err(other.into()),
    }
}

/// The driver that builds a cluster: the one recorded with it, else its template's.
pub(crate) fn driver_of(
    state: &SharedState,
    cluster: &Cluster,
    template: &ClusterTemplate,
) -> Result<Arc<dyn magnum_driver::ClusterDriver>, ApiError> {
    match &cluster.driver {
        Some(name) => Ok(state.infrastructure.driver(name)?),
        None => Ok(state.infrastructure.driver_for(template)?),
    }
}

/// A project's quotas: its quota rows, else `[quotas]`'s defaults.
pub(crate) async fn project_limits(
    state: &SharedState,
    project_id: &str,
) -> Result<ProjectLimits, ApiError> {
    let limit = |resource: Resource, default: i64| async move {
        match state
            .database
            .quotas()
            .get(project_id, resource.as_str())
            .await
        {
            Ok(quota) => Ok(quota.hard_limit),
            Err(DbError::NotFound) => Ok(default),
            Err(other) => Err(ApiError::from(other)),
        }
    };
    Ok(ProjectLimits {
        clusters: limit(Resource::Cluster, state.max_clusters_per_project).await?,
        nodes: limit(Resource::Node, state.max_nodes_per_project).await?,
    })
}

/// The template a create names, with upstream's status for an unknown one.
async fn creation_template(
    state: &SharedState,
    caller: &Caller,
    ident: &str,
    words: &Words,
    version: ApiVersion,
) -> Result<std::sync::Arc<ClusterTemplate>, ApiError> {
    match cluster_templates::find_template(state, caller, ident, words.templates()).await {
        Ok(template) => Ok(template),
        Err(error)
            if error.status == StatusCode::NOT_FOUND
                && (words.generation == ApiGeneration::Seed
                    || version < ApiVersion::new(1, 10)) =>
        {
            Err(ApiError::bad_request(error.message))
        }
        Err(error) => Err(error),
    }
}

fn check_storage(template: &ClusterTemplate, cluster: &Cluster) -> Result<(), ApiError> {
    if template.docker_storage_driver.as_deref() == Some("devicemapper")
        && cluster.docker_volume_size.unwrap_or(0) < 3
    {
        return Err(ApiError::bad_request(format!(
            "docker volume size {} GB is not valid, expecting minimum value 3GB for devicemapper storage driver.",
            cluster.docker_volume_size.map(|size| size.to_string()).unwrap_or_else(|| "None".to_string())
        )));
    }
    Ok(())
}

async fn create(
    state: SharedState,
    caller: Caller,
    base: String,
    version: ApiVersion,
    headers: HeaderMap,
    body: Bytes,
    words: &Words,
) -> Result<Response, ApiError> {
    let body = json_body(&headers, &body)?;
    let input = ClusterInput::decode(&body, words.generation, count_rules(version))?;
    let template =
        creation_template(&state, &caller, &input.cluster_template_id, words, version).await?;
    let driver = state.infrastructure.driver_for(&template)?;
    let owner = ClusterOwner {
        project_id: caller.context.project_id.clone(),
        user_id: caller.context.user_id.clone(),
        now: Utc::now().trunc_subsecs(0),
    };
    let mut cluster = Cluster::new(&input, &template, words.generation, owner)?;
    check_storage(&template, &cluster)?;
    driver.check_shape(
        cluster.master_count,
        cluster.node_count,
        cluster.master_lb_enabled,
    )?;
    enforce(
        &state,
        &words.rule("create"),
        &caller,
        &PolicyTarget::own(&caller.context),
    )?;
    let limits = project_limits(&state, &caller.context.project_id).await?;
    check_references(&state, &caller, &template, &cluster).await?;
    state
        .infrastructure
        .lookups(state.infrastructure.provider_of(&template)?)?
        .check_cluster(&template, &cluster.labels, cluster.master_lb_enabled)
        .await?;
    // etcd members that bootstrap through discovery get magnumd's own discovery service
    // unless the user named one.
    let discovery = match &cluster.discovery_url {
        None if driver.uses_etcd_discovery() => {
            let token =
                discovery::cluster_token(&cluster.project_id, &cluster.uuid, cluster.master_count)?;
            cluster.discovery_url = Some(discovery::url_of(&base, &token.token));
            Some(token)
        }
        _ => None,
    };
    let defaults = DefaultNodeGroups {
        template_revision: template.revision,
        image_id: template.image_id.clone(),
        master_flavor_id: cluster.master_flavor_id.clone(),
        worker_flavor_id: cluster.flavor_id.clone(),
        min_node_count: magnum_core::labels::label_count(&cluster.labels, "min_node_count")?
            .unwrap_or(0),
    };
    // A cloud lets the cluster act for its owner later (a trust to a trustee of its own),
    // made now while the owner's token is at hand and stored with the cluster.
    let provider = state
        .infrastructure
        .lookups(state.infrastructure.provider_of(&template)?)?;
    let grant = provider
        .grant_cluster(&caller.provider_context(), &cluster.uuid)
        .await
        .map_err(|error| error.into_domain(LookupKind::Trust, &cluster.uuid))?;
    let trust = grant.as_ref().map(|grant| TrustRecord {
        cluster_uuid: cluster.uuid.clone(),
        trustee_user_id: grant.trustee_user_id.clone(),
        trustee_username: grant.trustee_username.clone(),
        trust_id: grant.trust_id.clone(),
        created_at: Utc::now(),
    });
    let inserted = state
        .database
        .clusters()
        .insert_with_trust(
            &cluster,
            &defaults,
            Some(&limits),
            trust.as_ref(),
            discovery.as_ref(),
        )
        .await;
    if let (Err(_), Some(grant)) = (&inserted, &grant) {
        if let Err(error) = provider.revoke_cluster(&cluster.uuid, grant).await {
            tracing::warn!(uuid = %cluster.uuid, %error, "the trust of a cluster that was not stored could not be removed");
        }
    }
    let stored = match inserted {
        Ok(stored) => stored,
        Err(DbError::QuotaExceeded { resource, limit }) => {
            return Err(ApiError::quota_exceeded(resource, limit))
        }
        Err(DbError::Duplicate) => {
            return Err(ApiError::conflict(format!(
                "A {} with name {} already exists in this project.",
                words.noun,
                cluster.name.as_deref().unwrap_or("None")
            )))
        }
        Err(DbError::Stale) => {
            return Err(ApiError::conflict(format!(
                "The {} {} changed while the {} was being created; try again.",
                words.templates().noun,
                template.uuid,
                words.noun
            )))
        }
        Err(other) => return Err(other.into()),
    };
    tracing::info!(uuid = %stored.uuid, name = ?stored.name, template = %template.uuid, "cluster requested");
    match words.generation {
        ApiGeneration::Current => {
            Ok((StatusCode::ACCEPTED, Json(json!({"uuid": stored.uuid}))).into_response())
        }
        ApiGeneration::Seed => {
            let mut response = (
                StatusCode::CREATED,
                Json(cluster_view(
                    &stored,
                    ApiGeneration::Seed,
                    ClusterViewKind::Full,
                    &base,
                    None,
                    false,
                    false,
                )),
            )
                .into_response();
            if let Ok(location) = HeaderValue::from_str(&format!("{base}/v1/bays/{}", stored.uuid))
            {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        }
    }
}

/// Asks the driver whether `cluster` may have the sum of `worker_counts` workers (over all
/// its worker nodegroups); a sum beyond `i64` is refused before the driver sees it.
pub(crate) fn check_workers(
    driver: &dyn magnum_driver::ClusterDriver,
    cluster: &Cluster,
    worker_counts: &[i64],
) -> Result<(), ApiError> {
    let workers = limits::checked_sum(worker_counts.iter().copied()).ok_or_else(|| {
        ApiError::bad_request("The requested number of worker nodes is too large.")
    })?;
    driver.check_shape(cluster.master_count, workers, cluster.master_lb_enabled)?;
    Ok(())
}

/// Records a new operation on a cluster, refusing it when its status forbids it.
fn start_operation(
    cluster: &mut Cluster,
    operation: Operation,
    words: &Words,
) -> Result<(), ApiError> {
    let status = cluster.status;
    cluster
        .begin(operation)
        .map_err(|error| match words.generation {
            ApiGeneration::Seed if operation == Operation::Update => ApiError::bad_request(
                format!("Updating a bay when stack status is \"{status}\" is not supported."),
            ),
            _ => ApiError::from(error),
        })
}

/// Records a new operation on a cluster of the current API (nodegroup changes use it).
pub(crate) fn begin_operation(cluster: &mut Cluster, operation: Operation) -> Result<(), ApiError> {
    start_operation(cluster, operation, &CURRENT)
}

/// How many times a change is re-applied when the row changed in between.
const ATTEMPTS: usize = 20;

/// What a change function decided for the freshly read cluster.
enum Decided {
    /// Nothing to store.
    Unchanged,
    /// Store the changed cluster row.
    Cluster,
    /// Store the changed cluster row together with this nodegroup change.
    WithNodeGroup(Box<NodeGroupChange>),
}

/// Applies `change` to the current row and stores what it decided, retrying lost races.
async fn store_change<F>(
    state: &SharedState,
    caller: &Caller,
    ident: &str,
    words: &Words,
    mut change: F,
) -> Result<Cluster, ApiError>
where
    F: FnMut(&mut Cluster) -> Result<Decided, ApiError>,
{
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(2 * attempt as u64)).await;
        }
        let mut cluster = find_cluster(state, caller, ident, words.title).await?;
        let limits = project_limits(state, &cluster.project_id).await?;
        let group_change = match change(&mut cluster)? {
            Decided::Unchanged => return Ok(cluster),
            Decided::Cluster => None,
            Decided::WithNodeGroup(group_change) => Some(*group_change),
        };
        match state
            .database
            .clusters()
            .update_within(&cluster, group_change.as_ref(), Some(&limits))
            .await
        {
            Ok(stored) => return Ok(stored),
            Err(DbError::QuotaExceeded { resource, limit }) => {
                return Err(ApiError::quota_exceeded(resource, limit))
            }
            Err(DbError::Stale) => continue,
            Err(DbError::NotFound) => return Err(words.not_found(ident)),
            Err(DbError::Duplicate) => {
                let name = match &group_change {
                    Some(NodeGroupChange::Insert(group) | NodeGroupChange::Update(group)) => {
                        group.name.as_str()
                    }
                    None => "",
                };
                return Err(ApiError::conflict(format!(
                    "A node group with name {name} already exists in the cluster {}.",
                    cluster.name.as_deref().unwrap_or(&cluster.uuid)
                )));
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(ApiError::conflict(format!(
        "The {} {ident} is being changed by other requests; try again.",
        words.noun
    )))
}

/// Applies `change` to the current row and stores it when it returns true.
async fn change_cluster<F>(
    state: &SharedState,
    caller: &Caller,
    ident: &str,
    words: &Words,
    mut change: F,
) -> Result<Cluster, ApiError>
where
    F: FnMut(&mut Cluster) -> Result<bool, ApiError>,
{
    store_change(state, caller, ident, words, |cluster| {
        Ok(if change(cluster)? {
            Decided::Cluster
        } else {
            Decided::Unchanged
        })
    })
    .await
}

/// Applies `change` to the current row and stores it together with the nodegroup change
/// it returns, in one transaction; a nodegroup name the cluster already has is 409.
pub(crate) async fn change_cluster_with_group<F>(
    state: &SharedState,
    caller: &Caller,
    ident: &str,
    mut change: F,
) -> Result<Cluster, ApiError>
where
    F: FnMut(&mut Cluster) -> Result<NodeGroupChange, ApiError>,
{
    store_change(state, caller, ident, &CURRENT, |cluster| {
        change(cluster).map(|group_change| Decided::WithNodeGroup(Box::new(group_change)))
    })
    .await
}

async fn patch(
    state: SharedState,
    caller: Caller,
    base: String,
    version: ApiVersion,
    ident: String,
    body: Value,
    words: &Words,
) -> Result<Response, ApiError> {
    let operations = decode_patch(&body)?;
    let rules = count_rules(version);
    let current = find_cluster(&state, &caller, &ident, words.title).await?;
    let template = template_of(&state, &current).await?;
    let driver = driver_of(&state, &current, &template).ok();
    let stored = change_cluster(&state, &caller, &ident, words, |cluster| {
        let before = patch_document(cluster, words.generation);
        let after = apply_patch(
            &before,
            &operations,
            &ClusterPatchRules(words.generation),
            words.generation,
        )?;
        let change = decode_cluster_patch(&before, &after, &operations, words.generation, rules)?;
        let target = PolicyTarget::of(&cluster.project_id, &cluster.user_id);
        if change.health_status.is_some() || change.health_status_reason.is_some() {
            enforce(&state, "cluster:update_health_status", &caller, &target)?;
        }
        let mut changed = false;
        if let Some(count) = change
            .node_count
            .filter(|count| *count != cluster.node_count)
        {
            enforce(&state, &words.rule("update"), &caller, &target)?;
            if let Some(driver) = &driver {
                // The driver's limits are on all workers, other nodegroups' included.
                check_workers(
                    driver.as_ref(),
                    cluster,
                    &[count, cluster.extra_worker_count],
                )?;
            }
            start_operation(cluster, Operation::Update, words)?;
            cluster.node_count = count;
            changed = true;
        } else if change.node_count.is_some() {
            enforce(&state, &words.rule("update"), &caller, &target)?;
        }
        if let Some(health) = change.health_status {
            cluster.health_status = Some(health);
            changed = true;
        }
        if let Some(reason) = change.health_status_reason {
            cluster.health_status_reason = reason;
            changed = true;
        }
        Ok(changed)
    })
    .await?;
    match words.generation {
        ApiGeneration::Current => {
            Ok((StatusCode::ACCEPTED, Json(json!({"uuid": stored.uuid}))).into_response())
        }
        ApiGeneration::Seed => Ok(Json(cluster_view(
            &stored,
            ApiGeneration::Seed,
            ClusterViewKind::Full,
            &base,
            None,
            false,
            false,
        ))
        .into_response()),
    }
}

async fn delete(
    state: SharedState,
    caller: Caller,
    ident: String,
    words: &Words,
) -> Result<StatusCode, ApiError> {
    change_cluster(&state, &caller, &ident, words, |cluster| {
        enforce(
            &state,
            &words.rule("delete"),
            &caller,
            &PolicyTarget::of(&cluster.project_id, &cluster.user_id),
        )?;
        if cluster.operation == Some(Operation::Delete) {
            return Ok(false);
        }
        start_operation(cluster, Operation::Delete, words)?;
        Ok(true)
    })
    .await?;
    tracing::info!(cluster = %ident, "cluster deletion requested");
    Ok(StatusCode::NO_CONTENT)
}

async fn resize(
    State(state): State<SharedState>,
    caller: Caller,
    version: ApiVersion,
    Path(ident): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    version::require(version, ApiVersion::new(1, 7), "resize")?;
    let body = json_body(&headers, &body)?;
    let Value::Object(object) = &body else {
        return Err(ApiError::bad_request(
            "The resize body must be an object with node_count.",
        ));
    };
    if let Some(unknown) = object
        .keys()
        .find(|key| !["node_count", "nodes_to_remove", "nodegroup"].contains(&key.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "Unknown attribute for argument resize: {unknown}"
        )));
    }
    let count = decode_int(
        "node_count",
        object.get("node_count").unwrap_or(&Value::Null),
        Some(0),
        Some(limits::MAX_NODE_COUNT),
    )?
    .ok_or_else(|| DomainError::invalid_field("node_count", "None", "Mandatory field missing."))?;
    if count == 0 && version < ApiVersion::new(1, 10) {
        return Err(ApiError::bad_request(
            "node_count of zero is not supported in the provided microversion; use 1.10 or later.",
        ));
    }
    let nodes_to_remove: Vec<String> = match object.get("nodes_to_remove") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::bad_request("nodes_to_remove must be a list of node names")
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "nodes_to_remove must be a list of node names",
            ))
        }
    };
    let nodegroup = decode_string(
        "nodegroup",
        object.get("nodegroup").unwrap_or(&Value::Null),
        1,
        255,
    )?;
    let current = find_cluster(&state, &caller, &ident, "Cluster").await?;
    let mut target_group = None;
    // Without a nodegroup the default worker group is resized (its bounds apply too).
    let group = nodegroup
        .clone()
        .unwrap_or_else(|| DEFAULT_WORKER.to_string());
    {
        let found = state
            .database
            .nodegroups()
            .get(&current.uuid, &group)
            .await
            .map_err(|error| match error {
                DbError::NotFound => {
                    ApiError::not_found(format!("Nodegroup {group} could not be found."))
                }
                other => other.into(),
            })?;
        if found.role.is_master() {
            return Err(ApiError::bad_request(
                "Resizing a nodegroup with role master is not supported.",
            ));
        }
        crate::handlers::nodegroups::refuse_unless_allowed(&found, NodeGroupOperation::Resize)?;
        if count < found.min_node_count || found.max_node_count.is_some_and(|max| count > max) {
            return Err(ApiError::bad_request(format!(
                "Resizing {} outside the allowed range: min_node_count = {}, max_node_count = {}",
                found.name,
                found.min_node_count,
                found
                    .max_node_count
                    .map(|max| max.to_string())
                    .unwrap_or_else(|| "None".to_string())
            )));
        }
        if !found.is_default {
            target_group = Some(found);
        }
    }
    let template = template_of(&state, &current).await?;
    let driver = driver_of(&state, &current, &template)?;
    let authorize = |cluster: &Cluster| {
        enforce(
            &state,
            "cluster:resize",
            &caller,
            &PolicyTarget::of(&cluster.project_id, &cluster.user_id),
        )
    };
    let stored = match target_group {
        // A non-default nodegroup's size lives in its own row.
        Some(group) => {
            change_cluster_with_group(&state, &caller, &ident, |cluster| {
                authorize(cluster)?;
                let others = cluster.extra_worker_count - group.node_count;
                check_workers(
                    driver.as_ref(),
                    cluster,
                    &[cluster.node_count, others, count],
                )?;
                start_operation(cluster, Operation::Resize, &CURRENT)?;
                cluster.nodes_to_remove = nodes_to_remove.clone();
                let mut resized = group.clone();
                resized.begin(NodeGroupOperation::Resize)?;
                resized.node_count = count;
                Ok(NodeGroupChange::Update(resized))
            })
            .await?
        }
        None => {
            change_cluster(&state, &caller, &ident, &CURRENT, |cluster| {
                authorize(cluster)?;
                check_workers(
                    driver.as_ref(),
                    cluster,
                    &[count, cluster.extra_worker_count],
                )?;
                start_operation(cluster, Operation::Resize, &CURRENT)?;
                cluster.node_count = count;
                cluster.nodes_to_remove = nodes_to_remove.clone();
                Ok(true)
            })
            .await?
        }
    };
    tracing::info!(cluster = %stored.uuid, node_count = count, "resize requested");
    Ok((StatusCode::ACCEPTED, Json(json!({"uuid": stored.uuid}))).into_response())
}

async fn upgrade(
    State(state): State<SharedState>,
    caller: Caller,
    version: ApiVersion,
    Path(ident): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    version::require(version, ApiVersion::new(1, 7), "upgrade")?;
    if version < ApiVersion::new(1, 8) {
        return Err(ApiError::bad_request(
            "Upgrading a cluster is not supported in this microversion; use 1.8 or later.",
        ));
    }
    let body = json_body(&headers, &body)?;
    let Value::Object(object) = &body else {
        return Err(ApiError::bad_request(
            "The upgrade body must be an object with cluster_template.",
        ));
    };
    if let Some(unknown) = object
        .keys()
        .find(|key| !["cluster_template", "max_batch_size", "nodegroup"].contains(&key.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "Unknown attribute for argument upgrade: {unknown}"
        )));
    }
    let template_ident = decode_string(
        "cluster_template",
        object.get("cluster_template").unwrap_or(&Value::Null),
        1,
        255,
    )?
    .ok_or_else(|| {
        DomainError::invalid_field("cluster_template", "None", "Mandatory field missing.")
    })?;
    decode_int(
        "max_batch_size",
        object.get("max_batch_size").unwrap_or(&Value::Null),
        Some(1),
        Some(limits::MAX_BATCH_SIZE),
    )?;
    let nodegroup = decode_string(
        "nodegroup",
        object.get("nodegroup").unwrap_or(&Value::Null),
        1,
        255,
    )?;
    let cluster = find_cluster(&state, &caller, &ident, "Cluster").await?;
    enforce(
        &state,
        "cluster:upgrade",
        &caller,
        &PolicyTarget::of(&cluster.project_id, &cluster.user_id),
    )?;
    let target = cluster_templates::find_template(
        &state,
        &caller,
        &template_ident,
        &cluster_templates::CURRENT,
    )
    .await?;
    lifecycle::begin(Some(cluster.status), Operation::Upgrade)?;
    let current = template_of(&state, &cluster).await?;
    let driver = driver_of(&state, &cluster, &current)?;
    if let Some(group) = &nodegroup {
        if group != DEFAULT_WORKER && group != magnum_db::nodegroup::DEFAULT_MASTER {
            return Err(ApiError::bad_request(format!(
                "Upgrading nodegroup {group} is not supported: an upgrade moves the default nodegroups to the new template; other nodegroups keep their own image."
            )));
        }
    }
    if target.uuid == current.uuid {
        return Err(ApiError::bad_request(format!(
            "Cluster {} is already built from cluster template {}.",
            cluster.uuid, target.uuid
        )));
    }
    if target.driver.as_deref() != Some(driver.name()) {
        return Err(ApiError::bad_request(format!(
            "Cluster template {} is built by driver {}, not by this cluster's driver {}.",
            target.uuid,
            target.driver.as_deref().unwrap_or("None"),
            driver.name()
        )));
    }
    driver.check_upgrade(&current, &target)?;
    let stored = change_cluster(&state, &caller, &ident, &CURRENT, |cluster| {
        enforce(
            &state,
            "cluster:upgrade",
            &caller,
            &PolicyTarget::of(&cluster.project_id, &cluster.user_id),
        )?;
        if cluster.cluster_template_id != current.uuid {
            return Err(ApiError::conflict(
                "The cluster's template changed meanwhile; try again.",
            ));
        }
        start_operation(cluster, Operation::Upgrade, &CURRENT)?;
        cluster.rollback_template_id = Some(current.uuid.clone());
        cluster.cluster_template_id = target.uuid.clone();
        // The cluster takes the new template's versions (kube_tag and the other *_tag).
        magnum_core::labels::switch_version_labels(
            &mut cluster.labels,
            &current.labels,
            &target.labels,
        );
        Ok(true)
    })
    .await?;
    tracing::info!(cluster = %stored.uuid, from = %current.uuid, to = %target.uuid, "upgrade requested");
    Ok((StatusCode::ACCEPTED, Json(json!({"uuid": stored.uuid}))).into_response())
}

/// Refuses template changes while clusters use it (spec §3.1).
pub(crate) async fn template_in_use(
    state: &SharedState,
    template_uuid: &str,
) -> Result<bool, ApiError> {
    Ok(state
        .database
        .clusters()
        .count_using_template(template_uuid)
        .await?
        > 0)
}

/// Clusters under `/v1/clusters` and the 2016 `/v1/bays`.
struct Clusters;

impl GenerationResource for Clusters {
    type Words = Words;
    const CURRENT: &'static Words = &CURRENT;
    const SEED: &'static Words = &SEED;

    async fn list(
        request: RequestParts,
        query: HashMap<String, String>,
        words: &'static Words,
        detail: bool,
    ) -> Result<Response, ApiError> {
        let RequestParts {
            state,
            caller,
            base,
            version,
        } = request;
        list(state, caller, base, version, query, words, detail).await
    }

    async fn show(
        request: RequestParts,
        ident: String,
        words: &'static Words,
    ) -> Result<Response, ApiError> {
        let RequestParts {
            state,
            caller,
            base,
            version,
        } = request;
        show(state, caller, base, version, ident, words).await
    }

    async fn create(
        request: RequestParts,
        headers: HeaderMap,
        body: Bytes,
        words: &'static Words,
    ) -> Result<Response, ApiError> {
        let RequestParts {
            state,
            caller,
            base,
            version,
        } = request;
        create(state, caller, base, version, headers, body, words).await
    }

    async fn patch(
        request: RequestParts,
        ident: String,
        headers: HeaderMap,
        body: Bytes,
        words: &'static Words,
    ) -> Result<Response, ApiError> {
        let body = json_body(&headers, &body)?;
        let RequestParts {
            state,
            caller,
            base,
            version,
        } = request;
        patch(state, caller, base, version, ident, body, words).await
    }

    async fn delete(
        request: RequestParts,
        ident: String,
        words: &'static Words,
    ) -> Result<StatusCode, ApiError> {
        delete(request.state, request.caller, ident, words).await
    }
}
