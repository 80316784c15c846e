//! The one place where failures become HTTP answers.
//!
//! Handlers return [`ApiError`]. Every error response leaves the handler with its message in
//! the response extensions; the [`error_body_layer`] middleware then writes the body in the
//! format of the API generation the request used (spec §5.1): the current
//! `{"errors": [...]}` list, or the 2016 `{"error_message": "<JSON string>"}`. Errors the
//! framework produces itself (404 for unknown paths, 405) get the same treatment.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use magnum_core::{ApiGeneration, DomainError, DomainErrorKind};
use magnum_db::DbError;
use serde_json::json;

/// Who raised an error: the API's own request handling (`client`/`server` codes) or
/// something around it such as authentication or routing (empty code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorOrigin {
    Api,
    Framework,
}

/// An error answer: status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub origin: ErrorOrigin,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            origin: ErrorOrigin::Api,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// A policy refusal, worded as upstream words it.
    pub fn policy(rule: &str) -> Self {
        Self::forbidden(format!("Policy doesn't allow {rule} to be performed."))
    }

    /// An unexpected failure; the details go to the log, not to the caller.
    pub fn internal(context: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("An unexpected error occurred while {context}."),
        )
    }

    /// A quota refusal, worded as upstream words it.
    pub fn quota_exceeded(resource: magnum_db::Resource, limit: i64) -> Self {
        Self::forbidden(match resource {
            magnum_db::Resource::Cluster => format!(
                "Resource limit exceeded: You have reached the maximum clusters per project, {limit}. You may delete a cluster to make room for a new one."
            ),
            magnum_db::Resource::Node => format!(
                "Resource limit exceeded: You have reached the maximum nodes per project, {limit}. You may delete a cluster or remove nodes to make room."
            ),
        })
    }

    pub fn framework(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            origin: ErrorOrigin::Framework,
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        let status = match error.kind {
            DomainErrorKind::Invalid => StatusCode::BAD_REQUEST,
            DomainErrorKind::NotFound => StatusCode::NOT_FOUND,
            DomainErrorKind::Conflict => StatusCode::CONFLICT,
            DomainErrorKind::Forbidden => StatusCode::FORBIDDEN,
            DomainErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            DomainErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, error.message)
    }
}

/// The one mapping from database failures to answers. Handlers match the outcomes that mean
/// something particular for their resource (a named 404, a duplicate name) first; whatever
/// reaches this conversion gets the generic answer for its kind:
/// - the database is unreachable, overloaded or the statement lost a lock race → 503, so the
///   caller retries rather than reporting a bug;
/// - a concurrent update won → 409;
/// - a quota would be exceeded → 403, as upstream answers;
/// - a row is missing → 404;
/// - anything else (corrupt rows, failed migrations, unexpected SQL errors) → 500 with the
///   details only in the log.
impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        if error.is_unavailable() {
            tracing::warn!(%error, "the database is unavailable");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is unavailable; try again later.",
            );
        }
        match error {
            DbError::Stale => ApiError::conflict(
                "The resource was changed by another request; reload it and try again.",
            ),
            DbError::QuotaExceeded { resource, limit } => ApiError::quota_exceeded(resource, limit),
            DbError::NotFound => ApiError::not_found("The resource could not be found."),
            DbError::Duplicate => ApiError::conflict("The resource already exists."),
            DbError::InUse => ApiError::bad_request("The resource is in use."),
            DbError::Ambiguous => {
                ApiError::conflict("Multiple resources match that name; use the UUID instead.")
            }
            DbError::MarkerNotFound => ApiError::bad_request("The marker could not be found."),
            other => ApiError::internal("accessing the database", &other),
        }
    }
}

/// The answer to a request whose handler panicked: a 500 in the spec's error format (the
/// panic itself is logged; the process lives on).
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    ApiError::internal("handling the request", &what).into_response()
}

/// The message of an error answer, carried in the response extensions to [`error_body_layer`].
#[derive(Debug, Clone)]
struct ErrorMessage(ApiError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = self.status;
        response.extensions_mut().insert(ErrorMessage(self));
        response
    }
}

/// The body of an error in the current API's format.
fn current_body(error: &ApiError) -> serde_json::Value {
    let code = match (error.origin, error.status.is_server_error()) {
        (ErrorOrigin::Framework, _) => "",
        (ErrorOrigin::Api, true) => "server",
        (ErrorOrigin::Api, false) => "client",
    };
    let title = error
        .message
        .split_once('.')
        .map(|(before, _)| before)
        .unwrap_or(&error.message);
    json!({"errors": [{
        "request_id": "",
        "code": code,
        "status": error.status.as_u16(),
        "title": title,
        "detail": error.message,
        "links": [],
    }]})
}

