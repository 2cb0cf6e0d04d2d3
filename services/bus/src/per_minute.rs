//! Counting per key in one-minute windows: how the services bound what a
//! flood of refused requests may write to the stream.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

const MINUTE: Duration = Duration::from_secs(60);

/// Keys whose windows are kept before the ended ones are dropped.
const KEPT: usize = 10_000;

/// Counts events per key; each key's count starts again a minute after its
/// window began.
#[derive(Debug)]
pub struct PerMinute<K> {
    windows: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K> Default for PerMinute<K> {
    fn default() -> Self {
        Self {
            windows: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq> PerMinute<K> {
    /// Counts one more event of `key` now; its count in the current window,
    /// this one included (`u32::MAX` when the counter cannot be read, so
    /// that a caller bounding the count refuses).
    pub fn count(&self, key: K) -> u32 {
        let now = Instant::now();
        let Ok(mut windows) = self.windows.lock() else {
            return u32::MAX;
        };
        if windows.len() > KEPT {
            windows.retain(|_, (start, _)| now.duration_since(*start) < MINUTE);
        }
        let (start, count) = windows.entry(key).or_insert((now, 0));
        if now.duration_since(*start) >= MINUTE {
            *start = now;
            *count = 0;
        }
        *count = count.saturating_add(1);
        *count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_counts_on_its_own() {
        let counter = PerMinute::default();
        assert_eq!(counter.count("a"), 1);
        assert_eq!(counter.count("a"), 2);
        assert_eq!(counter.count("b"), 1);
        assert_eq!(counter.count("a"), 3);
    }
}
