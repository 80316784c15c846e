//! One OpenStack service's REST API as a client sees it: an endpoint from the catalog and
//! calls with a token that turn a refusal into [`OpenStackError`] with the service's own
//! message. Shared by the services magnumd drives ([`crate::heat`], [`crate::leftovers`]).

use crate::OpenStackError;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct ServiceApi {
    http: reqwest::Client,
    endpoint: String,
    service: &'static str,
}

impl ServiceApi {
    /// `service` names it in errors.
    pub fn new(http: reqwest::Client, endpoint: &str, service: &'static str) -> ServiceApi {
        ServiceApi {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            service,
        }
    }

    /// Calls `path` (after the endpoint); any status but success is an error.
    pub async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<reqwest::Response, OpenStackError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.endpoint))
            .header("X-Auth-Token", token)
            .header("Accept", "application/json");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| OpenStackError::unreachable(self.service, &error))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(OpenStackError::from_response(self.service, response).await)
        }
    }

    /// The JSON body of an answer.
    pub async fn json(&self, response: reqwest::Response) -> Result<Value, OpenStackError> {
        response
            .json()
            .await
            .map_err(|error| OpenStackError::unreachable(self.service, &error))
    }

    /// `GET path` as JSON.
    pub async fn get_json(&self, token: &str, path: &str) -> Result<Value, OpenStackError> {
        let response = self.call(token, reqwest::Method::GET, path, None).await?;
        self.json(response).await
    }

    /// `DELETE path`; what the service does not know is already gone.
    pub async fn delete(&self, token: &str, path: &str) -> Result<(), OpenStackError> {
        match self.call(token, reqwest::Method::DELETE, path, None).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_not_found() => Ok(()),
            Err(error) => Err(error),
        }
    }
}
