//! What can go wrong calling an OpenStack service, and the message a service put in its
//! error body (each project nests it differently).

use serde_json::Value;

/// The longest message kept from an error body.
const MAX_MESSAGE_CHARS: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenStackError {
    /// No answer: refused connection, timeout, broken response.
    #[error("{service} could not be reached: {reason}")]
    Unreachable {
        service: &'static str,
        reason: String,
    },
    /// An answer with an error status.
    #[error("{service} answered {status}: {message}")]
    Refused {
        service: &'static str,
        status: u16,
        message: String,
    },
    /// The catalog has no endpoint for a service.
    #[error("no {interface} endpoint of service type {service_type}{region} in the catalog")]
    NoEndpoint {
        service_type: String,
        interface: String,
        region: String,
    },
    /// An answer that is not what the API promises.
    #[error("{0}")]
    Malformed(String),
}

impl OpenStackError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            OpenStackError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Whether trying again later may succeed: no answer, or the service's own trouble
    /// (5xx), as opposed to a refusal of the request itself.
    pub fn is_unavailable(&self) -> bool {
        match self {
            OpenStackError::Unreachable { .. } => true,
            OpenStackError::Refused { status, .. } => *status >= 500,
            OpenStackError::NoEndpoint { .. } | OpenStackError::Malformed(_) => false,
        }
    }

    pub(crate) fn unreachable(service: &'static str, error: &reqwest::Error) -> OpenStackError {
        let reason = if error.is_timeout() {
            "the call timed out".to_string()
        } else if error.is_connect() {
            "the connection failed".to_string()
        } else {
            // reqwest's text names the URL; keep only what went wrong.
            error.without_url_text()
        };
        OpenStackError::Unreachable { service, reason }
    }

    /// The error of a non-success answer, with the message from its body.
    pub(crate) async fn from_response(
        service: &'static str,
        response: reqwest::Response,
    ) -> OpenStackError {
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        OpenStackError::Refused {
            service,
            status,
            message: message_of(&text),
        }
    }
}

trait WithoutUrlText {
    fn without_url_text(&self) -> String;
}

impl WithoutUrlText for reqwest::Error {
    fn without_url_text(&self) -> String {
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(self);
        let mut last = None;
        while let Some(error) = source {
            last = Some(error.to_string());
            source = error.source();
        }
        last.unwrap_or_else(|| "the call failed".to_string())
    }
}

/// The human message of an OpenStack error body: Keystone's `error.message`, Heat's
/// `error.message` or `explanation`, Nova's `{"itemNotFound": {"message"}}`, Neutron's
/// `NeutronError.message`, Octavia's `faultstring`, else the text itself (shortened).
pub fn message_of(text: &str) -> String {
    let message = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|body| find_message(&body))
        .unwrap_or_else(|| text.trim().to_string());
    let mut shortened: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    if shortened.len() < message.len() {
        shortened.push('…');
    }
    shortened
}

fn find_message(body: &Value) -> Option<String> {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_string);
    text(body.pointer("/error/message"))
        .or_else(|| text(body.get("faultstring")))
        .or_else(|| text(body.pointer("/NeutronError/message")))
        .or_else(|| text(body.get("explanation")))
        .or_else(|| text(body.get("message")))
        .or_else(|| {
            // Nova and Glance: one top-level object named after the fault.
            let object = body.as_object()?;
            object.values().find_map(|inner| text(inner.get("message")))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_found_where_each_service_puts_them() {
        assert_eq!(
            message_of(
                r#"{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}"#
            ),
            "The request you have made requires authentication."
        );
        assert_eq!(
            message_of(
                r#"{"explanation": "The resource could not be found.", "code": 404, "error": {"message": "The Stack (x) could not be found.", "type": "EntityNotFound"}, "title": "Not Found"}"#
            ),
            "The Stack (x) could not be found."
        );
        assert_eq!(
            message_of(
                r#"{"itemNotFound": {"code": 404, "message": "Flavor m1.huge could not be found."}}"#
            ),
            "Flavor m1.huge could not be found."
        );
        assert_eq!(
            message_of(
                r#"{"NeutronError": {"type": "NetworkNotFound", "message": "Network x could not be found.", "detail": ""}}"#
            ),
            "Network x could not be found."
        );
        assert_eq!(
            message_of(r#"{"faultcode": "Client", "faultstring": "Load Balancer x not found."}"#),
            "Load Balancer x not found."
        );
        assert_eq!(message_of("<html>gateway</html>"), "<html>gateway</html>");
        assert_eq!(
            message_of(&"x".repeat(900)).chars().count(),
            MAX_MESSAGE_CHARS + 1
        );
    }

    #[test]
    fn only_the_services_own_trouble_is_worth_retrying() {
        let refused = |status| OpenStackError::Refused {
            service: "heat",
            status,
            message: String::new(),
        };
        assert!(refused(503).is_unavailable());
        assert!(!refused(400).is_unavailable());
        assert!(refused(404).is_not_found());
        assert!(OpenStackError::Unreachable {
            service: "heat",
            reason: String::new()
        }
        .is_unavailable());
    }
}
