//! `/v1/quotas` (administrators manage per-project limits; only the `Cluster` resource
//! exists) and `/v1/stats` (cluster and node counts).

use crate::error::ApiError;
use crate::policy::enforce;
use crate::policy::PolicyTarget;
use crate::request::{json_body, Caller};
use crate::SharedState;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use chrono::{SubsecRound, Utc};
use magnum_core::cluster_template::format_timestamp;
use magnum_core::fields::{decode_bool, decode_int, decode_string};
use magnum_db::quota::QuotaRecord;
use magnum_db::DbError;
use serde_json::{json, Value};
use std::collections::HashMap;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/quotas", get(list).post(create))
        .route(
            "/v1/quotas/{project_id}/{resource}",
            get(show).patch(update).delete(remove),
        )
        .route("/v1/stats", get(stats))
}

fn view(quota: &QuotaRecord) -> Value {
    json!({
        "id": quota.id, "project_id": quota.project_id, "resource": quota.resource,
        "hard_limit": quota.hard_limit, "created_at": format_timestamp(&quota.created_at),
        "updated_at": quota.updated_at.as_ref().map(format_timestamp),
    })
}

/// Quotas bound clusters (upstream's one resource) and nodes (masters and workers over all
/// of a project's clusters).
fn check_resource(resource: &str) -> Result<(), ApiError> {
    if resource == "Cluster" || resource == "Node" {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute resource. Value: '{resource}'. Value should be one of: Cluster, Node"
        )))
    }
}

/// The limit of a resource when no quota row sets one.
fn default_limit(state: &SharedState, resource: &str) -> i64 {
    match resource {
        "Node" => state.max_nodes_per_project,
        _ => state.max_clusters_per_project,
    }
}

fn not_found(project_id: &str, resource: &str) -> ApiError {
    ApiError::not_found(format!(
        "Quota could not be found: project {project_id}, resource {resource}."
    ))
}

async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    enforce(
        &state,
        "quota:get_all",
        &caller,
        &PolicyTarget::own(&caller.context),
    )?;
    let all = match query.get("all_tenants") {
        Some(text) => decode_bool("all_tenants", &Value::String(text.clone()))?.unwrap_or(false),
        None => false,
    };
    let limit = match query.get("limit") {
        Some(text) => match text.parse::<usize>() {
            Ok(0) | Err(_) => return Err(ApiError::bad_request("Limit must be positive")),
            Ok(limit) => limit.min(state.max_limit),
        },
        None => state.max_limit,
    };
    let marker = match query.get("marker") {
        Some(text) => Some(text.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!(
                "Invalid quota marker {text}; expecting the id of a quota."
            ))
        })?),
        None => None,
    };
    let descending = match query.get("sort_dir").map(String::as_str) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid sort direction: {other}. Acceptable values are 'asc' or 'desc'"
            )))
        }
    };
    let project = (!(all && caller.is_admin)).then_some(caller.context.project_id.as_str());
    let quotas = state
        .database
        .quotas()
        .list(project, marker, limit, descending)
        .await?;
    let mut body = json!({"quotas": quotas.iter().map(view).collect::<Vec<_>>()});
    if quotas.len() == limit {
        if let Some(last) = quotas.last() {
            body["next"] = json!(format!("/v1/quotas?limit={limit}&marker={}", last.id));
        }
    }
    Ok(Json(body).into_response())
}

async fn show(
    State(state): State<SharedState>,
    caller: Caller,
    Path((project_id, resource)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    if !caller.is_admin && project_id != caller.context.project_id {
        return Err(ApiError::policy("quota:get"));
    }
    enforce(
        &state,
        "quota:get",
        &caller,
        &PolicyTarget {
            project_id: Some(project_id.clone()),
            user_id: None,
        },
    )?;
    check_resource(&resource)?;
    match state.database.quotas().get(&project_id, &resource).await {
        Ok(quota) => Ok(Json(view(&quota)).into_response()),
        Err(DbError::NotFound) => Ok(Json(json!({
            "project_id": project_id, "resource": resource,
            "hard_limit": default_limit(&state, &resource),
            "created_at": null, "updated_at": null,
        }))
        .into_response()),
        Err(other) => Err(other.into()),
    }
}

/// The project, resource and limit of a quota body.
fn quota_body(
    body: &Value,
    require_project: bool,
) -> Result<(Option<String>, String, i64), ApiError> {
    let Value::Object(object) = body else {
        return Err(ApiError::bad_request(
            "The request body must be an object with project_id, resource and hard_limit.",
        ));
    };
    // `id` belongs to upstream's quota type, and Horizon's panel sends back the id it read;
    // it is checked and then ignored (the row is the one the path names).
    if let Some(unknown) = object
        .keys()
        .find(|key| !["id", "project_id", "resource", "hard_limit"].contains(&key.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "Unknown attribute for argument quota: {unknown}"
        )));
    }
    decode_int(
        "id",
        object.get("id").unwrap_or(&Value::Null),
        Some(1),
        None,
    )?;
    let project_id = decode_string(
        "project_id",
        object.get("project_id").unwrap_or(&Value::Null),
        1,
        255,
    )?;
    if require_project && project_id.is_none() {
        return Err(ApiError::bad_request("Must provide a valid project ID."));
    }
    let resource = decode_string(
        "resource",
        object.get("resource").unwrap_or(&Value::Null),
        1,
        255,
    )?
    .unwrap_or_else(|| "Cluster".to_string());
    check_resource(&resource)?;
    let hard_limit = decode_int(
        "hard_limit",
        object.get("hard_limit").unwrap_or(&Value::Null),
        Some(0),
        Some(magnum_core::limits::MAX_QUOTA_HARD_LIMIT),
    )?
    .unwrap_or(1);
    Ok((project_id, resource, hard_limit))
}

