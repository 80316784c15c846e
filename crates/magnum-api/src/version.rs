//! Microversion negotiation (spec §1.3).
//!
//! A request names its version in `OpenStack-API-Version: container-infra 1.X` (the service
//! may also be called `container-infrastructure` or `container-infrastructure-management`),
//! or in the 2016 header `X-OpenStack-Magnum-API-Version`. No header means 1.1; `latest`
//! means 1.14. Versions outside the range, and malformed headers, are answered with 406.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;
use std::fmt;

/// A negotiated API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    pub major: u16,
    pub minor: u16,
}

impl ApiVersion {
    pub const fn new(major: u16, minor: u16) -> Self {
        Self { major, minor }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

pub const MIN_VERSION: ApiVersion = ApiVersion::new(1, 1);
pub const MAX_VERSION: ApiVersion = ApiVersion::new(1, 14);

const SERVICE_NAMES: [&str; 3] = [
    "container-infra",
    "container-infrastructure",
    "container-infrastructure-management",
];
/// The service name answers carry: upstream's `Version.service_string`
/// (magnum/api/controllers/versions.py) is `container-infra`, and its responses put exactly
/// that in all three version headers. The longer names are accepted in requests only.
const RESPONSE_SERVICE: &str = "container-infra";
const HEADER: &str = "openstack-api-version";
const LEGACY_HEADER: &str = "x-openstack-magnum-api-version";

/// Why a version header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionError {
    /// The header names no service of ours.
    InvalidService,
    /// The header is not `<service> <major>.<minor>`.
    InvalidValue,
    /// A well-formed version outside 1.1 … 1.14.
    Unsupported(String),
}

fn parse_number(text: &str) -> Result<ApiVersion, VersionError> {
    if text.eq_ignore_ascii_case("latest") {
        return Ok(MAX_VERSION);
    }
    let (major, minor) = text.split_once('.').ok_or(VersionError::InvalidValue)?;
    let major = major
        .parse::<u16>()
        .map_err(|_| VersionError::InvalidValue)?;
    let minor = minor
        .parse::<u16>()
        .map_err(|_| VersionError::InvalidValue)?;
    let version = ApiVersion::new(major, minor);
    if version < MIN_VERSION || version > MAX_VERSION {
        return Err(VersionError::Unsupported(version.to_string()));
    }
    Ok(version)
}

/// Refuses a request for an API that needs a newer microversion (406, as upstream).
pub fn require(
    version: ApiVersion,
    minimum: ApiVersion,
    what: &str,
) -> Result<(), crate::ApiError> {
    if version >= minimum {
        Ok(())
    } else {
        Err(crate::ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!("Version {version} was requested but the requested API {what} is not supported for this version."),
        ))
    }
}

/// Which header named the version, so the answer can echo the same family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionHeader {
    None,
    Current,
    Legacy,
}

/// Reads the requested version from the headers.
pub fn requested_version(headers: &HeaderMap) -> Result<(ApiVersion, VersionHeader), VersionError> {
    if let Some(value) = headers.get(HEADER) {
        let text = value.to_str().map_err(|_| VersionError::InvalidValue)?;
        let mut saw_entry = false;
        for entry in text.split(',') {
            let mut parts = entry.split_whitespace();
            let (Some(service), Some(number), None) = (parts.next(), parts.next(), parts.next())
            else {
                if entry.trim().is_empty() {
                    continue;
                }
                return Err(VersionError::InvalidValue);
            };
            saw_entry = true;
            if SERVICE_NAMES.contains(&service.to_ascii_lowercase().as_str()) {
                return parse_number(number).map(|version| (version, VersionHeader::Current));
            }
        }
        return Err(if saw_entry {
            VersionError::InvalidService
        } else {
            VersionError::InvalidValue
        });
    }
    if let Some(value) = headers.get(LEGACY_HEADER) {
        let text = value.to_str().map_err(|_| VersionError::InvalidValue)?;
        return parse_number(text.trim()).map(|version| (version, VersionHeader::Legacy));
    }
    Ok((MIN_VERSION, VersionHeader::None))
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(name, value);
    }
}

