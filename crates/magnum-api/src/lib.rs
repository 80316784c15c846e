//! The Magnum REST API (port 9511).
//!
//! A request passes, outermost first: path normalisation (`/clusters` is `/v1/clusters`),
//! [`middleware::request_id_layer`], [`error::error_body_layer`] (error bodies in the
//! request's API generation), the body limit, a layer that turns a handler's panic into a
//! 500 answer, [`middleware::request_timeout_layer`], [`version::version_layer`]
//! (microversions) and
//! [`middleware::auth_layer`] (who is calling), then a handler in [`handlers`]. Handlers check
//! [`policy`], validate with `magnum-core`, ask the infrastructure provider about named
//! images/flavors/networks, and read or write through `magnum-db`.
//!
//! etcd's discovery protocol ([`handlers::discovery`]) has routes of its own, outside
//! authentication and the error format, behind the same request ids, limits and timeout.
//!
//! Architecture invariants: only this crate knows HTTP status codes; it never creates
//! infrastructure (it records desired state for the conductor).

pub mod encoded_views;
pub mod error;
pub mod handlers;
pub mod middleware;
pub mod pagination;
pub mod policy;
pub mod request;
pub mod version;
pub mod views;

use axum::extract::Request;
use axum::routing::get;
use axum::Router;
use magnum_core::coe::TemplateRules;
use magnum_db::Database;
use magnum_driver::Infrastructure;
use magnum_identity::Authenticator;
use std::sync::Arc;
use tower::Layer;

pub use error::ApiError;
pub use policy::Policy;

/// Everything handlers share.
#[derive(Debug)]
pub struct ApiState {
    pub database: Database,
    pub authenticator: Authenticator,
    pub policy: Policy,
    /// The enabled providers and their drivers: lookups, driver selection and
    /// driver-specific checks of cluster requests.
    pub infrastructure: Arc<Infrastructure>,
    /// How cluster certificates are signed and their keys unsealed.
    pub certificates: magnum_x509::CertificateSettings,
    pub template_rules: TemplateRules,
    /// Page size when none is asked for, and the largest page.
    pub max_limit: usize,
    /// Clusters a project may have without a quota row (`[quotas] max_clusters_per_project`).
    pub max_clusters_per_project: i64,
    /// Nodes a project may have without a quota row (`[quotas] max_nodes_per_project`).
    pub max_nodes_per_project: i64,
    /// Whether quota project ids are checked against the built-in identity's projects.
    pub checks_projects: bool,
    /// Whether CSR subjects are checked against the requester (`[x509] restrict_client_subjects`).
    pub restrict_client_subjects: bool,
    /// The rules for signing users' CSRs.
    pub signing_rules: magnum_x509::SigningRules,
    /// Seconds after the last heartbeat a service is reported down.
    pub service_down_time_seconds: i64,
    /// The API's base URL without `/v1` (for links); from the Host header when None.
    pub public_base_url: Option<String>,
    /// The identity URL advertised in 401 answers.
    pub identity_url: Option<String>,
    /// How long a request may take before it is answered 503.
    pub request_timeout: std::time::Duration,
    /// The largest request body accepted.
    pub max_body_size: usize,
    /// List items already encoded, per row revision.
    pub encoded_views: encoded_views::EncodedViews,
    /// The etcd discovery protocol's waiting watches.
    pub discovery: handlers::discovery::DiscoveryHub,
}

pub type SharedState = Arc<ApiState>;

/// The routes of the API, with their middleware.
pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/", get(handlers::root::root))
        .route("/v1", get(handlers::root::v1))
        .route("/v1.json", get(handlers::root::v1))
        .merge(handlers::cluster_templates::routes())
        .merge(handlers::clusters::routes())
        .merge(handlers::nodegroups::routes())
        .merge(handlers::certificates::routes())
        .merge(handlers::quotas::routes())
        .merge(handlers::discovery::routes())
        .route("/v1/mservices", get(handlers::mservices::list))
        .merge(handlers::unimplemented::routes())
        .fallback(handlers::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::auth_layer,
        ))
        .layer(axum::middleware::from_fn(version::version_layer))
        .layer(axum::middleware::from_fn_with_state(
            state.request_timeout,
            middleware::request_timeout_layer,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            error::panic_response,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(state.max_body_size))
        .layer(axum::middleware::from_fn(error::error_body_layer))
        .layer(axum::middleware::from_fn(middleware::request_id_layer))
        .with_state(state.clone())
        .merge(handlers::discovery::protocol_router(state))
}

/// The complete application: the router behind path normalisation, which must run before
/// routing and therefore wraps the router instead of being one of its layers.
pub fn app(state: SharedState) -> tower::util::MapRequest<Router, fn(Request) -> Request> {
    tower::util::MapRequestLayer::new(middleware::normalize_path as fn(Request) -> Request)
        .layer(router(state))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::routing::{get, post};
    use axum::Router;
    use bytes::Bytes;
    use std::time::Duration;
    use tower::ServiceExt;

    /// Routes that misbehave, behind the same protective layers as the API.
    fn guarded() -> Router {
        Router::new()
            .route(
                "/v1/panic",
                get(|| async {
                    if Duration::ZERO.is_zero() {
                        panic!("a handler bug");
                    }
                    "unreachable"
                }),
            )
            .route(
                "/v1/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route("/v1/echo", post(|body: Bytes| async move { body }))
            .layer(axum::middleware::from_fn_with_state(
                Duration::from_millis(50),
                crate::middleware::request_timeout_layer,
            ))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                crate::error::panic_response,
            ))
            .layer(axum::extract::DefaultBodyLimit::max(16))
            .layer(axum::middleware::from_fn(crate::error::error_body_layer))
    }

    async fn answer(request: Request) -> (u16, serde_json::Value) {
        let response = guarded().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }

    #[tokio::test]
    async fn panics_timeouts_and_large_bodies_get_error_answers_in_the_spec_format() {
        let (status, body) = answer(Request::get("/v1/panic").body(Body::empty()).unwrap()).await;
        assert_eq!(status, 500);
        assert_eq!(body["errors"][0]["code"], "server");
        assert_eq!(
            body["errors"][0]["detail"],
            "An unexpected error occurred while handling the request."
        );
        let (status, body) = answer(Request::get("/v1/slow").body(Body::empty()).unwrap()).await;
        assert_eq!(status, 503);
        assert!(body["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("The request did not complete within"));
        let (status, body) = answer(
            Request::post("/v1/echo")
                .body(Body::from(vec![b'x'; 17]))
                .unwrap(),
        )
        .await;
        assert_eq!(status, 413);
        assert_eq!(body["errors"][0]["status"], 413);
        let (status, _) = answer(
            Request::post("/v1/echo")
                .body(Body::from(vec![b'x'; 16]))
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200);
    }
}
