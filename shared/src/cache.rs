//! A small in-process cache whose entries are trusted for a fixed time after they were made.
//!
//! Used where a value changes seldom and is read on every request: the national figures (they
//! change only at a refresh) and their rendered pages, and staff sessions (re-read from the
//! database once per recheck interval rather than on every page). A lock around a `HashMap` is
//! enough: entries are few, looked up by value and cloned as an `Arc`, so the lock is held for a
//! hash lookup and nothing more.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub struct TtlCache<K, V> {
    ttl: Duration,
    max: usize,
    entries: Mutex<HashMap<K, (Instant, Arc<V>)>>,
}

impl<K: Hash + Eq, V> TtlCache<K, V> {
    /// Entries are trusted for `ttl` after they were made; at most `max` are kept (when full, the
    /// stale ones go first, and if none is stale, all of them: the cache only ever saves work).
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self { ttl, max: max.max(1), entries: Mutex::default() }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, (Instant, Arc<V>)>> {
        // A panic elsewhere while holding the lock leaves a map that is still whole.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value for `key` if it was made less than the cache's time ago.
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        let entries = self.lock();
        let (made, value) = entries.get(key)?;
        (made.elapsed() < self.ttl).then(|| value.clone())
    }

    /// Keeps `value` for `key` from now on, and returns it as shared.
    pub fn insert(&self, key: K, value: V) -> Arc<V> {
        self.insert_made_at(key, value, Instant::now())
    }

    /// Keeps `value` for `key` as made at `made` (when the read it comes from began: its time
    /// runs from then, not from when the read ended).
    pub fn insert_made_at(&self, key: K, value: V, made: Instant) -> Arc<V> {
        let value = Arc::new(value);
        let now = Instant::now();
        if now.duration_since(made) >= self.ttl {
            return value;
        }
        let mut entries = self.lock();
        if entries.len() >= self.max && !entries.contains_key(&key) {
            entries.retain(|_, (made, _)| now.duration_since(*made) < self.ttl);
            if entries.len() >= self.max {
                entries.clear();
            }
        }
        entries.insert(key, (made, value.clone()));
        value
    }

    /// Forgets `key` at once (a session ended here, say).
    pub fn remove(&self, key: &K) {
        self.lock().remove(key);
    }

    /// The value for `key`, from the cache while fresh, else made by `make` and kept.
    pub fn get_or_try<E>(&self, key: K, make: impl FnOnce() -> Result<V, E>) -> Result<Arc<V>, E> {
        if let Some(value) = self.get(&key) {
            return Ok(value);
        }
        Ok(self.insert(key, make()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_trusted_for_their_time_and_then_made_again() {
        let cache = TtlCache::new(Duration::from_millis(50), 10);
        let mut made = 0;
        let mut read = || {
            *cache
                .get_or_try::<()>("k", || {
                    Ok({
                        made += 1;
                        made
                    })
                })
                .unwrap()
        };
        assert_eq!(read(), 1);
        assert_eq!(read(), 1, "fresh: not made again");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(read(), 2, "stale: made again");
    }

    #[test]
    fn removed_and_zero_time_entries_are_never_served() {
        let cache = TtlCache::new(Duration::from_secs(60), 10);
        cache.insert("a", 1);
        cache.remove(&"a");
        assert_eq!(cache.get(&"a"), None);
        let never = TtlCache::new(Duration::ZERO, 10);
        never.insert("a", 1);
        assert_eq!(never.get(&"a"), None);
    }

    #[test]
    fn a_full_cache_stays_within_its_size() {
        let cache = TtlCache::new(Duration::from_secs(60), 3);
        for i in 0..10 {
            cache.insert(i, i);
            assert!(cache.lock().len() <= 3);
        }
        assert_eq!(cache.get(&9).as_deref(), Some(&9), "the newest is kept");
    }
}
