//! `/v1/clusters/{cluster}/nodegroups` (microversion 1.9): every cluster has the default
//! `default-master` and `default-worker` nodegroups; they can be listed and shown. Adding,
//! changing or removing nodegroups is not implemented and says so.

use crate::error::ApiError;
use crate::handlers::cluster_templates::enforce;
use crate::handlers::clusters::find_cluster;
use crate::pagination::{next_link, page_from_query};
use crate::policy::PolicyTarget;
use crate::request::{BaseUrl, Caller};
use crate::version::{self, ApiVersion};
use crate::SharedState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use magnum_core::cluster_template::format_timestamp;
use magnum_db::cluster::NodeGroup;
use magnum_db::DbError;
use serde_json::{json, Value};
use std::collections::HashMap;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route(
            "/v1/clusters/{ident}/nodegroups",
            get(list).post(not_implemented),
        )
        .route(
            "/v1/clusters/{ident}/nodegroups/{nodegroup}",
            get(show).patch(not_implemented).delete(not_implemented),
        )
}

async fn not_implemented() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "Adding, changing or removing nodegroups is not implemented by this service yet; resize the default-worker nodegroup instead.",
    )
}

fn summary(group: &NodeGroup) -> Value {
    json!({
        "uuid": group.uuid, "name": group.name, "flavor_id": group.flavor_id,
        "node_count": group.node_count, "role": group.role, "is_default": group.is_default,
        "image_id": group.image_id, "status": group.status, "stack_id": group.stack_id,
    })
}

fn full(group: &NodeGroup, base: &str) -> Value {
    let mut object = summary(group);
    let extra = json!({
        "cluster_id": group.cluster_id, "project_id": group.project_id,
        "docker_volume_size": group.docker_volume_size, "labels": group.labels,
        "node_addresses": group.node_addresses, "min_node_count": group.min_node_count,
        "max_node_count": group.max_node_count, "status_reason": group.status_reason,
        "version": null, "merge_labels": null, "node_labels": null, "node_taints": null,
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
        .clusters()
        .nodegroups(&cluster.uuid, role, &page)
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
    match state
        .database
        .clusters()
        .nodegroup(&cluster.uuid, &nodegroup)
        .await
    {
        Ok(group) => Ok(Json(full(&group, &base)).into_response()),
        Err(DbError::NotFound) => Err(ApiError::not_found(format!(
            "Nodegroup {nodegroup} could not be found."
        ))),
        Err(other) => Err(other.into()),
    }
}
