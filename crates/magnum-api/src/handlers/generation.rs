//! The route plumbing shared by the resources that two API generations serve: cluster
//! templates (`/v1/clustertemplates` and the 2016 `/v1/baymodels`) and clusters
//! (`/v1/clusters` and `/v1/bays`).
//!
//! A resource implements [`GenerationResource`] once, taking its generation's vocabulary as a
//! value; [`routes`] mounts the five collection routes for both generations, each with the
//! right vocabulary chosen at compile time.

use crate::error::ApiError;
use crate::request::{BaseUrl, Caller};
use crate::version::ApiVersion;
use crate::SharedState;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;

/// What every collection handler receives from the request.
pub(crate) struct RequestParts {
    pub state: SharedState,
    pub caller: Caller,
    /// Scheme, host and port for links, without `/v1`.
    pub base: String,
    pub version: ApiVersion,
}

/// A resource served under a current and a 2016 collection path.
pub(crate) trait GenerationResource: Send + Sync + 'static {
    /// The words (nouns, policy prefix, field names) one generation uses for the resource.
    type Words: Send + Sync + 'static;
    /// The current generation's words.
    const CURRENT: &'static Self::Words;
    /// The 2016 generation's words.
    const SEED: &'static Self::Words;

    /// `GET {collection}` (`detail` false) and `GET {collection}/detail` (`detail` true).
    fn list(
        request: RequestParts,
        query: HashMap<String, String>,
        words: &'static Self::Words,
        detail: bool,
    ) -> impl Future<Output = Result<Response, ApiError>> + Send;

    /// `GET {collection}/{ident}`.
    fn show(
        request: RequestParts,
        ident: String,
        words: &'static Self::Words,
    ) -> impl Future<Output = Result<Response, ApiError>> + Send;

    /// `POST {collection}`.
    fn create(
        request: RequestParts,
        headers: HeaderMap,
        body: Bytes,
        words: &'static Self::Words,
    ) -> impl Future<Output = Result<Response, ApiError>> + Send;

    /// `PATCH {collection}/{ident}`.
    fn patch(
        request: RequestParts,
        ident: String,
        headers: HeaderMap,
        body: Bytes,
        words: &'static Self::Words,
    ) -> impl Future<Output = Result<Response, ApiError>> + Send;

    /// `DELETE {collection}/{ident}`.
    fn delete(
        request: RequestParts,
        ident: String,
        words: &'static Self::Words,
    ) -> impl Future<Output = Result<StatusCode, ApiError>> + Send;
}

/// Which generation a route serves, as a type so one generic handler serves both paths.
trait Generation: Send + Sync + 'static {
    fn words<R: GenerationResource>() -> &'static R::Words;
}

/// The current paths.
struct Current;
/// The 2016 paths.
struct Seed;

impl Generation for Current {
    fn words<R: GenerationResource>() -> &'static R::Words {
        R::CURRENT
    }
}

impl Generation for Seed {
    fn words<R: GenerationResource>() -> &'static R::Words {
        R::SEED
    }
}

/// The collection routes of `R` under both generations' paths.
pub(crate) fn routes<R: GenerationResource>(
    current_collection: &str,
    seed_collection: &str,
) -> Router<SharedState> {
    Router::new()
        .merge(Routes::<R, Current>::router(current_collection))
        .merge(Routes::<R, Seed>::router(seed_collection))
}

/// The handlers of one resource under one generation.
struct Routes<R, G>(PhantomData<(R, G)>);

type ListQuery = Query<HashMap<String, String>>;

impl<R: GenerationResource, G: Generation> Routes<R, G> {
    fn router(collection: &str) -> Router<SharedState> {
        Router::new()
            .route(collection, get(Self::list).post(Self::create))
            .route(&format!("{collection}/detail"), get(Self::detail))
            .route(
                &format!("{collection}/{{ident}}"),
                get(Self::show).patch(Self::patch).delete(Self::delete),
            )
    }

    async fn list(
        State(state): State<SharedState>,
        caller: Caller,
        BaseUrl(base): BaseUrl,
        version: ApiVersion,
        Query(query): ListQuery,
    ) -> Result<Response, ApiError> {
        let request = RequestParts {
            state,
            caller,
            base,
            version,
        };
        R::list(request, query, G::words::<R>(), false).await
    }

    async fn detail(
        State(state): State<SharedState>,
        caller: Caller,
        BaseUrl(base): BaseUrl,
        version: ApiVersion,
        Query(query): ListQuery,
    ) -> Result<Response, ApiError> {
        let request = RequestParts {
            state,
            caller,
            base,
            version,
        };
        R::list(request, query, G::words::<R>(), true).await
    }

    async fn show(
        State(state): State<SharedState>,
        caller: Caller,
        BaseUrl(base): BaseUrl,
        version: ApiVersion,
        Path(ident): Path<String>,
    ) -> Result<Response, ApiError> {
        let request = RequestParts {
            state,
            caller,
            base,
            version,
        };
        R::show(request, ident, G::words::<R>()).await
    }

    async fn create(
        State(state): State<SharedState>,
        caller: Caller,
        BaseUrl(base): BaseUrl,
        version: ApiVersion,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response, ApiError> {
        let request = RequestParts {
            state,
            caller,
            base,
            version,
        };
        R::create(request, headers, body, G::words::<R>()).await
    }

    async fn patch(
        State(state): State<SharedState>,
        caller: Caller,
        BaseUrl(base): BaseUrl,
        version: ApiVersion,
        Path(ident): Path<String>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response, ApiError> {
        let request = RequestParts {
            state,
            caller,
            base,
            version,
        };
        R::patch(request, ident, headers, body, G::words::<R>()).await
    }

    async fn delete(
        State(state): State<SharedState>,
        caller: Caller,
        BaseUrl(base): BaseUrl,
        version: ApiVersion,
        Path(ident): Path<String>,
    ) -> Result<StatusCode, ApiError> {
        let request = RequestParts {
            state,
            caller,
            base,
            version,
        };
        R::delete(request, ident, G::words::<R>()).await
    }
}
