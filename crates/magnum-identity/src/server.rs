//! The HTTP face of the built-in identity: the Keystone v3 subset that stock OpenStack
//! clients need (version discovery, token issue/validate/revoke, catalog, projects).

use crate::service::{
    DomainReference, IdentityError, IdentityService, ProjectReference, UserReference,
};
use crate::token::TokenClaims;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{json, Value};
use std::sync::Arc;

/// Keystone's error body: `{"error": {"code", "title", "message"}}`.
fn keystone_error(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let mut response = (
        status,
        Json(json!({"error": {"code": status.as_u16(), "title": title, "message": message}})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert("WWW-Authenticate", HeaderValue::from_static("Keystone"));
    }
    response
}

impl IntoResponse for IdentityError {
    fn into_response(self) -> Response {
        match &self {
            IdentityError::BadRequest(message) => keystone_error(StatusCode::BAD_REQUEST, message),
            IdentityError::Unauthorized | IdentityError::AccountLocked(_) => {
                keystone_error(StatusCode::UNAUTHORIZED, &self.to_string())
            }
            IdentityError::Busy => {
                keystone_error(StatusCode::SERVICE_UNAVAILABLE, &self.to_string())
            }
            IdentityError::TokenNotFound(_) => {
                keystone_error(StatusCode::NOT_FOUND, &self.to_string())
            }
            IdentityError::Database(error) if error.is_unavailable() => {
                tracing::warn!(%error, "identity request failed: the database is unavailable");
                keystone_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The service is temporarily unavailable; try again later.",
                )
            }
            IdentityError::Database(error) => {
                tracing::error!(%error, "identity request failed");
                keystone_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "An unexpected error prevented the server from fulfilling your request.",
                )
            }
        }
    }
}

type SharedService = Arc<IdentityService>;

/// What one request to the identity endpoint may be.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// How long a request may take before it is answered 503.
    pub timeout: std::time::Duration,
    /// The largest request body accepted.
    pub max_body_size: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            timeout: std::time::Duration::from_secs(60),
            max_body_size: 1024 * 1024,
        }
    }
}

/// Answers 503 in Keystone's format when a request takes longer than its limit, and gives a
/// refused oversized body Keystone's error format.
async fn limits_layer(
    State(limits): State<RequestLimits>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(response) if response.status() == StatusCode::PAYLOAD_TOO_LARGE => keystone_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "The request body is larger than {} bytes.",
                limits.max_body_size
            ),
        ),
        Ok(response) => response,
        Err(_) => keystone_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The request did not complete in time; try again.",
        ),
    }
}

/// A handler's panic answered as Keystone answers an unexpected error (the process lives
/// on).
fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("an identity request handler panicked");
    keystone_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "An unexpected error prevented the server from fulfilling your request.",
    )
}

/// The router of the identity endpoint, with its request limits.
pub fn router_with_limits(service: Arc<IdentityService>, limits: RequestLimits) -> Router {
    router(service)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_size))
        .layer(axum::middleware::from_fn_with_state(limits, limits_layer))
}

/// The router of the identity endpoint.
pub fn router(service: Arc<IdentityService>) -> Router {
    Router::new()
        .route("/", get(versions))
        .route("/v3", get(version))
        .route("/v3/", get(version))
        .route(
            "/v3/auth/tokens",
            get(validate_token)
                .head(validate_token)
                .post(issue_token)
                .delete(revoke_token),
        )
        .route("/v3/auth/catalog", get(catalog))
        .route("/v3/auth/projects", get(projects))
        .fallback(|| async {
            keystone_error(StatusCode::NOT_FOUND, "The resource could not be found.")
        })
        .with_state(service)
}

fn version_document(service: &IdentityService) -> Value {
    let mut href = service
        .catalog()
        .identity_url
        .trim_end_matches('/')
        .to_string();
    href.push('/');
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": href}],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.identity-v3+json"}]
    })
}

async fn versions(State(service): State<SharedService>) -> Response {
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(json!({"versions": {"values": [version_document(&service)]}})),
    )
        .into_response()
}

async fn version(State(service): State<SharedService>) -> Response {
    Json(json!({"version": version_document(&service)})).into_response()
}

fn bad_request(message: &str) -> IdentityError {
    IdentityError::BadRequest(message.to_string())
}

fn domain_reference(value: Option<&Value>) -> Result<DomainReference, IdentityError> {
    let domain =
        value.ok_or_else(|| bad_request("Expecting to find domain in user or project."))?;
    if let Some(id) = domain.get("id").and_then(Value::as_str) {
        Ok(DomainReference::Id(id.to_string()))
    } else if let Some(name) = domain.get("name").and_then(Value::as_str) {
        Ok(DomainReference::Name(name.to_string()))
    } else {
        Err(bad_request("Expecting to find id or name in domain."))
    }
}

