//! Conditional answers for the read-only pages and feeds: each answer carries an `ETag` (a hash
//! of its body) and a `Last-Modified` (the last recorded change that altered it), a matching
//! `If-None-Match` or `If-Modified-Since` gets `304 Not Modified`, and rendered bodies are kept
//! in memory until the store's change marker moves, so a repeated request costs one small
//! query instead of a listing and a render.
//!
//! Owns: the cache (bounded in entries and bytes, emptied on every change), validator
//! comparison and the caching headers. Does not own: what a page shows (`pages`, `api`,
//! `board`) or the change marker itself (`store`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, SubsecRound, Utc};
use sha2::{Digest, Sha256};

use super::HttpError;

/// At most this many answers are kept.
const MAX_ENTRIES: usize = 256;
/// At most this many body bytes are kept, all answers together.
const MAX_BYTES: usize = 32 * 1024 * 1024;

/// How long clients may reuse an answer without asking again.
#[derive(Debug, Clone, Copy)]
pub enum Freshness {
    /// Feeds: feed readers poll; a quarter of an hour is plenty for daily checks.
    Feed,
    /// Pages: browsers keep them but ask again each time (a `304` costs next to nothing), so
    /// a person never sees a board older than the last check.
    Page,
}

impl Freshness {
    fn header(self) -> HeaderValue {
        match self {
            Freshness::Feed => HeaderValue::from_static("public, max-age=900"),
            Freshness::Page => HeaderValue::from_static("no-cache"),
        }
    }
}

/// A rendered answer and its validators.
#[derive(Debug)]
pub struct Entry {
    body: Bytes,
    content_type: &'static str,
    etag: String,
    last_modified: DateTime<Utc>,
}

#[derive(Default)]
struct Inner {
    serial: Option<i64>,
    entries: HashMap<String, Arc<Entry>>,
    bytes: usize,
    /// The validators last given for each key, kept across changes: an answer a change did
    /// not alter keeps its `Last-Modified`, and one it did alter gets a later one.
    given: HashMap<String, (String, DateTime<Utc>)>,
}

/// The in-memory answers, shared by the handlers.
#[derive(Default)]
pub struct AnswerCache {
    inner: Mutex<Inner>,
    /// One render at a time: concurrent misses wait and find the first one's answer.
    rendering: tokio::sync::Mutex<()>,
}

fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

impl AnswerCache {
    fn lookup(&self, serial: i64, key: &str) -> Option<Arc<Entry>> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.serial != Some(serial) {
            inner.entries.clear();
            inner.serial = Some(serial);
            inner.bytes = 0;
        }
        inner.entries.get(key).cloned()
    }

    fn store(
        &self,
        serial: i64,
        key: &str,
        body: Bytes,
        content_type: &'static str,
        changed_at: DateTime<Utc>,
    ) -> Arc<Entry> {
        let etag = etag_of(&body);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // HTTP dates have whole seconds: a change within the second of the previous answer
        // still moves `Last-Modified` forward, or `If-Modified-Since` would miss it.
        let last_modified = match inner.given.get(key) {
            Some((old, at)) if *old == etag => *at,
            Some((_, at)) => changed_at
                .trunc_subsecs(0)
                .max(*at + chrono::Duration::seconds(1)),
            None => changed_at.trunc_subsecs(0),
        };
        if inner.given.len() >= 4 * MAX_ENTRIES && !inner.given.contains_key(key) {
            inner.given.clear();
        }
        inner
            .given
            .insert(key.to_string(), (etag.clone(), last_modified));
        let entry = Arc::new(Entry {
            body,
            content_type,
            etag,
            last_modified,
        });
        if inner.serial == Some(serial)
            && inner.entries.len() < MAX_ENTRIES
            && inner.bytes + entry.body.len() <= MAX_BYTES
        {
            inner.bytes += entry.body.len();
            inner.entries.insert(key.to_string(), entry.clone());
        }
        entry
    }

    /// The answer for `key` (the path and query): from memory when nothing changed since it
    /// was rendered, else from `render`; `304` when the request's validators match.
    pub async fn answer<F, Fut>(
        &self,
        store: &crate::store::Store,
        request: &HeaderMap,
        key: &str,
        freshness: Freshness,
        render: F,
    ) -> Result<Response, HttpError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(&'static str, String), HttpError>>,
    {
        let change = store.last_change().await?;
        let entry = match self.lookup(change.serial, key) {
            Some(entry) => entry,
            None => {
                let _turn = self.rendering.lock().await;
                match self.lookup(change.serial, key) {
                    Some(entry) => entry,
                    None => {
                        let (content_type, body) = render().await?;
                        self.store(
                            change.serial,
                            key,
                            Bytes::from(body),
                            content_type,
                            change.at,
                        )
                    }
                }
            }
        };
        Ok(respond(&entry, request, freshness))
    }
}

