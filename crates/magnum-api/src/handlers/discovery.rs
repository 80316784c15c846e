//! etcd's discovery protocol, served by magnumd so that clusters bootstrap their etcd
//! without a public discovery service (clouds without internet access must bootstrap too).
//!
//! A discovery URL is `<api>/v1/discovery/<token>`. etcd treats it as a directory of its v2
//! keys API: it reads `_config/size`, creates its own key (its member id) once with
//! `prevExist=false`, lists the directory, and watches it (`wait=true&waitIndex=N`) until
//! `size` members are there. Those calls are answered here, in etcd's JSON shapes, from the
//! rows of [`magnum_db::discovery`]; the token is the capability, as with discovery.etcd.io,
//! since the nodes calling it hold no Magnum credentials at that point.
//!
//! Tokens come from `GET /v1/discovery/new?size=N` (authenticated; what
//! `[cluster] etcd_discovery_service_endpoint_format` names by default) or are made with a
//! cluster that needs one; a cluster's token goes with the cluster, a requested one expires.
//!
//! Everything a caller sends is bounded: the size, keys, values, entries per token, the body,
//! how long and how many watches wait.

use crate::error::ApiError;
use crate::request::{BaseUrl, Caller};
use crate::SharedState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use chrono::Utc;
use magnum_db::discovery::{DiscoveryEntry, DiscoveryToken, RegisterError, SIZE_INDEX};
use magnum_db::Database;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

/// The largest etcd cluster a token may bootstrap.
pub const MAX_SIZE: i64 = 15;
/// Members a token may hold beyond its size (late or replaced members register too).
const EXTRA_ENTRIES: i64 = 16;
/// Requested tokens a project may hold at once.
const TOKENS_PER_PROJECT: i64 = 100;
/// How long a requested token lives.
const TOKEN_LIFETIME_HOURS: i64 = 24;
/// The longest member key (etcd's are 16 hex digits) and value (name and peer URLs).
const MAX_KEY_LENGTH: usize = 64;
const MAX_VALUE_LENGTH: usize = 4096;
/// The largest request body of the protocol.
pub const MAX_BODY: usize = 8192;
/// How often a waiting watch looks at the database (another magnumd may take a
/// registration); registrations made here wake it at once.
const WATCH_POLL: Duration = Duration::from_millis(500);

/// What the protocol's handlers share: who is waiting, and how many may.
#[derive(Debug)]
pub struct DiscoveryHub {
    registered: Notify,
    watchers: Semaphore,
    /// How long one watch request waits before it is answered empty (etcd then asks again).
    pub watch_window: Duration,
}

impl DiscoveryHub {
    pub fn new(max_watchers: usize, watch_window: Duration) -> Self {
        DiscoveryHub {
            registered: Notify::new(),
            watchers: Semaphore::new(max_watchers),
            watch_window,
        }
    }
}

impl Default for DiscoveryHub {
    fn default() -> Self {
        DiscoveryHub::new(512, Duration::from_secs(30))
    }
}

/// The authenticated route that makes tokens.
pub fn routes() -> Router<SharedState> {
    Router::new().route("/v1/discovery/new", get(new_token))
}

/// The protocol's routes, which take no Magnum credentials: they sit outside the API's
/// authentication and error-format layers (etcd expects its own error bodies).
pub fn protocol_routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/discovery/{token}", get(get_directory))
        .route("/v1/discovery/{token}/{*key}", get(get_key).put(put_key))
}

/// A new token's record.
pub fn new_record(project_id: &str, cluster_uuid: Option<&str>, size: i64) -> DiscoveryToken {
    DiscoveryToken {
        token: uuid::Uuid::new_v4().simple().to_string(),
        project_id: project_id.to_string(),
        cluster_uuid: cluster_uuid.map(str::to_string),
        size,
        current_index: SIZE_INDEX,
        created_at: Utc::now(),
    }
}

