//! `/v1/clusters/{cluster}/nodegroups` (microversion 1.9): every cluster has the default
//! `default-master` and `default-worker` nodegroups; more worker nodegroups can be added,
//! resized (the cluster's resize action with `nodegroup`), updated (limits, node labels and
//! taints) and removed. Each change records the cluster's operation (the cluster goes to
//! `UPDATE_IN_PROGRESS`) together with the nodegroup row, in one transaction; a conductor
//! then builds or removes the group's nodes and ends the group's status.

use crate::error::ApiError;
use crate::handlers::clusters::{
    begin_operation, change_cluster_with_group, check_workers, driver_of, find_cluster, template_of,
};
use crate::pagination::{next_link, page_from_query};
use crate::policy::enforce;
use crate::policy::PolicyTarget;
use crate::request::{json_body, BaseUrl, Caller};
use crate::version::{self, ApiVersion};
use crate::SharedState;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use chrono::{SubsecRound, Utc};
use magnum_core::cluster::Cluster;
use magnum_core::cluster_template::format_timestamp;
use magnum_core::fields::decode_int;
use magnum_core::lifecycle::{self, NodeGroupOperation, Operation};
use magnum_core::limits::{MAX_NODEGROUPS_PER_CLUSTER, MAX_NODE_COUNT};
use magnum_core::nodegroup::NodeGroup;
use magnum_core::nodegroup::{
    check_counts, check_node_labels, check_node_taints, effective_labels, NodeGroupInput, PATCHABLE,
};
use magnum_core::patch::{decode_patch, PatchOp, PatchOperation};
use magnum_db::nodegroup::NodeGroupChange;
use magnum_db::DbError;
use magnum_driver::provider::LookupKind;
use serde_json::{json, Value};
use std::collections::HashMap;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/clusters/{ident}/nodegroups", get(list).post(create))
        .route(
            "/v1/clusters/{ident}/nodegroups/{nodegroup}",
            get(show).patch(update).delete(delete),
        )
}

fn summary(group: &NodeGroup) -> Value {
    json!({
        "uuid": group.uuid, "name": group.name, "flavor_id": group.flavor_id,
        "node_count": group.node_count, "role": group.role.as_str(), "is_default": group.is_default,
        "image_id": group.image_id, "status": group.status.as_str(), "stack_id": group.stack_id,
    })
}

fn full(group: &NodeGroup, base: &str) -> Value {
    let mut object = summary(group);
    let extra = json!({
        "cluster_id": group.cluster_id, "project_id": group.project_id,
        "docker_volume_size": group.docker_volume_size, "labels": group.labels,
        "node_addresses": group.node_addresses, "min_node_count": group.min_node_count,
        "max_node_count": group.max_node_count, "status_reason": group.status_reason,
        "version": null, "merge_labels": null, "node_labels": group.node_labels,
        "node_taints": group.node_taints,
        "labels_overridden": {}, "labels_added": {}, "labels_skipped": {},
        "created_at": format_timestamp(&group.created_at),
        "updated_at": group.updated_at.as_ref().map(format_timestamp),
        "links": [
            {"href": format!("{base}/v1/clusters/{}/nodegroups/{}", group.cluster_id, group.uuid), "rel": "self"},
            {"href": format!("{base}/clusters/{}/nodegroups/{}", group.cluster_id, group.uuid), "rel": "bookmark"},
        ],
    });
    if let (Value::Object(target), Value::Object(source)) = (&mut object, extra) {
        target.extend(source);
    }
    object
}

async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    version: ApiVersion,
    Path(ident): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    version::require(version, ApiVersion::new(1, 9), "nodegroups")?;
    let cluster = find_cluster(&state, &caller, &ident, "Cluster").await?;
    enforce(
        &state,
        "nodegroup:get_all",
        &caller,
        &PolicyTarget::of(&cluster.project_id, &cluster.user_id),
    )?;
    let page = page_from_query(&query, state.max_limit, |column| column == "id")?;
    let role = query.get("role").map(String::as_str);
    let groups = match state
        .database
        .nodegroups()
        .list(&cluster.uuid, role, &page)
        .await
    {
        Ok(groups) => groups,
        Err(DbError::MarkerNotFound) => {
            return Err(ApiError::not_found(format!(
                "Nodegroup {} could not be found.",
                page.marker.as_deref().unwrap_or_default()
            )))
        }
        Err(other) => return Err(other.into()),
    };
    let mut body = json!({"nodegroups": groups.iter().map(summary).collect::<Vec<_>>()});
    let path = format!("clusters/{}/nodegroups", cluster.uuid);
    if let Some(next) = next_link(
        &base,
        &path,
        &page,
        groups.len(),
        groups.last().map(|group| group.uuid.as_str()),
    ) {
        body["next"] = json!(next);
    }
    Ok(Json(body).into_response())
}

