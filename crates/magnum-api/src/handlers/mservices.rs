//! `GET /v1/mservices`: the conductors and whether their heartbeats are recent.

use crate::error::ApiError;
use crate::policy::{enforce, PolicyTarget};
use crate::request::Caller;
use crate::SharedState;
use axum::extract::State;
use axum::Json;
use chrono::Utc;
use magnum_core::cluster_template::format_timestamp;
use serde_json::{json, Value};

pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    enforce(
        &state,
        "magnum-service:get_all",
        &caller,
        &PolicyTarget::own(&caller.context),
    )?;
    let now = Utc::now();
    let services: Vec<Value> = state
        .database
        .services()
        .list()
        .await?
        .into_iter()
        .map(|service| {
            let state_text = if service.is_up(now, state.service_down_time_seconds) {
                "up"
            } else {
                "down"
            };
            json!({
                "id": service.id,
                "host": service.host,
                "binary": service.binary,
                "state": state_text,
                "report_count": service.report_count,
                "disabled": service.disabled,
                "disabled_reason": service.disabled_reason,
                "created_at": format_timestamp(&service.created_at),
                "updated_at": service.updated_at.as_ref().map(format_timestamp),
            })
        })
        .collect();
    Ok(Json(json!({ "mservices": services })))
}
