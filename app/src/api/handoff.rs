//! Secrets shown once (a minted pre-auth key, a new API token) waiting for the page of a
//! JavaScript-free form post: in memory, per person, for five minutes, taken once. The
//! form's answer is a redirect carrying only a random handle to this store.

use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

const TTL: Duration = Duration::from_secs(300);

type Waiting = HashMap<String, (Uuid, Instant, serde_json::Value)>;

fn store() -> &'static Mutex<Waiting> {
    static STORE: OnceLock<Mutex<Waiting>> = OnceLock::new();
    STORE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Keeps `value` for `person`; returns the handle for the redirect.
pub fn put<T: Serialize>(person: Uuid, value: &T) -> String {
    let handle = Uuid::new_v4().simple().to_string();
    let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    let mut s = store().lock().unwrap_or_else(|p| p.into_inner());
    s.retain(|_, (_, at, _)| at.elapsed() < TTL);
    s.insert(handle.clone(), (person, Instant::now(), value));
    handle
}

/// The value behind `handle`, once, and only for the person it was kept for.
pub fn take<T: DeserializeOwned>(person: Uuid, handle: &str) -> Option<T> {
    let mut s = store().lock().unwrap_or_else(|p| p.into_inner());
    match s.get(handle) {
        Some((p, at, _)) if *p == person && at.elapsed() < TTL => s
            .remove(handle)
            .and_then(|(_, _, v)| serde_json::from_value(v).ok()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_taken_once_by_its_person_only() {
        let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let h = put(alice, &"secret".to_string());
        assert_eq!(take::<String>(bob, &h), None);
        assert_eq!(take::<String>(alice, &h).as_deref(), Some("secret"));
        assert_eq!(take::<String>(alice, &h), None);
        assert_eq!(take::<String>(alice, "nothing"), None);
    }
}
