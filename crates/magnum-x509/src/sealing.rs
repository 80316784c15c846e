//! Sealing private keys for storage: AES-256-GCM with the service's key-encryption key, a
//! fresh nonce per seal, and the key's place (its cluster and CA type) as associated data,
//! so a sealed key copied into another cluster's row does not open. Sealed text is
//! `v2:<base64(nonce ‖ ciphertext)>`.

use crate::X509Error;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

const PREFIX: &str = "v2:";

/// What a sealed key belongs to: opening it needs the same binding.
pub fn binding(cluster_uuid: &str, ca_type: &str) -> String {
    format!("magnum-rs sealed key of cluster {cluster_uuid}, type {ca_type}")
}

/// Seals and unseals with one 256-bit key.
#[derive(Clone)]
pub struct KeySealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for KeySealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySealer(***)")
    }
}

impl KeySealer {
    /// A sealer from a 32-byte key.
    pub fn new(key: &[u8]) -> Result<KeySealer, X509Error> {
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| {
            X509Error::Crypto("the key-encryption key must be 32 bytes".to_string())
        })?;
        Ok(KeySealer { cipher })
    }

    /// Seals `secret` for the place `binding` names (see [`binding`]).
    pub fn seal(&self, secret: &str, binding: &str) -> Result<String, X509Error> {
        let nonce_bytes: [u8; 12] = rand::random();
        let payload = Payload {
            msg: secret.as_bytes(),
            aad: binding.as_bytes(),
        };
        let ciphertext = self
            .cipher
            .encrypt(&Nonce::from(nonce_bytes), payload)
            .map_err(|_| X509Error::Crypto("sealing failed".to_string()))?;
        let mut sealed = nonce_bytes.to_vec();
        sealed.extend(ciphertext);
        Ok(format!("{PREFIX}{}", STANDARD.encode(sealed)))
    }

    /// Opens a key sealed for `binding`; fails for a key sealed for another place, with
    /// another key, or damaged.
    pub fn unseal(&self, sealed: &str, binding: &str) -> Result<String, X509Error> {
        let invalid = || {
            X509Error::Crypto(
                "a sealed key is damaged, belongs to another cluster, or was sealed with another key"
                    .to_string(),
            )
        };
        if sealed.starts_with("v1:") {
            return Err(X509Error::Crypto(
                "a sealed key has the unbound v1 format of an early development version; rotate the cluster's CA".to_string(),
            ));
        }
        let encoded = sealed.strip_prefix(PREFIX).ok_or_else(invalid)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| invalid())?;
        if bytes.len() < 12 {
            return Err(invalid());
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| invalid())?;
        let clear = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: binding.as_bytes(),
                },
            )
            .map_err(|_| invalid())?;
        String::from_utf8(clear).map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_the_same_key_and_binding() {
        let sealer = KeySealer::new(&[1u8; 32]).unwrap();
        let here = binding("c1", "kubernetes");
        let sealed = sealer.seal("-----BEGIN PRIVATE KEY-----", &here).unwrap();
        assert!(sealed.starts_with("v2:"));
        assert!(!sealed.contains("PRIVATE"));
        assert_ne!(
            sealed,
            sealer.seal("-----BEGIN PRIVATE KEY-----", &here).unwrap()
        );
        assert_eq!(
            sealer.unseal(&sealed, &here).unwrap(),
            "-----BEGIN PRIVATE KEY-----"
        );
        // Another cluster, another CA type, another key: none opens it.
        assert!(sealer
            .unseal(&sealed, &binding("c2", "kubernetes"))
            .is_err());
        assert!(sealer.unseal(&sealed, &binding("c1", "etcd")).is_err());
        assert!(KeySealer::new(&[2u8; 32])
            .unwrap()
            .unseal(&sealed, &here)
            .is_err());
        assert!(sealer.unseal("v2:AAAA", &here).is_err());
        assert!(sealer.unseal("v1:AAAA", &here).is_err());
        assert!(KeySealer::new(&[1u8; 16]).is_err());
    }
}