fn project_reference(scope: &Value) -> Result<Option<ProjectReference>, IdentityError> {
    if scope.get("system").is_some() || scope.get("domain").is_some() {
        return Err(bad_request(
            "Only project scope is supported by this identity service.",
        ));
    }
    let Some(project) = scope.get("project") else {
        return Ok(None);
    };
    if let Some(id) = project.get("id").and_then(Value::as_str) {
        return Ok(Some(ProjectReference::Id(id.to_string())));
    }
    let name = project
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("Expecting to find id or name in project."))?;
    Ok(Some(ProjectReference::Name {
        name: name.to_string(),
        domain: domain_reference(project.get("domain"))?,
    }))
}

async fn issue_token(
    State(service): State<SharedService>,
    body: Bytes,
) -> Result<Response, IdentityError> {
    let request: Value = serde_json::from_slice(&body)
        .map_err(|_| bad_request("The request body is not valid JSON."))?;
    let auth = request
        .get("auth")
        .ok_or_else(|| bad_request("Expecting to find auth in the request body."))?;
    let identity = auth
        .get("identity")
        .ok_or_else(|| bad_request("Expecting to find identity in auth."))?;
    let methods: Vec<String> = identity
        .get("methods")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .ok_or_else(|| bad_request("Expecting to find methods in identity."))?;
    let scope = match auth.get("scope") {
        Some(Value::String(text)) if text == "unscoped" => None,
        Some(scope) => project_reference(scope)?,
        None => None,
    };
    let now = Utc::now();
    let (user, parent) = match methods.first().map(String::as_str) {
        Some("password") => {
            let user = identity
                .pointer("/password/user")
                .ok_or_else(|| bad_request("Expecting to find user in password."))?;
            let password = user
                .get("password")
                .and_then(Value::as_str)
                .ok_or_else(|| bad_request("Expecting to find password in user."))?;
            let reference = if let Some(id) = user.get("id").and_then(Value::as_str) {
                UserReference::Id(id.to_string())
            } else {
                let name = user
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_request("Expecting to find id or name in user."))?;
                UserReference::Name {
                    name: name.to_string(),
                    domain: domain_reference(user.get("domain"))?,
                }
            };
            (
                service.authenticate_password(&reference, password).await?,
                None,
            )
        }
        Some("token") => {
            let token = identity
                .pointer("/token/id")
                .and_then(Value::as_str)
                .ok_or_else(|| bad_request("Expecting to find id in token."))?;
            let (user, claims) = service.user_of_token(token, now).await?;
            (user, Some(claims))
        }
        Some(other) => {
            return Err(bad_request(&format!(
                "Attempted to authenticate with an unsupported method: {other}"
            )))
        }
        None => return Err(bad_request("Expecting to find methods in identity.")),
    };
    let (token, claims) = service
        .issue(&user, scope.as_ref(), methods, parent.as_ref(), now)
        .await?;
    tracing::info!(user = %claims.user_name, project = ?claims.project_name, "issued token");
    let mut response =
        (StatusCode::CREATED, Json(service.token_body(&claims, true))).into_response();
    if let Ok(value) = HeaderValue::from_str(&token) {
        response.headers_mut().insert("X-Subject-Token", value);
    }
    Ok(response)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The token named by `X-Subject-Token` and its claims, once the caller's `X-Auth-Token` is
/// valid and may look at it (its own token, or any token for an administrator).
fn subject_of_request<'h>(
    service: &IdentityService,
    headers: &'h HeaderMap,
) -> Result<(&'h str, TokenClaims), IdentityError> {
    let now = Utc::now();
    let caller = header(headers, "X-Auth-Token").ok_or(IdentityError::Unauthorized)?;
    let caller_claims = service
        .check(caller, now)
        .map_err(|_| IdentityError::Unauthorized)?;
    let subject = header(headers, "X-Subject-Token")
        .ok_or_else(|| bad_request("Expecting to find X-Subject-Token in the request headers."))?;
    let subject_claims = service
        .check(subject, now)
        .map_err(|_| IdentityError::TokenNotFound(subject.chars().take(12).collect()))?;
    let is_admin = caller_claims.roles.iter().any(|(_, name)| name == "admin");
    if !is_admin && caller_claims.user_id != subject_claims.user_id {
        return Err(IdentityError::Unauthorized);
    }
    Ok((subject, subject_claims))
}

