//! Decoded rows kept in memory, keyed by row id and revision.
//!
//! Every write bumps a row's `version` column, so an entry for (id, version) can never be
//! stale: readers ask the database which (id, version) pairs a query matches — a cheap
//! query — and decode full rows only for pairs not seen before. This stays correct when
//! several processes share the database, because the database remains the only source of
//! which revision is current.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A bounded map from row id to (revision, decoded row).
#[derive(Debug)]
pub struct RowCache<T> {
    entries: Mutex<HashMap<i64, (i64, Arc<T>)>>,
    capacity: usize,
}

impl<T> RowCache<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The cached row for `id` at exactly `revision`.
    pub fn get(&self, id: i64, revision: i64) -> Option<Arc<T>> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(&id)
            .filter(|(cached_revision, _)| *cached_revision == revision)
            .map(|(_, row)| row.clone())
    }

    /// Remembers a decoded row; when full, the cache starts over (rows are cheap to reload).
    pub fn put(&self, id: i64, revision: i64, row: Arc<T>) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.capacity && !entries.contains_key(&id) {
                entries.clear();
            }
            entries.insert(id, (revision, row));
        }
    }

    /// Forgets a row (after a delete).
    pub fn forget(&self, id: i64) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&id);
        }
    }

    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .map(|entries| entries.len())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_match_only_their_revision() {
        let cache = RowCache::new(2);
        cache.put(1, 0, Arc::new("first"));
        assert_eq!(cache.get(1, 0).as_deref(), Some(&"first"));
        assert_eq!(cache.get(1, 1), None);
        cache.put(1, 1, Arc::new("second"));
        assert_eq!(cache.get(1, 0), None);
        assert_eq!(cache.get(1, 1).as_deref(), Some(&"second"));
        cache.forget(1);
        assert!(cache.is_empty());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = RowCache::new(2);
        for id in 0..10 {
            cache.put(id, 0, Arc::new(id));
            assert!(cache.len() <= 2);
        }
    }
}
