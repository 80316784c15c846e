//! Magnum's domain: what a cluster template is, which values are valid, and the rules that
//! upstream Magnum applies to them, written once so the API and the conductor agree.
//!
//! Architecture invariant: this crate does no IO (no database, no network, no clock reads
//! except where a caller passes `now`), and it knows nothing about HTTP. Errors carry a
//! [`DomainErrorKind`] that the API layer maps to status codes.
//!
//! Layout:
//! - [`error`]: the domain error and its kinds.
//! - [`coe`]: container orchestration engines and their network/volume driver matrix.
//! - [`labels`]: label values and the rules for the labels the drivers understand.
//! - [`fields`]: decoding of JSON attributes (strings with bounds, integers, lenient booleans).
//! - [`cluster`]: clusters (2016: bays): create defaults, label merging, patch rules.
//! - [`cluster_template`]: the cluster template (2016: baymodel), its input decoding and validation.
//! - [`patch`]: RFC 6902 patch application with Magnum's rules for internal attributes.
//! - [`lifecycle`]: cluster statuses, operations and the one table of allowed transitions.
//! - [`limits`]: upper bounds on every number a request carries.
//! - [`names`]: generated names such as `zeta-22-template`.

pub mod cluster;
pub mod cluster_template;
pub mod coe;
pub mod error;
pub mod fields;
pub mod labels;
pub mod lifecycle;
pub mod limits;
pub mod names;
pub mod nodegroup;
pub mod patch;

pub use error::{DomainError, DomainErrorKind};

/// Which generation of the Magnum API a request came through.
///
/// The 2016 ("seed") API speaks of bays and baymodels and applies the older validation rules;
/// the current API speaks of clusters and cluster templates. Both work on the same rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiGeneration {
    /// `/v1/baymodels`, `/v1/bays`: the API of February 2016.
    Seed,
    /// `/v1/clustertemplates`, `/v1/clusters`: the microversioned API of today.
    Current,
}

/// Returns true when `value` looks like a UUID: 32 hex digits, with or without the four dashes.
pub fn is_uuid_like(value: &str) -> bool {
    uuid::Uuid::try_parse(value).is_ok()
        && (value.len() == 36 || value.len() == 32)
        && value.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// Normalises a UUID-like string to the dashed lower-case form used in storage.
pub fn normalize_uuid(value: &str) -> Option<String> {
    if !is_uuid_like(value) {
        return None;
    }
    uuid::Uuid::try_parse(value)
        .ok()
        .map(|parsed| parsed.hyphenated().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_like_accepts_dashed_and_plain_hex() {
        assert!(is_uuid_like("0562d357-8641-4759-8fed-8173f02c9633"));
        assert!(is_uuid_like("0562d357864147598fed8173f02c9633"));
        assert!(!is_uuid_like("my-template"));
        assert!(!is_uuid_like("{0562d357-8641-4759-8fed-8173f02c9633}"));
        assert_eq!(
            normalize_uuid("0562D357864147598FED8173F02C9633").as_deref(),
            Some("0562d357-8641-4759-8fed-8173f02c9633")
        );
    }
}