/// The body of an error in the 2016 API's format: a JSON document inside a string.
fn seed_body(error: &ApiError) -> serde_json::Value {
    let fault = json!({
        "faultcode": if error.status.is_server_error() { "Server" } else { "Client" },
        "faultstring": error.message,
        "debuginfo": null,
    });
    json!({"error_message": fault.to_string()})
}

/// Which API generation a path belongs to, for the error format.
pub fn generation_of_path(path: &str) -> ApiGeneration {
    let rest = path.strip_prefix("/v1").unwrap_or(path);
    if rest.starts_with("/bays") || rest.starts_with("/baymodels") {
        ApiGeneration::Seed
    } else {
        ApiGeneration::Current
    }
}

/// A message for an error status that arrived without one (routing 404, 405, …).
fn default_message(status: StatusCode) -> String {
    match status {
        StatusCode::NOT_FOUND => "The resource could not be found.".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => {
            "The method specified is not allowed for this resource.".to_string()
        }
        other => other
            .canonical_reason()
            .map(|reason| format!("{reason}."))
            .unwrap_or_else(|| "Error.".to_string()),
    }
}

/// Writes the error body of every non-2xx/3xx answer in the request's API generation.
pub async fn error_body_layer(request: Request, next: Next) -> Response {
    let generation = generation_of_path(request.uri().path());
    let mut response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response
            .extensions()
            .get::<crate::version::FinalErrorBody>()
            .is_some()
    {
        return response;
    }
    let error = match response.extensions_mut().remove::<ErrorMessage>() {
        Some(ErrorMessage(error)) => error,
        None => ApiError::framework(status, default_message(status)),
    };
    let body = match generation {
        ApiGeneration::Current => current_body(&error),
        ApiGeneration::Seed => seed_body(&error),
    };
    let bytes = body.to_string();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.remove(header::CONTENT_LENGTH);
    *response.body_mut() = Body::from(bytes);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_format_titles_stop_at_the_first_period() {
        let error = ApiError::bad_request("Unable to find flavor m1.nope.");
        let body = current_body(&error);
        assert_eq!(body["errors"][0]["title"], "Unable to find flavor m1");
        assert_eq!(
            body["errors"][0]["detail"],
            "Unable to find flavor m1.nope."
        );
        assert_eq!(body["errors"][0]["code"], "client");
        assert_eq!(body["errors"][0]["status"], 400);
        let framework = current_body(&ApiError::framework(StatusCode::UNAUTHORIZED, "x"));
        assert_eq!(framework["errors"][0]["code"], "");
        let server = current_body(&ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "boom"));
        assert_eq!(server["errors"][0]["code"], "server");
    }

    #[test]
    fn seed_format_nests_a_json_fault() {
        let body = seed_body(&ApiError::not_found("Baymodel x could not be found."));
        let inner: serde_json::Value =
            serde_json::from_str(body["error_message"].as_str().unwrap()).unwrap();
        assert_eq!(inner["faultcode"], "Client");
        assert_eq!(inner["faultstring"], "Baymodel x could not be found.");
        assert!(inner["debuginfo"].is_null());
    }

    #[test]
    fn database_outcomes_map_to_their_status() {
        let status = |error: DbError| ApiError::from(error).status;
        assert_eq!(
            status(DbError::Backend(sqlx::Error::PoolTimedOut)),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(DbError::Backend(sqlx::Error::Io(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused
            )))),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status(DbError::Stale), StatusCode::CONFLICT);
        assert_eq!(status(DbError::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(status(DbError::Duplicate), StatusCode::CONFLICT);
        assert_eq!(
            status(DbError::QuotaExceeded {
                resource: magnum_db::Resource::Cluster,
                limit: 3
            }),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(DbError::Corrupt {
                column: "labels",
                reason: "not JSON".into()
            }),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status(DbError::Backend(sqlx::Error::ColumnNotFound("x".into()))),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn generation_follows_the_path() {
        assert_eq!(generation_of_path("/v1/baymodels/x"), ApiGeneration::Seed);
        assert_eq!(generation_of_path("/v1/bays"), ApiGeneration::Seed);
        assert_eq!(
            generation_of_path("/v1/clustertemplates"),
            ApiGeneration::Current
        );
        assert_eq!(generation_of_path("/v1/mservices"), ApiGeneration::Current);
    }
}