/// Whether the request's validators say the client has this answer already. `If-None-Match`
/// wins over `If-Modified-Since` (RFC 9110, 13.2.2); ETags compare weakly.
fn not_modified(entry: &Entry, request: &HeaderMap) -> bool {
    if let Some(tags) = request.get(header::IF_NONE_MATCH) {
        let Ok(tags) = tags.to_str() else {
            return false;
        };
        return tags
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == entry.etag.as_str());
    }
    request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|since| {
            let since: DateTime<Utc> = since.into();
            entry.last_modified <= since
        })
}

fn respond(entry: &Entry, request: &HeaderMap, freshness: Freshness) -> Response {
    let fresh = not_modified(entry, request);
    let mut response = if fresh {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(Body::from(entry.body.clone()))
    };
    let headers = response.headers_mut();
    if !fresh {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(entry.content_type),
        );
    }
    if let Ok(v) = HeaderValue::from_str(&entry.etag) {
        headers.insert(header::ETAG, v);
    }
    let modified = httpdate::fmt_http_date(entry.last_modified.into());
    if let Ok(v) = HeaderValue::from_str(&modified) {
        headers.insert(header::LAST_MODIFIED, v);
    }
    headers.insert(header::CACHE_CONTROL, freshness.header());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            body: Bytes::from_static(b"x"),
            content_type: "text/plain",
            etag: "\"abc\"".into(),
            last_modified: DateTime::parse_from_rfc3339("2026-07-08T10:00:00Z")
                .map(|d| d.with_timezone(&Utc))
                .unwrap_or_default(),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn validators_compare_as_rfc_9110_says() {
        let e = entry();
        assert!(not_modified(&e, &headers(&[("if-none-match", "\"abc\"")])));
        assert!(not_modified(
            &e,
            &headers(&[("if-none-match", "W/\"abc\"")])
        ));
        assert!(not_modified(
            &e,
            &headers(&[("if-none-match", "\"x\", \"abc\"")])
        ));
        assert!(not_modified(&e, &headers(&[("if-none-match", "*")])));
        assert!(!not_modified(&e, &headers(&[("if-none-match", "\"abd\"")])));
        let later = "Wed, 08 Jul 2026 10:00:01 GMT";
        let earlier = "Wed, 08 Jul 2026 09:59:59 GMT";
        assert!(not_modified(&e, &headers(&[("if-modified-since", later)])));
        assert!(!not_modified(
            &e,
            &headers(&[("if-modified-since", earlier)])
        ));
        assert!(!not_modified(
            &e,
            &headers(&[("if-modified-since", "garbage")])
        ));
        // A non-matching ETag wins over a matching date.
        assert!(!not_modified(
            &e,
            &headers(&[("if-none-match", "\"zzz\""), ("if-modified-since", later)])
        ));
        assert!(!not_modified(&e, &HeaderMap::new()));
    }

    #[test]
    fn an_unchanged_body_keeps_its_last_modified_across_a_change() {
        let cache = AnswerCache::default();
        let t1 = Utc::now() - chrono::Duration::hours(1);
        let t2 = Utc::now();
        assert!(cache.lookup(1, "/a").is_none());
        let first = cache.store(1, "/a", Bytes::from_static(b"same"), "text/plain", t1);
        assert!(cache.lookup(1, "/a").is_some());
        assert!(
            cache.lookup(2, "/a").is_none(),
            "a change empties the cache"
        );
        let again = cache.store(2, "/a", Bytes::from_static(b"same"), "text/plain", t2);
        assert_eq!(again.etag, first.etag);
        assert_eq!(again.last_modified, first.last_modified);
        assert!(cache.lookup(3, "/a").is_none());
        let changed = cache.store(3, "/a", Bytes::from_static(b"new"), "text/plain", t2);
        assert_ne!(changed.etag, first.etag);
        assert_eq!(changed.last_modified, t2.trunc_subsecs(0));
        // Another change in the same second: the date still moves forward.
        assert!(cache.lookup(4, "/a").is_none());
        let again = cache.store(4, "/a", Bytes::from_static(b"newer"), "text/plain", t2);
        assert!(again.last_modified > changed.last_modified);
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = AnswerCache::default();
        let now = Utc::now();
        assert!(cache.lookup(1, "k").is_none());
        for i in 0..(MAX_ENTRIES + 50) {
            cache.store(
                1,
                &format!("k{i}"),
                Bytes::from_static(b"b"),
                "text/plain",
                now,
            );
        }
        let inner = cache.inner.lock().expect("lock");
        assert_eq!(inner.entries.len(), MAX_ENTRIES);
    }
}