async fn validate_token(
    State(service): State<SharedService>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, IdentityError> {
    let (subject, subject_claims) = subject_of_request(&service, &headers)?;
    let mut response = if method == Method::HEAD {
        StatusCode::OK.into_response()
    } else {
        Json(service.token_body(&subject_claims, !headers.contains_key("nocatalog")))
            .into_response()
    };
    if let Ok(value) = HeaderValue::from_str(subject) {
        response.headers_mut().insert("X-Subject-Token", value);
    }
    Ok(response)
}

async fn revoke_token(
    State(service): State<SharedService>,
    headers: HeaderMap,
) -> Result<Response, IdentityError> {
    let (_, subject_claims) = subject_of_request(&service, &headers)?;
    service.revoke(&subject_claims).await?;
    tracing::info!(user = %subject_claims.user_name, "revoked token");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn catalog(
    State(service): State<SharedService>,
    headers: HeaderMap,
) -> Result<Response, IdentityError> {
    let caller = header(&headers, "X-Auth-Token").ok_or(IdentityError::Unauthorized)?;
    service
        .check(caller, Utc::now())
        .map_err(|_| IdentityError::Unauthorized)?;
    let self_link = format!("{}/auth/catalog", service.catalog().identity_url);
    Ok(
        Json(json!({"catalog": service.catalog().to_json(), "links": {"self": self_link}}))
            .into_response(),
    )
}

async fn projects(
    State(service): State<SharedService>,
    headers: HeaderMap,
) -> Result<Response, IdentityError> {
    let caller = header(&headers, "X-Auth-Token").ok_or(IdentityError::Unauthorized)?;
    let claims = service
        .check(caller, Utc::now())
        .map_err(|_| IdentityError::Unauthorized)?;
    let identity_url = service.catalog().identity_url.clone();
    let projects: Vec<Value> = service
        .projects_of(&claims.user_id)
        .await?
        .into_iter()
        .map(|project| {
            json!({"id": project.id, "name": project.name, "domain_id": project.domain_id,
                   "description": project.description.unwrap_or_default(),
                   "enabled": project.enabled, "is_domain": false, "parent_id": project.domain_id,
                   "links": {"self": format!("{identity_url}/projects/{}", project.id)}})
        })
        .collect();
    Ok(Json(json!({"projects": projects,
                   "links": {"self": format!("{identity_url}/auth/projects"), "previous": null, "next": null}}))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin;
    use crate::revocation::RevocationList;
    use crate::service::Catalog;
    use axum::body::Body;
    use axum::http::Request;
    use magnum_config::{DatabaseConnection, IdentitySection, Secret};
    use magnum_db::Database;
    use tower::ServiceExt;

    struct Fixture {
        router: Router,
        _directory: tempfile::TempDir,
    }

    async fn fixture() -> Fixture {
        let directory = tempfile::tempdir().unwrap();
        let database = Database::connect(
            &DatabaseConnection::Sqlite {
                path: Some(directory.path().join("identity.sqlite")),
            },
            2,
        )
        .await
        .unwrap();
        database.upgrade().await.unwrap();
        let settings = IdentitySection {
            admin_password: Some(Secret::new("s3cret")),
            ..IdentitySection::default()
        };
        let outcome = admin::bootstrap(&database, &settings, directory.path())
            .await
            .unwrap();
        assert!(outcome.created);
        admin::create_project(&database, "demo", None)
            .await
            .unwrap();
        admin::create_user(&database, "demo", "demopw", Some("demo"))
            .await
            .unwrap();
        admin::add_role(&database, "demo", "demo", "member")
            .await
            .unwrap();
        let signer = admin::load_token_signer(directory.path()).unwrap();
        let service = IdentityService::new(
            database,
            signer,
            RevocationList::default(),
            Catalog {
                identity_url: "http://127.0.0.1:5000/v3".to_string(),
                magnum_url: "http://127.0.0.1:9511/v1".to_string(),
                region: "RegionOne".to_string(),
            },
            chrono::Duration::hours(1),
        );
        Fixture {
            router: router(Arc::new(service)),
            _directory: directory,
        }
    }

    async fn call(router: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, body)
    }

    fn password_request(user: &str, password: &str, project: &str) -> Request<Body> {
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}});
        Request::post("/v3/auth/tokens")
            .header("Content-Type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    }

    #[tokio::test]
    async fn version_discovery_answers_300_at_the_root() {
        let fixture = fixture().await;
        let (status, _, body) = call(
            &fixture.router,
            Request::get("/").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::MULTIPLE_CHOICES);
        assert_eq!(body["versions"]["values"][0]["id"], "v3.14");
        let (status, _, body) = call(
            &fixture.router,
            Request::get("/v3").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body["version"]["links"][0]["href"],
            "http://127.0.0.1:5000/v3/"
        );
    }

    #[tokio::test]
    async fn password_auth_issues_a_scoped_token_with_catalog() {
        let fixture = fixture().await;
        let (status, headers, body) = call(
            &fixture.router,
            password_request("admin", "s3cret", "admin"),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(headers.get("X-Subject-Token").is_some());
        let token = &body["token"];
        assert_eq!(token["user"]["name"], "admin");
        assert_eq!(token["project"]["name"], "admin");
        assert_eq!(token["project"]["domain"]["name"], "Default");
        let roles: Vec<&str> = token["roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        for role in ["admin", "member", "reader"] {
            assert!(roles.contains(&role), "{roles:?}");
        }
        let expires = token["expires_at"].as_str().unwrap();
        assert!(
            chrono::NaiveDateTime::parse_from_str(expires, "%Y-%m-%dT%H:%M:%S%.6fZ").is_ok(),
            "{expires}"
        );
        let magnum = token["catalog"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["type"] == "container-infra")
            .unwrap();
        assert!(magnum["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["interface"] == "public"
                && e["url"] == "http://127.0.0.1:9511/v1"
                && e["region"] == "RegionOne"));
    }

    #[tokio::test]
    async fn member_roles_imply_reader() {
        let fixture = fixture().await;
        let (status, _, body) =
            call(&fixture.router, password_request("demo", "demopw", "demo")).await;
        assert_eq!(status, StatusCode::CREATED);
        let roles: Vec<&str> = body["token"]["roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(
            roles.contains(&"member") && roles.contains(&"reader") && !roles.contains(&"admin")
        );
    }

    #[tokio::test]
    async fn wrong_password_unknown_user_and_foreign_project_are_401() {
        let fixture = fixture().await;
        for request in [
            password_request("admin", "wrong", "admin"),
            password_request("nobody", "s3cret", "admin"),
            password_request("demo", "demopw", "admin"),
        ] {
            let (status, headers, body) = call(&fixture.router, request).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(body["error"]["code"], 401);
            assert_eq!(body["error"]["title"], "Unauthorized");
            assert!(headers.get("WWW-Authenticate").is_some());
        }
        let (status, _, body) = call(
            &fixture.router,
            Request::post("/v3/auth/tokens")
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], 400);
    }

    #[tokio::test]
    async fn tokens_validate_and_revoke() {
        let fixture = fixture().await;
        let (_, headers, _) = call(
            &fixture.router,
            password_request("admin", "s3cret", "admin"),
        )
        .await;
        let admin_token = headers["X-Subject-Token"].to_str().unwrap().to_string();
        let (_, headers, _) =
            call(&fixture.router, password_request("demo", "demopw", "demo")).await;
        let demo_token = headers["X-Subject-Token"].to_str().unwrap().to_string();
        let validate = |caller: &str, subject: &str, method: &str| {
            Request::builder()
                .method(method)
                .uri("/v3/auth/tokens")
                .header("X-Auth-Token", caller)
                .header("X-Subject-Token", subject)
                .body(Body::empty())
                .unwrap()
        };
        let (status, headers, body) =
            call(&fixture.router, validate(&admin_token, &demo_token, "GET")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["X-Subject-Token"], demo_token.as_str());
        assert_eq!(body["token"]["user"]["name"], "demo");
        let (status, _, _) =
            call(&fixture.router, validate(&admin_token, &demo_token, "HEAD")).await;
        assert_eq!(status, StatusCode::OK);
        // A member may not inspect the admin's token.
        let (status, _, _) =
            call(&fixture.router, validate(&demo_token, &admin_token, "GET")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _, _) = call(&fixture.router, validate(&admin_token, "garbage", "GET")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = call(
            &fixture.router,
            validate(&demo_token, &demo_token, "DELETE"),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _, _) =
            call(&fixture.router, validate(&admin_token, &demo_token, "GET")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn token_method_rescopes_without_extending() {
        let fixture = fixture().await;
        let (_, headers, first) = call(
            &fixture.router,
            password_request("admin", "s3cret", "admin"),
        )
        .await;
        let token = headers["X-Subject-Token"].to_str().unwrap().to_string();
        let body = json!({"auth": {"identity": {"methods": ["token"], "token": {"id": token}},
                                    "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
        let (status, _, second) = call(
            &fixture.router,
            Request::post("/v3/auth/tokens")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(second["token"]["expires_at"].as_str() <= first["token"]["expires_at"].as_str());
    }

    #[tokio::test]
    async fn catalog_and_projects_need_a_token() {
        let fixture = fixture().await;
        let (status, _, _) = call(
            &fixture.router,
            Request::get("/v3/auth/catalog")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (_, headers, _) =
            call(&fixture.router, password_request("demo", "demopw", "demo")).await;
        let token = headers["X-Subject-Token"].to_str().unwrap().to_string();
        let (status, _, body) = call(
            &fixture.router,
            Request::get("/v3/auth/projects")
                .header("X-Auth-Token", &token)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["projects"][0]["name"], "demo");
        assert_eq!(body["projects"].as_array().unwrap().len(), 1);
    }
}