async fn show(
    State(state): State<SharedState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    version: ApiVersion,
    Path((ident, nodegroup)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    version::require(version, ApiVersion::new(1, 9), "nodegroups")?;
    let cluster = find_cluster(&state, &caller, &ident, "Cluster").await?;
    enforce(
        &state,
        "nodegroup:get",
        &caller,
        &PolicyTarget::of(&cluster.project_id, &cluster.user_id),
    )?;
    let group = find_group(&state, &cluster.uuid, &nodegroup).await?;
    Ok(Json(full(&group, &base)).into_response())
}

/// The nodegroup of a cluster, or the spec's 404.
async fn find_group(
    state: &SharedState,
    cluster_uuid: &str,
    ident: &str,
) -> Result<NodeGroup, ApiError> {
    match state.database.nodegroups().get(cluster_uuid, ident).await {
        Ok(group) => Ok(group),
        Err(DbError::NotFound) => Err(ApiError::not_found(format!(
            "Nodegroup {ident} could not be found."
        ))),
        Err(other) => Err(other.into()),
    }
}

/// Refuses (400) a change of a nodegroup whose status does not allow `operation` (one
/// being deleted), before anything else is checked.
pub(crate) fn refuse_unless_allowed(
    group: &NodeGroup,
    operation: NodeGroupOperation,
) -> Result<(), ApiError> {
    group.clone().begin(operation)?;
    Ok(())
}

/// Starts the cluster operation a nodegroup change needs, refusing it (400) when the
/// cluster's status does not allow changing its nodes.
fn begin_group_change(cluster: &mut Cluster) -> Result<(), ApiError> {
    let status = cluster.status;
    begin_operation(cluster, Operation::Resize).map_err(|_| {
        ApiError::bad_request(format!(
            "Changing the nodegroups of a cluster when status is \"{status}\" is not supported."
        ))
    })
}

async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    version: ApiVersion,
    Path(ident): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    version::require(version, ApiVersion::new(1, 9), "nodegroups")?;
    let body = json_body(&headers, &body)?;
    let input = NodeGroupInput::decode(&body, version >= ApiVersion::new(1, 14))?;
    let current = find_cluster(&state, &caller, &ident, "Cluster").await?;
    enforce(
        &state,
        "nodegroup:create",
        &caller,
        &PolicyTarget::of(&current.project_id, &current.user_id),
    )?;
    let existing = state.database.nodegroups().all(&current.uuid).await?.len();
    if i64::try_from(existing).unwrap_or(i64::MAX) >= MAX_NODEGROUPS_PER_CLUSTER {
        return Err(ApiError::bad_request(format!(
            "A cluster has at most {MAX_NODEGROUPS_PER_CLUSTER} nodegroups."
        )));
    }
    if current.api_address.is_none() {
        return Err(ApiError::conflict(
            "Cluster API address is not available yet",
        ));
    }
    let template = template_of(&state, &current).await?;
    let driver = driver_of(&state, &current, &template)?;
    let provider = state
        .infrastructure
        .lookups(state.infrastructure.provider_of(&template)?)?;
    provider.check_docker_volume_size(input.docker_volume_size)?;
    let asking = caller.provider_context();
    if let Some(flavor) = &input.flavor_id {
        provider
            .find_flavor(&asking, flavor)
            .await
            .map_err(|error| error.into_domain(LookupKind::Flavor, flavor))?;
    }
    if let Some(image) = &input.image_id {
        provider
            .find_image(&asking, image)
            .await
            .map_err(|error| error.into_domain(LookupKind::Image, image))?;
    }
    let group_uuid = uuid::Uuid::new_v4().to_string();
    let stored = change_cluster_with_group(&state, &caller, &ident, |cluster| {
        check_workers(
            driver.as_ref(),
            cluster,
            &[
                cluster.node_count,
                cluster.extra_worker_count,
                input.node_count,
            ],
        )?;
        begin_group_change(cluster)?;
        Ok(NodeGroupChange::Insert(NodeGroup {
            id: 0,
            uuid: group_uuid.clone(),
            name: input.name.clone(),
            cluster_id: cluster.uuid.clone(),
            project_id: cluster.project_id.clone(),
            docker_volume_size: input.docker_volume_size.or(cluster.docker_volume_size),
            labels: effective_labels(&cluster.labels, input.labels.as_ref(), input.merge_labels),
            flavor_id: input.flavor_id.clone().or(cluster.flavor_id.clone()),
            image_id: Some(
                input
                    .image_id
                    .clone()
                    .unwrap_or_else(|| template.image_id.clone()),
            ),
            node_addresses: Vec::new(),
            node_count: input.node_count,
            role: input.role.clone(),
            max_node_count: input.max_node_count,
            min_node_count: input.min_node_count,
            is_default: false,
            stack_id: cluster.stack_id.clone(),
            status: lifecycle::begin_nodegroup(None, NodeGroupOperation::Create)?,
            status_reason: None,
            node_labels: input.node_labels.clone(),
            node_taints: input.node_taints.clone(),
            created_at: Utc::now().trunc_subsecs(0),
            updated_at: None,
        }))
    })
    .await?;
    let group = find_group(&state, &stored.uuid, &group_uuid).await?;
    tracing::info!(cluster = %stored.uuid, nodegroup = %group.name, node_count = group.node_count, "nodegroup creation requested");
    Ok((StatusCode::ACCEPTED, Json(full(&group, &base))).into_response())
}

