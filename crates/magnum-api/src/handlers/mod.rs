//! Request handlers, one module per resource.

pub mod certificates;
pub mod cluster_templates;
pub mod clusters;
pub mod discovery;
mod generation;
pub mod mservices;
pub mod nodegroups;
pub mod quotas;
pub mod root;
pub mod unimplemented;

use crate::error::ApiError;
use axum::http::StatusCode;

/// Unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::framework(StatusCode::NOT_FOUND, "The resource could not be found.")
}
