//! The encoded JSON of list items, kept per row revision.
//!
//! Encoding is most of what a long list costs once its rows come from the row cache: a
//! 100-template page is about 150 KB of JSON, escaped string by string. A row's view only
//! changes with the row's revision (and the base URL of its links), so the encoded item is
//! kept for that revision and pasted into later pages as it is.

use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Which view of which resource an encoded item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewKind {
    /// A cluster template in `/v1/clustertemplates` lists.
    Template,
    /// A baymodel in the 2016 detail list.
    Baymodel,
    /// A baymodel in the 2016 plain list.
    BaymodelSummary,
}

/// The key of an encoded item: its view, row id and row revision.
type Key = (ViewKind, i64, i64);

/// Encoded items, bounded: when full it starts over (items are cheap to encode again).
#[derive(Debug)]
pub struct EncodedViews {
    entries: Mutex<HashMap<Key, (String, Arc<RawValue>)>>,
    capacity: usize,
}

impl Default for EncodedViews {
    fn default() -> Self {
        Self::new(8192)
    }
}

impl EncodedViews {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The encoded `view` of row `id` at `revision` with links under `base`: the kept one,
    /// or `view` encoded now (and kept).
    pub fn get_or_encode<V: Serialize>(
        &self,
        kind: ViewKind,
        id: i64,
        revision: i64,
        base: &str,
        view: impl FnOnce() -> V,
    ) -> Result<Arc<RawValue>, serde_json::Error> {
        let key = (kind, id, revision);
        if let Ok(entries) = self.entries.lock() {
            if let Some((kept_base, encoded)) = entries.get(&key) {
                if kept_base == base {
                    return Ok(encoded.clone());
                }
            }
        }
        let encoded: Arc<RawValue> = Arc::from(serde_json::value::to_raw_value(&view())?);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.capacity && !entries.contains_key(&key) {
                entries.clear();
            }
            entries.insert(key, (base.to_string(), encoded.clone()));
        }
        Ok(encoded)
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
    use serde_json::json;

    #[test]
    fn an_item_is_encoded_once_per_revision_and_base() {
        let views = EncodedViews::new(10);
        let mut encodings = 0;
        let mut encode = |revision: i64, base: &str| {
            views
                .get_or_encode(ViewKind::Template, 1, revision, base, || {
                    encodings += 1;
                    json!({"revision": revision, "base": base})
                })
                .unwrap()
                .get()
                .to_string()
        };
        assert_eq!(encode(0, "http://a"), r#"{"base":"http://a","revision":0}"#);
        assert_eq!(encode(0, "http://a"), r#"{"base":"http://a","revision":0}"#);
        assert_eq!(encode(1, "http://a"), r#"{"base":"http://a","revision":1}"#);
        assert_eq!(encode(1, "http://b"), r#"{"base":"http://b","revision":1}"#);
        assert_eq!(encodings, 3);
    }

    #[test]
    fn a_full_cache_starts_over() {
        let views = EncodedViews::new(2);
        for id in 0..3 {
            views
                .get_or_encode(ViewKind::Baymodel, id, 0, "b", || id)
                .unwrap();
        }
        assert_eq!(views.len(), 1);
    }
}
