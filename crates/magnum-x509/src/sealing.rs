//! Sealing private keys for storage: AES-256-GCM with the service's key-encryption key, a
//! fresh nonce per seal. Sealed text is `v1:<base64(nonce ‖ ciphertext)>`.

use crate::X509Error;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

const PREFIX: &str = "v1:";

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

    pub fn seal(&self, secret: &str) -> Result<String, X509Error> {
        let nonce_bytes: [u8; 12] = rand::random();
        let ciphertext = self
            .cipher
            .encrypt(&Nonce::from(nonce_bytes), secret.as_bytes())
            .map_err(|_| X509Error::Crypto("sealing failed".to_string()))?;
        let mut sealed = nonce_bytes.to_vec();
        sealed.extend(ciphertext);
        Ok(format!("{PREFIX}{}", STANDARD.encode(sealed)))
    }

    pub fn unseal(&self, sealed: &str) -> Result<String, X509Error> {
        let invalid = || {
            X509Error::Crypto("a sealed key is damaged or was sealed with another key".to_string())
        };
        let encoded = sealed.strip_prefix(PREFIX).ok_or_else(invalid)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| invalid())?;
        if bytes.len() < 12 {
            return Err(invalid());
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| invalid())?;
        let clear = self
            .cipher
            .decrypt(&Nonce::from(nonce), ciphertext)
            .map_err(|_| invalid())?;
        String::from_utf8(clear).map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_the_same_key() {
        let sealer = KeySealer::new(&[1u8; 32]).unwrap();
        let sealed = sealer.seal("-----BEGIN PRIVATE KEY-----").unwrap();
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("PRIVATE"));
        assert_ne!(sealed, sealer.seal("-----BEGIN PRIVATE KEY-----").unwrap());
        assert_eq!(
            sealer.unseal(&sealed).unwrap(),
            "-----BEGIN PRIVATE KEY-----"
        );
        assert!(KeySealer::new(&[2u8; 32]).unwrap().unseal(&sealed).is_err());
        assert!(sealer.unseal("v1:AAAA").is_err());
        assert!(KeySealer::new(&[1u8; 16]).is_err());
    }
}