/// A nodegroup with a JSON patch applied to its patchable attributes.
fn patched(
    group: &NodeGroup,
    operations: &[PatchOperation],
    version: ApiVersion,
) -> Result<NodeGroup, ApiError> {
    let mut changed = group.clone();
    for operation in operations {
        let attribute = operation.segments.first().map(String::as_str).unwrap_or("");
        let node_label_attribute = ["node_labels", "node_taints"].contains(&attribute);
        if !PATCHABLE.contains(&attribute)
            || operation.segments.len() != 1
            || (node_label_attribute && version < ApiVersion::new(1, 14))
        {
            return Err(ApiError::bad_request(format!(
                "'{}' is an internal attribute and can not be updated",
                operation.path
            )));
        }
        let value = match operation.op {
            PatchOp::Remove => Value::Null,
            PatchOp::Add | PatchOp::Replace => operation.value.clone().unwrap_or(Value::Null),
        };
        match attribute {
            "min_node_count" => {
                changed.min_node_count =
                    decode_int("min_node_count", &value, Some(0), Some(MAX_NODE_COUNT))?
                        .unwrap_or(0);
            }
            "max_node_count" => {
                changed.max_node_count =
                    decode_int("max_node_count", &value, Some(0), Some(MAX_NODE_COUNT))?;
            }
            "node_labels" => changed.node_labels = check_node_labels(&group.name, &value)?,
            _ => changed.node_taints = check_node_taints(&group.name, &value, &group.role)?,
        }
    }
    check_counts(
        &changed.name,
        changed.node_count,
        changed.min_node_count,
        changed.max_node_count,
    )?;
    Ok(changed)
}

async fn update(
    State(state): State<SharedState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    version: ApiVersion,
    Path((ident, nodegroup)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    version::require(version, ApiVersion::new(1, 9), "nodegroups")?;
    let body = json_body(&headers, &body)?;
    let operations = decode_patch(&body)?;
    let current = find_cluster(&state, &caller, &ident, "Cluster").await?;
    enforce(
        &state,
        "nodegroup:update",
        &caller,
        &PolicyTarget::of(&current.project_id, &current.user_id),
    )?;
    let group = find_group(&state, &current.uuid, &nodegroup).await?;
    refuse_unless_allowed(&group, NodeGroupOperation::Update)?;
    let mut changed = patched(&group, &operations, version)?;
    if changed == group {
        return Ok((StatusCode::ACCEPTED, Json(full(&group, &base))).into_response());
    }
    changed.begin(NodeGroupOperation::Update)?;
    let stored = change_cluster_with_group(&state, &caller, &ident, |cluster| {
        begin_group_change(cluster)?;
        Ok(NodeGroupChange::Update(changed.clone()))
    })
    .await?;
    let group = find_group(&state, &stored.uuid, &group.uuid).await?;
    Ok((StatusCode::ACCEPTED, Json(full(&group, &base))).into_response())
}

async fn delete(
    State(state): State<SharedState>,
    caller: Caller,
    version: ApiVersion,
    Path((ident, nodegroup)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    version::require(version, ApiVersion::new(1, 9), "nodegroups")?;
    let current = find_cluster(&state, &caller, &ident, "Cluster").await?;
    enforce(
        &state,
        "nodegroup:delete",
        &caller,
        &PolicyTarget::of(&current.project_id, &current.user_id),
    )?;
    let group = find_group(&state, &current.uuid, &nodegroup).await?;
    if group.is_default {
        return Err(ApiError::bad_request(format!(
            "Deleting a default nodegroup is not supported ({} is one).",
            group.name
        )));
    }
    if group.is_being_deleted() {
        return Ok(StatusCode::NO_CONTENT);
    }
    let mut deleting = group.clone();
    deleting.begin(NodeGroupOperation::Delete)?;
    change_cluster_with_group(&state, &caller, &ident, |cluster| {
        begin_group_change(cluster)?;
        Ok(NodeGroupChange::Update(deleting.clone()))
    })
    .await?;
    tracing::info!(cluster = %current.uuid, nodegroup = %group.name, "nodegroup deletion requested");
    Ok(StatusCode::NO_CONTENT)
}
