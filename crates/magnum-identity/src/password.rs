//! Password hashing with argon2id; hashes are PHC strings that carry their own parameters.
//!
//! A check needs argon2's working memory (19 MiB with the default parameters). Checks reuse
//! buffers from a small pool instead of allocating them each time: the allocator would
//! otherwise keep most of what a burst of logins allocated, and a flood of logins would
//! leave the process hundreds of MiB larger. The caller bounds how many checks run at once,
//! which bounds the pool.

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::Mutex;
use subtle::ConstantTimeEq;

/// The largest argon2 memory a stored hash may ask for (a hash needing more is refused, not
/// computed): 256 MiB.
const MAX_MEMORY_KIB: u32 = 256 * 1024;

/// Working-memory buffers kept for reuse (at most as many as checks run at once).
static BUFFERS: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

/// The most buffers kept for reuse.
const MAX_KEPT_BUFFERS: usize = 16;

/// Hashes a password (slow by design: run it off the async threads).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| format!("cannot hash the password: {error}"))
}

fn take_buffer(blocks: usize) -> Vec<Block> {
    let reused = BUFFERS.lock().ok().and_then(|mut buffers| {
        let position = buffers.iter().position(|buffer| buffer.len() == blocks)?;
        Some(buffers.swap_remove(position))
    });
    reused.unwrap_or_else(|| vec![Block::default(); blocks])
}

fn give_back(buffer: Vec<Block>) {
    if let Ok(mut buffers) = BUFFERS.lock() {
        if buffers.len() < MAX_KEPT_BUFFERS {
            buffers.push(buffer);
        }
    }
}

/// Checks a password against a stored hash; a malformed hash never matches.
pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored_hash) else {
        return false;
    };
    let (Ok(algorithm), Some(expected), Some(salt)) = (
        Algorithm::try_from(parsed.algorithm),
        parsed.hash,
        parsed.salt,
    ) else {
        return false;
    };
    let version = parsed
        .version
        .and_then(|version| Version::try_from(version).ok())
        .unwrap_or_default();
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if params.m_cost() > MAX_MEMORY_KIB {
        return false;
    }
    let mut salt_bytes = [0_u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut computed = vec![0_u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut buffer = take_buffer(params.block_count());
    let hashed = argon2.hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        &mut computed,
        &mut buffer,
    );
    give_back(buffer);
    hashed.is_ok() && bool::from(computed.ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_the_right_password() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("correct horse"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("battery staple", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        // Hashes made elsewhere with other parameters verify too.
        let other = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8192, 2, 1, None).unwrap(),
        )
        .hash_password(b"pw", &SaltString::generate(&mut rand::rngs::OsRng))
        .unwrap()
        .to_string();
        assert!(verify_password("pw", &other));
        assert!(!verify_password("pW", &other));
    }
}