fn add_version_headers(headers: &mut HeaderMap, version: ApiVersion, family: VersionHeader) {
    insert(
        headers,
        "OpenStack-API-Minimum-Version",
        format!("{RESPONSE_SERVICE} {MIN_VERSION}"),
    );
    insert(
        headers,
        "OpenStack-API-Maximum-Version",
        format!("{RESPONSE_SERVICE} {MAX_VERSION}"),
    );
    insert(
        headers,
        "OpenStack-API-Version",
        format!("{RESPONSE_SERVICE} {version}"),
    );
    headers.append(
        header::VARY,
        HeaderValue::from_static("OpenStack-API-Version"),
    );
    if family == VersionHeader::Legacy {
        insert(
            headers,
            "X-OpenStack-Magnum-API-Minimum-Version",
            MIN_VERSION.to_string(),
        );
        insert(
            headers,
            "X-OpenStack-Magnum-API-Maximum-Version",
            MAX_VERSION.to_string(),
        );
        insert(
            headers,
            "X-OpenStack-Magnum-API-Version",
            version.to_string(),
        );
    }
}

/// Marks a response whose error body is already final, so the error layer leaves it alone.
#[derive(Debug, Clone, Copy)]
pub struct FinalErrorBody;

fn not_acceptable(error: &VersionError) -> Response {
    let body = match error {
        VersionError::Unsupported(requested) => json!({"errors": [{
            "request_id": "",
            "code": "magnum.microversion-unsupported",
            "status": 406,
            "title": "Requested microversion is unsupported",
            "detail": format!(
                "Version {requested} was requested but the minimum supported version is {MIN_VERSION} and the maximum supported version is {MAX_VERSION}."
            ),
            "min_version": MIN_VERSION.to_string(),
            "max_version": MAX_VERSION.to_string(),
            "links": [{"rel": "help", "href": "http://docs.openstack.org/api-guide/compute/microversions.html"}],
        }]}),
        VersionError::InvalidService | VersionError::InvalidValue => {
            let message = if *error == VersionError::InvalidService {
                "Invalid service type for OpenStack-API-Version header"
            } else {
                "Invalid value for OpenStack-API-Version header"
            };
            json!({"errors": [{"request_id": "", "code": "client", "status": 406,
                               "title": message, "detail": message, "links": []}]})
        }
    };
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::NOT_ACCEPTABLE;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.extensions_mut().insert(FinalErrorBody);
    response
}

/// Negotiates the version, makes it available to handlers as an extension, and adds the
/// version headers to the answer.
pub async fn version_layer(mut request: Request, next: Next) -> Response {
    match requested_version(request.headers()) {
        Ok((version, family)) => {
            request.extensions_mut().insert(version);
            let mut response = next.run(request).await;
            add_version_headers(response.headers_mut(), version, family);
            response
        }
        Err(error) => {
            let mut response = not_acceptable(&error);
            add_version_headers(response.headers_mut(), MIN_VERSION, VersionHeader::Current);
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(name, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn missing_header_is_the_minimum_and_latest_is_the_maximum() {
        assert_eq!(requested_version(&HeaderMap::new()).unwrap().0, MIN_VERSION);
        assert_eq!(
            requested_version(&headers("OpenStack-API-Version", "container-infra latest"))
                .unwrap()
                .0,
            MAX_VERSION
        );
    }

    #[test]
    fn all_three_service_names_are_accepted() {
        for service in SERVICE_NAMES {
            let (version, family) = requested_version(&headers(
                "OpenStack-API-Version",
                &format!("{service} 1.10"),
            ))
            .unwrap();
            assert_eq!(version, ApiVersion::new(1, 10));
            assert_eq!(family, VersionHeader::Current);
        }
        assert_eq!(
            requested_version(&headers(
                "OpenStack-API-Version",
                "compute 2.1, container-infra 1.3"
            ))
            .unwrap()
            .0,
            ApiVersion::new(1, 3)
        );
    }

    #[test]
    fn bad_headers_are_classified() {
        let check =
            |value: &str| requested_version(&headers("OpenStack-API-Version", value)).unwrap_err();
        assert_eq!(check("compute 2.1"), VersionError::InvalidService);
        assert_eq!(check("container-infra"), VersionError::InvalidValue);
        assert_eq!(check("container-infra 1.x"), VersionError::InvalidValue);
        assert_eq!(
            check("container-infra 1.15"),
            VersionError::Unsupported("1.15".to_string())
        );
        assert_eq!(
            check("container-infra 2.0"),
            VersionError::Unsupported("2.0".to_string())
        );
        assert_eq!(
            check("container-infra 1.0"),
            VersionError::Unsupported("1.0".to_string())
        );
    }

    #[test]
    fn legacy_header_is_understood() {
        let (version, family) =
            requested_version(&headers("X-OpenStack-Magnum-API-Version", "latest")).unwrap();
        assert_eq!((version, family), (MAX_VERSION, VersionHeader::Legacy));
    }

    #[test]
    fn versions_order_numerically() {
        assert!(ApiVersion::new(1, 10) > ApiVersion::new(1, 9));
        assert_eq!(ApiVersion::new(1, 14).to_string(), "1.14");
    }
}
