//! The error every domain rule returns.
//!
//! The kinds mirror the classes of upstream Magnum's exceptions (Invalid, NotFound, Conflict,
//! NotAuthorized, …) without naming HTTP status codes; `magnum-api` owns that mapping.

use std::fmt;

/// The category of a domain failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DomainErrorKind {
    /// The input is malformed or breaks a rule (upstream `Invalid`, HTTP 400).
    Invalid,
    /// A referenced object does not exist or is not visible (HTTP 404).
    NotFound,
    /// The request conflicts with existing state, e.g. an ambiguous name (HTTP 409).
    Conflict,
    /// The caller is not allowed to do this (HTTP 403).
    Forbidden,
    /// The feature exists in the API but is not implemented by this service (HTTP 501).
    NotImplemented,
    /// A service this request needs (a cloud's image or network service, say) cannot be
    /// asked now; trying again later may work (HTTP 503).
    Unavailable,
}

/// A domain rule was broken; `message` is the user-facing text (upstream wording).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainError {
    pub kind: DomainErrorKind,
    pub message: String,
}

impl DomainError {
    pub fn new(kind: DomainErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(DomainErrorKind::Invalid, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(DomainErrorKind::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(DomainErrorKind::Conflict, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(DomainErrorKind::Forbidden, message)
    }

    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(DomainErrorKind::NotImplemented, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(DomainErrorKind::Unavailable, message)
    }

    /// The message for a field that failed its type or bound check, in the wording of
    /// upstream's request decoder.
    pub fn invalid_field(field: &str, value: impl fmt::Display, reason: &str) -> Self {
        Self::invalid(format!(
            "Invalid input for field/attribute {field}. Value: '{value}'. {reason}"
        ))
    }
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DomainError {}
