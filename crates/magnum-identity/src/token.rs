//! Self-contained signed tokens of the built-in identity.
//!
//! A token is `mr1.<claims>.<signature>`: the claims are base64url JSON, the signature an
//! HMAC-SHA256 over the prefix and claims with a key kept in the state directory. Any process
//! holding the key checks a token without a database query; revocation is a list of audit ids
//! (see [`crate::revocation`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const PREFIX: &str = "mr1";

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    #[serde(rename = "u")]
    pub user_id: String,
    #[serde(rename = "un")]
    pub user_name: String,
    #[serde(rename = "ud")]
    pub user_domain_id: String,
    /// None for an unscoped token.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(rename = "pn", default, skip_serializing_if = "Option::is_none")]
    pub project_name: Option<String>,
    #[serde(rename = "pd", default, skip_serializing_if = "Option::is_none")]
    pub project_domain_id: Option<String>,
    /// (role id, role name) pairs on the project, implied roles included.
    #[serde(rename = "r", default)]
    pub roles: Vec<(String, String)>,
    #[serde(rename = "m")]
    pub methods: Vec<String>,
    #[serde(rename = "a")]
    pub audit_id: String,
    /// The audit id of the token this one was re-scoped from (the first of the chain):
    /// revoking that token revokes this one too.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub audit_chain: Option<String>,
    /// Unix time in microseconds.
    #[serde(rename = "i")]
    pub issued_at_micros: i64,
    #[serde(rename = "e")]
    pub expires_at_micros: i64,
}

impl TokenClaims {
    pub fn issued_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.issued_at_micros).unwrap_or_default()
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.expires_at_micros).unwrap_or_default()
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token has been revoked")]
    Revoked,
}

/// Signs and checks tokens with one key.
#[derive(Clone)]
pub struct TokenSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(***)")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl TokenSigner {
    /// A signer from a key of at least 32 bytes.
    pub fn new(key: &[u8]) -> Result<TokenSigner, String> {
        if key.len() < 32 {
            return Err("the token signing key must have at least 32 bytes".to_string());
        }
        Ok(TokenSigner { key: key.to_vec() })
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        #[allow(clippy::expect_used)]
        HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    pub fn sign(&self, claims: &TokenClaims) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let encoded = URL_SAFE_NO_PAD.encode(payload);
        let signed_part = format!("{PREFIX}.{encoded}");
        let mut mac = self.mac();
        mac.update(signed_part.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signed_part}.{signature}")
    }

    /// Checks signature and expiry (not revocation) and returns the claims.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<TokenClaims, TokenError> {
        let (signed_part, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (prefix, encoded) = signed_part.split_once('.').ok_or(TokenError::Malformed)?;
        if prefix != PREFIX {
            return Err(TokenError::Malformed);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(signed_part.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| TokenError::Malformed)?;
        let claims: TokenClaims =
            serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.expires_at_micros <= now.timestamp_micros() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// A fresh audit id: 16 random bytes, URL-safe base64 (as Keystone makes them).
pub fn new_audit_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(expires_in_seconds: i64) -> TokenClaims {
        let now = Utc::now();
        TokenClaims {
            user_id: "u1".to_string(),
            user_name: "alice".to_string(),
            user_domain_id: "default".to_string(),
            project_id: Some("p1".to_string()),
            project_name: Some("demo".to_string()),
            project_domain_id: Some("default".to_string()),
            roles: vec![("r1".to_string(), "member".to_string())],
            methods: vec!["password".to_string()],
            audit_id: new_audit_id(),
            audit_chain: None,
            issued_at_micros: now.timestamp_micros(),
            expires_at_micros: (now + chrono::Duration::seconds(expires_in_seconds))
                .timestamp_micros(),
        }
    }

    #[test]
    fn signed_tokens_verify_and_round_trip() {
        let signer = TokenSigner::new(&[7u8; 32]).unwrap();
        let original = claims(60);
        let token = signer.sign(&original);
        assert!(token.starts_with("mr1."));
        assert_eq!(signer.verify(&token, Utc::now()), Ok(original));
    }

    #[test]
    fn tampering_expiry_and_other_keys_are_refused() {
        let signer = TokenSigner::new(&[7u8; 32]).unwrap();
        let token = signer.sign(&claims(60));
        let other = TokenSigner::new(&[8u8; 32]).unwrap();
        assert_eq!(
            other.verify(&token, Utc::now()),
            Err(TokenError::BadSignature)
        );
        let mut tampered = token.clone();
        tampered.insert(6, 'x');
        assert!(signer.verify(&tampered, Utc::now()).is_err());
        let expired = signer.sign(&claims(-1));
        assert_eq!(
            signer.verify(&expired, Utc::now()),
            Err(TokenError::Expired)
        );
        assert_eq!(
            signer.verify("notused", Utc::now()),
            Err(TokenError::Malformed)
        );
        assert!(TokenSigner::new(&[1u8; 8]).is_err());
    }
}