/// The discovery URL of a token.
pub fn url_of(base: &str, token: &str) -> String {
    format!("{}/v1/discovery/{token}", base.trim_end_matches('/'))
}

/// Checks an etcd cluster size.
pub fn check_size(size: i64) -> Result<(), ApiError> {
    if (1..=MAX_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Invalid discovery size {size}: an etcd cluster has 1 to {MAX_SIZE} members."
        )))
    }
}

/// `GET /v1/discovery/new?size=N`: a new token's URL, as text (discovery.etcd.io's answer).
async fn new_token(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    BaseUrl(base): BaseUrl,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let size = match query.get("size") {
        None => 3,
        Some(text) => text.trim().parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("Invalid discovery size '{text}': not an integer."))
        })?,
    };
    check_size(size)?;
    let project_id = caller.context.project_id.clone();
    let discovery = state.database.discovery();
    discovery
        .delete_unattached_before(&(Utc::now() - chrono::Duration::hours(TOKEN_LIFETIME_HOURS)))
        .await?;
    let record = new_record(&project_id, None, size);
    if !discovery.insert(&record, TOKENS_PER_PROJECT).await? {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "The project holds {TOKENS_PER_PROJECT} discovery tokens already; they expire {TOKEN_LIFETIME_HOURS} hours after they were made."
            ),
        ));
    }
    Ok((
        StatusCode::OK,
        [("content-type", "text/plain; charset=utf-8")],
        url_of(&base, &record.token),
    )
        .into_response())
}

/// etcd's error codes used here.
const KEY_NOT_FOUND: u32 = 100;
const NODE_EXIST: u32 = 105;
const ROOT_READ_ONLY: u32 = 107;
const INVALID_FIELD: u32 = 209;
const RAFT_INTERNAL: u32 = 300;

/// An answer in etcd's v2 shapes, with its index header.
fn etcd_answer(status: StatusCode, index: i64, body: Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&index.to_string()) {
        response.headers_mut().insert("x-etcd-index", value);
    }
    response
}

fn etcd_error(status: StatusCode, code: u32, message: &str, cause: &str, index: i64) -> Response {
    etcd_answer(
        status,
        index,
        json!({"errorCode": code, "message": message, "cause": cause, "index": index}),
    )
}

fn not_found(cause: &str, index: i64) -> Response {
    etcd_error(
        StatusCode::NOT_FOUND,
        KEY_NOT_FOUND,
        "Key not found",
        cause,
        index,
    )
}

/// The database could not answer: etcd retries on 5xx.
fn unavailable(error: magnum_db::DbError) -> Response {
    tracing::warn!(%error, "the discovery protocol cannot reach the database");
    etcd_error(
        StatusCode::SERVICE_UNAVAILABLE,
        RAFT_INTERNAL,
        "The discovery service cannot answer now",
        "",
        0,
    )
}

/// A token that looks like one of ours (32 hex digits); anything else is not found without
/// asking the database.
fn plausible_token(token: &str) -> bool {
    token.len() == 32 && token.bytes().all(|byte| byte.is_ascii_hexdigit())
}

async fn token_record(database: &Database, token: &str) -> Result<DiscoveryToken, Response> {
    if !plausible_token(token) {
        return Err(not_found(&format!("/{token}"), 0));
    }
    match database.discovery().get(token).await {
        Ok(record) => Ok(record),
        Err(magnum_db::DbError::NotFound) => Err(not_found(&format!("/{token}"), 0)),
        Err(error) => Err(unavailable(error)),
    }
}

fn size_node(record: &DiscoveryToken) -> Value {
    json!({
        "key": format!("/{}/_config/size", record.token),
        "value": record.size.to_string(),
        "modifiedIndex": SIZE_INDEX,
        "createdIndex": SIZE_INDEX,
    })
}

fn entry_node(token: &str, entry: &DiscoveryEntry) -> Value {
    json!({
        "key": format!("/{token}/{}", entry.key),
        "value": entry.value,
        "modifiedIndex": entry.created_index,
        "createdIndex": entry.created_index,
    })
}