async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&headers, &body)?;
    let (project_id, resource, hard_limit) = quota_body(&body, true)?;
    let project_id = project_id.unwrap_or_default();
    enforce(
        &state,
        "quota:create",
        &caller,
        &PolicyTarget::own(&caller.context),
    )?;
    if state.checks_projects {
        let identity = state.database.identity();
        let known = match identity.project_by_id(&project_id).await {
            Ok(_) => true,
            Err(DbError::NotFound) => {
                match identity.project_by_name("default", &project_id).await {
                    Ok(_) => true,
                    Err(DbError::NotFound) => false,
                    Err(other) => return Err(other.into()),
                }
            }
            Err(other) => return Err(other.into()),
        };
        if !known {
            return Err(ApiError::not_found(format!(
                "The project_id {project_id} could not be found."
            )));
        }
    }
    match state
        .database
        .quotas()
        .create(
            &project_id,
            &resource,
            hard_limit,
            Utc::now().trunc_subsecs(0),
        )
        .await
    {
        Ok(quota) => Ok((StatusCode::CREATED, Json(view(&quota))).into_response()),
        Err(DbError::Duplicate) => Err(ApiError::conflict(format!(
            "Quota for project {project_id} already exists for resource {resource}."
        ))),
        Err(other) => Err(other.into()),
    }
}

async fn update(
    State(state): State<SharedState>,
    caller: Caller,
    Path((project_id, resource)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&headers, &body)?;
    let (_, _, hard_limit) = quota_body(&body, false)?;
    enforce(
        &state,
        "quota:update",
        &caller,
        &PolicyTarget::own(&caller.context),
    )?;
    match state
        .database
        .quotas()
        .update(
            &project_id,
            &resource,
            hard_limit,
            Utc::now().trunc_subsecs(0),
        )
        .await
    {
        Ok(quota) => Ok((StatusCode::ACCEPTED, Json(view(&quota))).into_response()),
        Err(DbError::NotFound) => Err(not_found(&project_id, &resource)),
        Err(other) => Err(other.into()),
    }
}

async fn remove(
    State(state): State<SharedState>,
    caller: Caller,
    Path((project_id, resource)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    enforce(
        &state,
        "quota:delete",
        &caller,
        &PolicyTarget::own(&caller.context),
    )?;
    match state.database.quotas().delete(&project_id, &resource).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(DbError::NotFound) => Err(not_found(&project_id, &resource)),
        Err(other) => Err(other.into()),
    }
}

async fn stats(
    State(state): State<SharedState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if let Some(kind) = query.get("type") {
        if !kind.eq_ignore_ascii_case("cluster") {
            return Err(ApiError::bad_request(
                "Invalid stats type. Allowed values are 'cluster'",
            ));
        }
    }
    let requested = query.get("project_id").cloned();
    let project = match (&requested, caller.is_admin) {
        (Some(project), false) if project != &caller.context.project_id => {
            return Err(ApiError::policy("stats:get_all"))
        }
        (None, false) => Some(caller.context.project_id.clone()),
        (requested, _) => requested.clone(),
    };
    enforce(
        &state,
        "stats:get_all",
        &caller,
        &PolicyTarget {
            project_id: Some(
                project
                    .clone()
                    .unwrap_or_else(|| caller.context.project_id.clone()),
            ),
            user_id: None,
        },
    )?;
    let (clusters, nodes) = state.database.clusters().stats(project.as_deref()).await?;
    Ok(Json(json!({"clusters": clusters, "nodes": nodes})).into_response())
}
