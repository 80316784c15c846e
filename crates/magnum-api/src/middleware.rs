//! Request-wide middleware: request ids, authentication and path normalisation.

use crate::error::ApiError;
use crate::request::Caller;
use crate::SharedState;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use magnum_identity::AuthError;
use std::time::Instant;
use tracing::Instrument;

/// Paths anyone may read: the version documents.
fn is_public_path(path: &str) -> bool {
    matches!(path, "/" | "/v1" | "/v1.json" | "/.json")
}

/// Gives every request an `x-openstack-request-id` and a tracing span, and logs the answer.
pub async fn request_id_layer(request: Request, next: Next) -> Response {
    let request_id = format!("req-{}", uuid::Uuid::new_v4());
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let started = Instant::now();
    let span = tracing::debug_span!("request", id = %request_id, %method, %path);
    let mut response = next.run(request).instrument(span).await;
    let status = response.status();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::warn!(request_id, %method, %path, status = status.as_u16(), elapsed_ms, "request failed");
    } else {
        tracing::debug!(request_id, %method, %path, status = status.as_u16(), elapsed_ms, "request");
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert("x-openstack-request-id", value);
    }
    response
}

/// Authenticates every request except the version documents and records the caller.
pub async fn auth_layer(
    State(state): State<SharedState>,
    mut request: Request,
    next: Next,
) -> Response {
    if is_public_path(request.uri().path()) {
        return next.run(request).await;
    }
    match state.authenticator.authenticate(request.headers()).await {
        Ok(context) => {
            let is_admin = state.policy.is_admin(&context);
            let token = request
                .headers()
                .get("x-auth-token")
                .and_then(|value| value.to_str().ok())
                .map(str::to_string);
            request.extensions_mut().insert(Caller {
                context,
                is_admin,
                token,
            });
            next.run(request).await
        }
        Err(error) => {
            let status = match error {
                AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::UNAUTHORIZED,
            };
            if let AuthError::Unavailable(reason) = &error {
                tracing::error!(%reason, "cannot authenticate requests");
            }
            let mut response = ApiError::framework(status, error.to_string()).into_response();
            if status == StatusCode::UNAUTHORIZED {
                if let Some(value) = state
                    .authenticator
                    .www_authenticate(state.identity_url.as_deref())
                    .and_then(|text| HeaderValue::from_str(&text).ok())
                {
                    response.headers_mut().insert("WWW-Authenticate", value);
                }
            }
            response
        }
    }
}

/// Routes paths without the `/v1` prefix as if they had it (`/clusters` is `/v1/clusters`)
/// and drops trailing slashes.
pub fn normalize_path(mut request: Request) -> Request {
    let path = request.uri().path();
    let trimmed = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let normalized = if trimmed.is_empty() || trimmed == "/" {
        "/".to_string()
    } else if trimmed == "/v1" || trimmed.starts_with("/v1/") || trimmed == "/v1.json" {
        trimmed.to_string()
    } else if trimmed == "/.json" {
        "/".to_string()
    } else {
        format!("/v1{trimmed}")
    };
    if normalized != request.uri().path() {
        let path_and_query = match request.uri().query() {
            Some(query) => format!("{normalized}?{query}"),
            None => normalized,
        };
        let mut parts = request.uri().clone().into_parts();
        if let Ok(value) = path_and_query.parse() {
            parts.path_and_query = Some(value);
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    request
}

/// Answers 503 when the rest of the request takes longer than `limit` (the work is
/// dropped: handlers only record desired state, so nothing is left half done).
pub async fn request_timeout_layer(
    State(limit): State<std::time::Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => crate::ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "The request did not complete within {} seconds; try again.",
                limit.as_secs()
            ),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn normalized(uri: &str) -> String {
        let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
        normalize_path(request).uri().to_string()
    }

    #[test]
    fn paths_without_v1_get_the_prefix() {
        assert_eq!(normalized("/clustertemplates"), "/v1/clustertemplates");
        assert_eq!(normalized("/clusters/x?limit=1"), "/v1/clusters/x?limit=1");
        assert_eq!(normalized("/v1/clustertemplates/"), "/v1/clustertemplates");
        assert_eq!(normalized("/"), "/");
        assert_eq!(normalized("/v1/"), "/v1");
        assert_eq!(normalized("/v1"), "/v1");
    }
}
