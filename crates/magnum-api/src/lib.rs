//! The Magnum REST API (port 9511).
//!
//! A request passes, outermost first: path normalisation (`/clusters` is `/v1/clusters`),
//! [`middleware::request_id_layer`], [`error::error_body_layer`] (error bodies in the
//! request's API generation), [`version::version_layer`] (microversions) and
//! [`middleware::auth_layer`] (who is calling), then a handler in [`handlers`]. Handlers check
//! [`policy`], validate with `magnum-core`, ask the infrastructure provider about named
//! images/flavors/networks, and read or write through `magnum-db`.
//!
//! Architecture invariants: only this crate knows HTTP status codes; it never creates
//! infrastructure (it records desired state for the conductor).

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
        .route("/v1/mservices", get(handlers::mservices::list))
        .merge(handlers::unimplemented::routes())
        .fallback(handlers::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::auth_layer,
        ))
        .layer(axum::middleware::from_fn(version::version_layer))
        .layer(axum::middleware::from_fn(error::error_body_layer))
        .layer(axum::middleware::from_fn(middleware::request_id_layer))
        .with_state(state)
}

/// The complete application: the router behind path normalisation, which must run before
/// routing and therefore wraps the router instead of being one of its layers.
pub fn app(state: SharedState) -> tower::util::MapRequest<Router, fn(Request) -> Request> {
    tower::util::MapRequestLayer::new(middleware::normalize_path as fn(Request) -> Request)
        .layer(router(state))
}
