//! Identity for Magnum-rs: who is calling the API.
//!
//! Three strategies (`[api] auth_strategy`) produce a [`RequestContext`] for every API request:
//! - `builtin`: the Keystone v3 subset this crate serves itself ([`server`], [`service`]), with
//!   users, projects and roles in the database ([`admin`]), argon2 password hashes
//!   ([`password`]) and signed, expiring, revocable tokens ([`token`], [`revocation`]);
//! - `keystone`: tokens validated by a real Keystone with a bounded cache ([`keystone`]);
//! - `noauth`: identity headers trusted as sent, for development ([`auth`]).
//!
//! Architecture invariant: this crate knows nothing of Magnum's resources or policy; it only
//! says who the caller is.

pub mod admin;
pub mod auth;
pub mod context;
pub mod keystone;
pub mod password;
pub mod revocation;
pub mod secrets;
pub mod server;
pub mod service;
pub mod token;

pub use auth::{AuthError, Authenticator, NoauthDefaults};
pub use context::RequestContext;
pub use revocation::RevocationList;
pub use service::{Catalog, IdentityService};
pub use token::TokenSigner;