/// `GET /v1/discovery/{token}`: the members (and the `_config` directory), or with
/// `wait=true` the first registration at or after `waitIndex`.
async fn get_directory(
    State(state): State<SharedState>,
    Path(token): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let record = match token_record(&state.database, &token).await {
        Ok(record) => record,
        Err(answer) => return answer,
    };
    if query.get("wait").map(String::as_str) == Some("true") {
        return watch(&state, record, &query).await;
    }
    let entries = match state.database.discovery().entries(&token).await {
        Ok(entries) => entries,
        Err(error) => return unavailable(error),
    };
    let mut nodes = vec![json!({
        "key": format!("/{token}/_config"),
        "dir": true,
        "modifiedIndex": SIZE_INDEX,
        "createdIndex": SIZE_INDEX,
    })];
    nodes.extend(entries.iter().map(|entry| entry_node(&token, entry)));
    // The index is the listing's own: a member that registered after the token was read
    // is in the list, and a client watching from this index must not see it again (etcd
    // would count it twice and refuse to start, "member with duplicated name").
    let listed_index = entries
        .iter()
        .map(|entry| entry.created_index)
        .fold(record.current_index, i64::max);
    etcd_answer(
        StatusCode::OK,
        listed_index,
        json!({"action": "get", "node": {
            "key": format!("/{token}"), "dir": true, "nodes": nodes,
            "modifiedIndex": SIZE_INDEX, "createdIndex": SIZE_INDEX,
        }}),
    )
}

async fn watch(
    state: &SharedState,
    record: DiscoveryToken,
    query: &HashMap<String, String>,
) -> Response {
    let wait_index = match query.get("waitIndex") {
        None => record.current_index + 1,
        Some(text) => match text.parse::<i64>() {
            Ok(index) if index >= 0 => index,
            _ => {
                return etcd_error(
                    StatusCode::BAD_REQUEST,
                    INVALID_FIELD,
                    "Invalid field",
                    "invalid value for waitIndex",
                    record.current_index,
                )
            }
        },
    };
    if wait_index <= SIZE_INDEX {
        return etcd_answer(
            StatusCode::OK,
            record.current_index,
            json!({"action": "set", "node": size_node(&record)}),
        );
    }
    let Ok(_permit) = state.discovery.watchers.try_acquire() else {
        return etcd_error(
            StatusCode::SERVICE_UNAVAILABLE,
            RAFT_INTERNAL,
            "Too many watches are waiting",
            "",
            record.current_index,
        );
    };
    let deadline = tokio::time::Instant::now() + state.discovery.watch_window;
    loop {
        // Registered from here from now on wakes this watch at once.
        let registered = state.discovery.registered.notified();
        let entries = match state.database.discovery().entries(&record.token).await {
            Ok(entries) => entries,
            Err(error) => return unavailable(error),
        };
        let current_index = entries
            .iter()
            .map(|entry| entry.created_index)
            .max()
            .unwrap_or(SIZE_INDEX);
        if let Some(entry) = entries
            .iter()
            .find(|entry| entry.created_index >= wait_index)
        {
            return etcd_answer(
                StatusCode::OK,
                current_index,
                json!({"action": "create", "node": entry_node(&record.token, entry)}),
            );
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            // An empty answer makes etcd's client ask again with the same index.
            let mut response = StatusCode::OK.into_response();
            if let Ok(value) = HeaderValue::from_str(&current_index.to_string()) {
                response.headers_mut().insert("x-etcd-index", value);
            }
            return response;
        }
        let _ = tokio::time::timeout(WATCH_POLL.min(deadline - now), registered).await;
    }
}

