//! Pre-generated RSA keys, so that making a cluster's CA and certificates does not wait for
//! the prime search (100–300 ms per 2048-bit key here).
//!
//! Nothing is generated ahead until [`warm`] is called (the conductor does, at start); then a
//! background thread keeps a few keys of the requested size in memory. [`take`] hands one
//! out, or generates one on the spot when none is ready. The keys never leave this process.

use crate::{generate_rsa_key_pem, X509Error};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// Keys kept ready: enough for one cluster create (CA, conductor client, one server).
const CAPACITY: usize = 4;

#[derive(Default)]
struct State {
    /// The key size the pool holds; 0 until [`warm`] is called.
    bits: usize,
    keys: Vec<String>,
    filler_started: bool,
}

#[derive(Default)]
struct Pool {
    state: Mutex<State>,
    wanted: Condvar,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(Pool::default)
}

fn lock(pool: &Pool) -> MutexGuard<'_, State> {
    pool.state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts keeping `bits`-long keys ready (idempotent; a new size replaces the old one).
pub fn warm(bits: usize) {
    let pool = pool();
    let mut state = lock(pool);
    if state.bits != bits {
        state.bits = bits;
        state.keys.clear();
    }
    if !state.filler_started {
        state.filler_started = true;
        let spawned = std::thread::Builder::new()
            .name("rsa-key-pool".to_string())
            .spawn(fill);
        if spawned.is_err() {
            state.filler_started = false;
        }
    }
    pool.wanted.notify_one();
}

fn fill() {
    let pool = pool();
    loop {
        let bits = {
            let mut state = lock(pool);
            while state.keys.len() >= CAPACITY || state.bits == 0 {
                state = pool
                    .wanted
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            state.bits
        };
        match generate_rsa_key_pem(bits) {
            Ok(key) => {
                let mut state = lock(pool);
                if state.bits == bits && state.keys.len() < CAPACITY {
                    state.keys.push(key);
                }
            }
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}

/// A new `bits`-long RSA key (PKCS#8 PEM), from the pool when one is ready.
pub fn take(bits: usize) -> Result<String, X509Error> {
    let pool = pool();
    {
        let mut state = lock(pool);
        if state.bits == bits {
            if let Some(key) = state.keys.pop() {
                pool.wanted.notify_one();
                return Ok(key);
            }
        }
    }
    generate_rsa_key_pem(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_never_handed_out_twice_and_the_pool_refills() {
        warm(1024);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while lock(pool()).keys.len() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let first = take(1024).unwrap();
        let second = take(1024).unwrap();
        assert_ne!(first, second);
        assert!(first.starts_with("-----BEGIN PRIVATE KEY-----"));
        // Another size is generated on the spot, never taken from the pool.
        let other = take(1536).unwrap();
        assert!(!lock(pool()).keys.contains(&other));
    }
}
