//! The service catalog of a Keystone token, and how an endpoint is chosen from it: by
//! service type, interface and region, as `[heat_client]`, `[glance_client]` and the other
//! client sections configure it (upstream's `endpoint_type` and `region_name`).

use crate::OpenStackError;
use serde::Deserialize;

/// Which of a service's endpoints to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    Public,
    Internal,
    Admin,
}

impl Interface {
    /// Parses `public`, `internal`, `admin`, or upstream's `publicURL`, `internalURL` and
    /// `adminURL`.
    pub fn parse(text: &str) -> Option<Interface> {
        match text.trim_end_matches("URL").to_ascii_lowercase().as_str() {
            "public" => Some(Interface::Public),
            "internal" => Some(Interface::Internal),
            "admin" => Some(Interface::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Interface::Public => "public",
            Interface::Internal => "internal",
            Interface::Admin => "admin",
        }
    }
}

/// What to look for in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointFilter {
    /// The service type: `orchestration`, `image`, `compute`, `network`, `load-balancer`.
    pub service_type: String,
    pub interface: Interface,
    /// The region; any region when None.
    pub region: Option<String>,
}

impl EndpointFilter {
    pub fn new(service_type: &str, interface: Interface, region: Option<&str>) -> EndpointFilter {
        EndpointFilter {
            service_type: service_type.to_string(),
            interface,
            region: region.map(str::to_string),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Catalog {
    services: Vec<CatalogService>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
struct CatalogService {
    #[serde(rename = "type")]
    service_type: String,
    #[serde(default)]
    endpoints: Vec<CatalogEndpoint>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
struct CatalogEndpoint {
    interface: String,
    #[serde(default)]
    region_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
    url: String,
}

impl Catalog {
    /// The catalog of a token body (`token.catalog`); an empty one when absent.
    pub fn from_token_body(body: &serde_json::Value) -> Result<Catalog, OpenStackError> {
        match body.pointer("/token/catalog") {
            None | Some(serde_json::Value::Null) => Ok(Catalog::default()),
            Some(catalog) => serde_json::from_value(catalog.clone())
                .map(|services| Catalog { services })
                .map_err(|error| {
                    OpenStackError::Malformed(format!(
                        "the token's catalog is not readable: {error}"
                    ))
                }),
        }
    }

    /// Whether the catalog lists a service type at all (any interface, any region).
    pub fn has_service(&self, service_type: &str) -> bool {
        self.services
            .iter()
            .any(|service| service.service_type == service_type && !service.endpoints.is_empty())
    }

    /// The URL of the endpoint `filter` selects, with a project placeholder in it
    /// (`%(tenant_id)s`, `%(project_id)s`, `$(tenant_id)s`, `$(project_id)s`) replaced by
    /// `project_id`, and no trailing slash.
    pub fn endpoint(
        &self,
        filter: &EndpointFilter,
        project_id: Option<&str>,
    ) -> Result<String, OpenStackError> {
        let region_matches = |endpoint: &CatalogEndpoint| match &filter.region {
            None => true,
            Some(wanted) => {
                endpoint.region_id.as_deref() == Some(wanted)
                    || endpoint.region.as_deref() == Some(wanted)
            }
        };
        let url = self
            .services
            .iter()
            .filter(|service| service.service_type == filter.service_type)
            .flat_map(|service| service.endpoints.iter())
            .find(|endpoint| {
                Interface::parse(&endpoint.interface) == Some(filter.interface)
                    && region_matches(endpoint)
            })
            .map(|endpoint| endpoint.url.clone())
            .ok_or_else(|| OpenStackError::NoEndpoint {
                service_type: filter.service_type.clone(),
                interface: filter.interface.as_str().to_string(),
                region: filter
                    .region
                    .as_ref()
                    .map(|region| format!(" in region {region}"))
                    .unwrap_or_default(),
            })?;
        let mut url = url;
        for placeholder in [
            "%(tenant_id)s",
            "%(project_id)s",
            "$(tenant_id)s",
            "$(project_id)s",
        ] {
            if url.contains(placeholder) {
                let project_id = project_id.ok_or_else(|| {
                    OpenStackError::Malformed(format!(
                        "the {} endpoint needs a project, and the token has none",
                        filter.service_type
                    ))
                })?;
                url = url.replace(placeholder, project_id);
            }
        }
        Ok(url.trim_end_matches('/').to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog() -> Catalog {
        Catalog::from_token_body(&json!({"token": {"catalog": [
            {"type": "orchestration", "name": "heat", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "region": "RegionOne",
                 "url": "http://heat.one/v1/%(tenant_id)s"},
                {"interface": "internal", "region_id": "RegionOne",
                 "url": "http://heat.internal/v1/$(project_id)s/"},
                {"interface": "public", "region_id": "RegionTwo",
                 "url": "http://heat.two/v1/%(tenant_id)s"}]},
            {"type": "image", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "url": "http://glance/"}]},
            {"type": "load-balancer", "endpoints": []}
        ]}}))
        .unwrap()
    }

    #[test]
    fn endpoints_are_chosen_by_type_interface_and_region() {
        let catalog = catalog();
        let heat = |interface, region| {
            catalog.endpoint(
                &EndpointFilter::new("orchestration", interface, region),
                Some("p1"),
            )
        };
        assert_eq!(
            heat(Interface::Public, Some("RegionOne")).unwrap(),
            "http://heat.one/v1/p1"
        );
        assert_eq!(
            heat(Interface::Public, Some("RegionTwo")).unwrap(),
            "http://heat.two/v1/p1"
        );
        assert_eq!(
            heat(Interface::Internal, None).unwrap(),
            "http://heat.internal/v1/p1"
        );
        assert_eq!(
            heat(Interface::Admin, None).unwrap_err().to_string(),
            "no admin endpoint of service type orchestration in the catalog"
        );
        assert_eq!(
            heat(Interface::Public, Some("RegionThree"))
                .unwrap_err()
                .to_string(),
            "no public endpoint of service type orchestration in region RegionThree in the catalog"
        );
        assert_eq!(
            catalog
                .endpoint(&EndpointFilter::new("image", Interface::Public, None), None)
                .unwrap(),
            "http://glance"
        );
        assert!(catalog
            .endpoint(
                &EndpointFilter::new("orchestration", Interface::Public, None),
                None
            )
            .is_err());
        assert!(catalog.has_service("image"));
        assert!(!catalog.has_service("load-balancer"));
        assert!(!catalog.has_service("compute"));
    }

    #[test]
    fn interfaces_are_read_in_both_spellings() {
        assert_eq!(Interface::parse("publicURL"), Some(Interface::Public));
        assert_eq!(Interface::parse("internalURL"), Some(Interface::Internal));
        assert_eq!(Interface::parse("admin"), Some(Interface::Admin));
        assert_eq!(Interface::parse("private"), None);
    }
}