/// `GET /v1/discovery/{token}/{key}`: `_config/size`, or one member.
async fn get_key(
    State(state): State<SharedState>,
    Path((token, key)): Path<(String, String)>,
) -> Response {
    let record = match token_record(&state.database, &token).await {
        Ok(record) => record,
        Err(answer) => return answer,
    };
    let key = key.trim_matches('/');
    if key == "_config/size" {
        return etcd_answer(
            StatusCode::OK,
            record.current_index,
            json!({"action": "get", "node": size_node(&record)}),
        );
    }
    let entries = match state.database.discovery().entries(&token).await {
        Ok(entries) => entries,
        Err(error) => return unavailable(error),
    };
    match entries.iter().find(|entry| entry.key == key) {
        Some(entry) => etcd_answer(
            StatusCode::OK,
            record.current_index,
            json!({"action": "get", "node": entry_node(&token, entry)}),
        ),
        None => not_found(&format!("/{token}/{key}"), record.current_index),
    }
}

fn valid_member_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LENGTH
        && !key.starts_with('_')
        && key
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// `PUT /v1/discovery/{token}/{key}` with a form body `value=...`: a member registers,
/// once (every key is created with `prevExist=false` semantics; nothing is overwritten).
async fn put_key(
    State(state): State<SharedState>,
    Path((token, key)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let record = match token_record(&state.database, &token).await {
        Ok(record) => record,
        Err(answer) => return answer,
    };
    let key = key.trim_matches('/');
    let cause = format!("/{token}/{key}");
    if !valid_member_key(key) {
        return etcd_error(
            StatusCode::FORBIDDEN,
            ROOT_READ_ONLY,
            "Only member keys (letters, digits, '-', '_', at most 64) may be created here",
            &cause,
            record.current_index,
        );
    }
    let value = url::form_urlencoded::parse(&body)
        .find(|(name, _)| name == "value")
        .map(|(_, value)| value.into_owned());
    let Some(value) = value.filter(|value| value.len() <= MAX_VALUE_LENGTH) else {
        return etcd_error(
            StatusCode::BAD_REQUEST,
            INVALID_FIELD,
            "Invalid field",
            &format!("a form field value of at most {MAX_VALUE_LENGTH} bytes is required"),
            record.current_index,
        );
    };
    let limit = record.size.saturating_add(EXTRA_ENTRIES);
    match state
        .database
        .discovery()
        .register(&token, key, &value, limit)
        .await
    {
        Ok(entry) => {
            state.discovery.registered.notify_waiters();
            etcd_answer(
                StatusCode::CREATED,
                entry.created_index,
                json!({"action": "create", "node": entry_node(&token, &entry)}),
            )
        }
        Err(RegisterError::Exists { current_index }) => etcd_error(
            StatusCode::PRECONDITION_FAILED,
            NODE_EXIST,
            "Key already exists",
            &cause,
            current_index,
        ),
        Err(RegisterError::Full { limit }) => etcd_error(
            StatusCode::FORBIDDEN,
            ROOT_READ_ONLY,
            &format!("The token holds its {limit} entries already"),
            &cause,
            record.current_index,
        ),
        Err(RegisterError::UnknownToken) => not_found(&cause, 0),
        Err(RegisterError::Database(error)) => unavailable(error),
    }
}

/// The protocol's routes with their own protection: request ids, a small body limit, panics
/// answered 500, and a timeout above the watch window.
pub fn protocol_router(state: SharedState) -> Router {
    let limit = state.discovery.watch_window + Duration::from_secs(10);
    protocol_routes()
        .layer(axum::middleware::from_fn_with_state(
            limit,
            crate::middleware::request_timeout_layer,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            crate::error::panic_response,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(
            crate::middleware::request_id_layer,
        ))
        .with_state(state)
}

/// Makes a cluster's token when its driver bootstraps etcd through discovery and the user
/// gave no `discovery_url`.
pub fn cluster_token(
    project_id: &str,
    cluster_uuid: &str,
    master_count: i64,
) -> Result<DiscoveryToken, ApiError> {
    check_size(master_count)?;
    Ok(new_record(project_id, Some(cluster_uuid), master_count))
}
