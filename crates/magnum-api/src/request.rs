//! What handlers take from a request: the caller, the base URL for links, the version and
//! a JSON body checked for content type and syntax.

use crate::error::ApiError;
use crate::version::{ApiVersion, MIN_VERSION};
use crate::SharedState;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use magnum_identity::RequestContext;
use serde_json::Value;

/// The authenticated caller.
#[derive(Clone)]
pub struct Caller {
    pub context: RequestContext,
    /// The `context_is_admin` policy rule holds for this caller.
    pub is_admin: bool,
    /// The token the request was authenticated with, if any (passed to providers that act
    /// as the caller). Never logged.
    pub token: Option<String>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("context", &self.context)
            .field("is_admin", &self.is_admin)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Caller {
    /// Who a provider lookup is made for.
    pub fn provider_context(&self) -> magnum_driver::CallerContext {
        magnum_driver::CallerContext {
            project_id: self.context.project_id.clone(),
            user_id: self.context.user_id.clone(),
            roles: self.context.roles.clone(),
            token: self.token.clone(),
        }
    }
}

impl FromRequestParts<SharedState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::framework(
                StatusCode::UNAUTHORIZED,
                "The request you have made requires authentication.",
            )
        })
    }
}

impl FromRequestParts<SharedState> for ApiVersion {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ApiVersion>()
            .copied()
            .unwrap_or(MIN_VERSION))
    }
}

/// The scheme, host and port the API is reached at, without `/v1`.
#[derive(Debug, Clone)]
pub struct BaseUrl(pub String);

impl FromRequestParts<SharedState> for BaseUrl {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(base) = &state.public_base_url {
            return Ok(BaseUrl(base.clone()));
        }
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("127.0.0.1:9511");
        Ok(BaseUrl(format!("http://{host}")))
    }
}

/// Decodes a JSON request body. A content type other than JSON, an empty body or invalid
/// JSON is a 400, never a 500.
pub fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let content_type = content_type
            .to_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        let is_json = media_type == "application/json"
            || (media_type.starts_with("application/") && media_type.ends_with("+json"));
        if !is_json {
            return Err(ApiError::bad_request(format!(
                "Unsupported Content-Type '{media_type}': the request body must be application/json."
            )));
        }
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "The request body is empty; a JSON document is required.",
        ));
    }
    serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request(format!("Malformed JSON in the request body: {error}."))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_type(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
        headers
    }

    #[test]
    fn bodies_must_be_json() {
        let json = Bytes::from_static(b"{\"a\": 1}");
        assert!(json_body(&with_type("application/json; charset=UTF-8"), &json).is_ok());
        assert!(json_body(&HeaderMap::new(), &json).is_ok());
        let refused = json_body(&with_type("text/plain"), &json).unwrap_err();
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(json_body(&HeaderMap::new(), &Bytes::from_static(b"{nope")).is_err());
        assert!(json_body(&HeaderMap::new(), &Bytes::from_static(b"  ")).is_err());
    }
}
