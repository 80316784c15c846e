//! Collections the API knows but this service does not implement yet. They answer 501 with a
//! message saying so, never 404, so clients and operators can tell "missing feature" from
//! "wrong URL".

use crate::error::ApiError;
use crate::SharedState;
use axum::http::StatusCode;
use axum::routing::any;
use axum::Router;

/// (collection, what it is) for every collection not implemented yet.
const UNIMPLEMENTED: [(&str, &str); 8] = [
    ("federations", "federations API"),
    ("credentials", "credentials API"),
    ("containers", "containers API"),
    ("pods", "pods API"),
    ("rcs", "replication controllers API"),
    ("services", "COE services API"),
    ("x509keypairs", "x509keypairs API"),
    ("nodes", "nodes API"),
];

pub fn routes() -> Router<SharedState> {
    let mut router = Router::new();
    for (collection, description) in UNIMPLEMENTED {
        let answer = move || async move {
            ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                format!("The {description} is not implemented by this service yet."),
            )
        };
        router = router
            .route(&format!("/v1/{collection}"), any(answer))
            .route(&format!("/v1/{collection}/{{*rest}}"), any(answer));
    }
    router
}
