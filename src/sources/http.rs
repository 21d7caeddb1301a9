//! The HTTP client every source shares: conditional requests, a body size cap, connect and
//! total timeouts, gzip, a `User-Agent` naming Herald, retries with backoff for transient
//! failures, and rate-limit answers turned into a time to come back.
//!
//! Owns: one typed [`FetchError`] whose messages name the method and URL (never a token).
//! Does not own: what the bodies mean (the source adapters parse them).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use regex::Regex;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use url::Url;

use crate::config::HttpSettings;

/// `ETag` / `Last-Modified` of one URL, sent back as `If-None-Match` / `If-Modified-Since`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// The entity tag, exactly as received (quotes and `W/` included).
    pub etag: Option<String>,
    /// The `Last-Modified` value, exactly as received.
    pub last_modified: Option<String>,
    /// The digest of the body (see [`body_digest`]): the same body again, with the same
    /// (or no) validators, is as good as a 304.
    pub digest: Option<String>,
}

impl Validators {
    /// True when there is nothing to send and nothing to compare.
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none() && self.digest.is_none()
    }

    /// Whether the headers to send back are the same (the digest aside).
    pub fn same_headers(&self, other: &Validators) -> bool {
        self.etag == other.etag && self.last_modified == other.last_modified
    }
}

/// The digest stored for a body: XXH3-128, as 32 hex digits. Fast enough to run on every
/// body (several GB/s), and only ever compared with the digest of the same URL's last body.
pub fn body_digest(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// How long to wait after a 429 that says nothing about when to come back.
const DEFAULT_RATE_LIMIT_WAIT: i64 = 60;

/// `User-Agent` sent with every request.
pub const USER_AGENT: &str = concat!("herald/", env!("CARGO_PKG_VERSION"), " (release notifier)");

/// A failed upstream request (the client side; the web service's own error answer is
/// `http::HttpError`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// No complete answer in time.
    #[error("GET {url}: timed out after {seconds:.0}s")]
    Timeout {
        url: String,
        /// The total timeout, in seconds.
        seconds: f64,
    },
    /// The connection could not be made.
    #[error("GET {url}: cannot connect: {detail}")]
    Connect { url: String, detail: String },
    /// An unexpected status.
    #[error("GET {url}: HTTP {status}{detail}")]
    Status {
        url: String,
        /// The status code.
        status: u16,
        /// A short excerpt of the answer.
        detail: String,
    },
    /// The upstream asked us to come back later.
    #[error("GET {url}: rate limited (HTTP {status}); retry after {until}")]
    RateLimited {
        url: String,
        /// 429 or 403.
        status: u16,
        /// When to ask again.
        until: DateTime<Utc>,
    },
    /// The body is larger than allowed.
    #[error("GET {url}: response larger than the {limit}-byte limit (HERALD_MAX_BODY_BYTES)")]
    TooLarge {
        url: String,
        /// `HERALD_MAX_BODY_BYTES`.
        limit: usize,
    },
    /// Anything else on the wire: a redirect loop, a dropped connection, a broken body.
    #[error("GET {url}: {detail}")]
    Transport {
        url: String,
        detail: String,
        /// Whether trying again may help.
        transient: bool,
    },
}

impl FetchError {
    /// Whether a retry may succeed (5xx, timeouts, refused or dropped connections).
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Timeout { .. } | FetchError::Connect { .. } => true,
            FetchError::Status { status, .. } => *status >= 500,
            FetchError::Transport { transient, .. } => *transient,
            FetchError::RateLimited { .. } | FetchError::TooLarge { .. } => false,
        }
    }

    /// When the upstream asked to be left alone until.
    pub fn deferred_until(&self) -> Option<DateTime<Utc>> {
        match self {
            FetchError::RateLimited { until, .. } => Some(*until),
            _ => None,
        }
    }
}

/// One GET request.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub url: &'a Url,
    /// The `Accept` header.
    pub accept: &'a str,
    /// Further headers (marked sensitive where they carry secrets).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Validators from the last successful fetch of this URL.
    pub validators: Option<&'a Validators>,
}

/// A 200 answer.
#[derive(Debug, Clone)]
pub struct Body {
    /// The URL asked for (validators are stored under it).
    pub url: String,
    /// The URL that answered, after redirects.
    pub final_url: Url,
    /// The `Content-Type`, lower-case.
    pub content_type: Option<String>,
    /// The body, decompressed.
    pub bytes: Vec<u8>,
    /// The answer's validators.
    pub validators: Validators,
    /// The `Link: <...>; rel="next"` target.
    pub next_link: Option<String>,
}

/// What a GET produced.
#[derive(Debug, Clone)]
pub enum Fetch {
    /// 304: unchanged since the validators were issued; or a 200 whose body has the digest
    /// stored for the URL and the same validators (an upstream that sends none).
    NotModified,
    /// A new body.
    Modified(Box<Body>),
}

/// Request counters, for run summaries and benchmarks.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Requests sent (retries included).
    pub requests: AtomicU64,
    /// Of which answered 304.
    pub not_modified: AtomicU64,
    /// Body bytes received.
    pub body_bytes: AtomicU64,
    /// Of the requests answered with a body, those whose body was the one recorded last time.
    pub unchanged_bodies: AtomicU64,
}

/// The shared client.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    settings: HttpSettings,
    stats: Arc<HttpStats>,
}

/// Installs the process-wide TLS provider (ring) once. Safe to call repeatedly.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl HttpClient {
    /// Builds the client from the configured limits.
    pub fn new(settings: &HttpSettings) -> Result<HttpClient, FetchError> {
        install_tls_provider();
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .gzip(true)
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()
            .map_err(|err| FetchError::Transport {
                url: String::new(),
                detail: format!("cannot build the HTTP client: {err}"),
                transient: false,
            })?;
        Ok(HttpClient {
            client,
            settings: settings.clone(),
            stats: Arc::new(HttpStats::default()),
        })
    }

    /// Counters since the client was built.
    pub fn stats(&self) -> &HttpStats {
        &self.stats
    }

    /// GETs a URL, retrying transient failures with exponential backoff.
    pub async fn get(&self, req: &Request<'_>, now: DateTime<Utc>) -> Result<Fetch, FetchError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.settings.backoff)
            .with_max_delay(
                self.settings
                    .backoff
                    .saturating_mul(16)
                    .max(Duration::from_millis(1)),
            )
            .with_max_times(self.settings.retries as usize)
            .with_jitter();
        (|| self.get_once(req, now))
            .retry(backoff)
            .when(FetchError::is_transient)
            .notify(|err, wait| {
                tracing::debug!(url = %req.url, error = %err, wait_ms = wait.as_millis() as u64, "retrying");
            })
            .await
    }

    async fn get_once(&self, req: &Request<'_>, now: DateTime<Utc>) -> Result<Fetch, FetchError> {
        let url = req.url.to_string();
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let mut response = self
            .request(req)
            .send()
            .await
            .map_err(|err| self.classify(&url, err))?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            self.stats.not_modified.fetch_add(1, Ordering::Relaxed);
            return Ok(Fetch::NotModified);
        }
        if let Some(until) = rate_limited_until(status, response.headers(), now) {
            return Err(FetchError::RateLimited {
                url,
                status: status.as_u16(),
                until,
            });
        }
        let headers = response.headers().clone();
        let final_url = response.url().clone();
        let bytes = self.read_body(&url, &mut response).await?;
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.to_ascii_lowercase());
        if !status.is_success() {
            return Err(FetchError::Status {
                url,
                status: status.as_u16(),
                detail: excerpt(content_type.as_deref(), &bytes),
            });
        }
        let text = |name: HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let validators = Validators {
            etag: text(header::ETAG),
            last_modified: text(header::LAST_MODIFIED),
            digest: Some(body_digest(&bytes)),
        };
        if let Some(stored) = req.validators
            && stored.digest == validators.digest
            && stored.same_headers(&validators)
        {
            self.stats.unchanged_bodies.fetch_add(1, Ordering::Relaxed);
            return Ok(Fetch::NotModified);
        }
        Ok(Fetch::Modified(Box::new(Body {
            url,
            final_url,
            content_type,
            validators,
            next_link: headers
                .get_all(header::LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_link),
            bytes,
        })))
    }

    /// The GET for `req`, conditional on the stored validators.
    fn request(&self, req: &Request<'_>) -> reqwest::RequestBuilder {
        let mut builder = self
            .client
            .get(req.url.clone())
            .header(header::ACCEPT, req.accept);
        for (name, value) in &req.headers {
            builder = builder.header(name, value);
        }
        let Some(v) = req.validators else {
            return builder;
        };
        let value =
            |text: &Option<String>| text.as_deref().and_then(|t| HeaderValue::from_str(t).ok());
        if let Some(etag) = value(&v.etag) {
            builder = builder.header(header::IF_NONE_MATCH, etag);
        }
        if let Some(lm) = value(&v.last_modified) {
            builder = builder.header(header::IF_MODIFIED_SINCE, lm);
        }
        builder
    }

    /// The body, at most `max_body_bytes` of it (refused early when the length is declared).
    async fn read_body(
        &self,
        url: &str,
        response: &mut reqwest::Response,
    ) -> Result<Vec<u8>, FetchError> {
        let limit = self.settings.max_body_bytes;
        let too_large = || FetchError::TooLarge {
            url: url.to_string(),
            limit,
        };
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > limit {
                        return Err(too_large());
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(err) => return Err(self.classify(url, err)),
            }
        }
        self.stats
            .body_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }

    fn classify(&self, url: &str, err: reqwest::Error) -> FetchError {
        let url = url.to_string();
        if err.is_timeout() {
            return FetchError::Timeout {
                url,
                seconds: self.settings.timeout.as_secs_f64(),
            };
        }
        if err.is_connect() {
            return FetchError::Connect {
                url,
                detail: root_cause(&err),
            };
        }
        if err.is_redirect() {
            return FetchError::Transport {
                url,
                detail: format!(
                    "too many redirects or a redirect loop ({})",
                    root_cause(&err)
                ),
                transient: false,
            };
        }
        FetchError::Transport {
            url,
            detail: format!(
                "connection failed while reading the answer: {}",
                root_cause(&err)
            ),
            transient: true,
        }
    }
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// A one-line excerpt of an error body: the `<title>` of an HTML page, else the start of
/// the text.
fn excerpt(content_type: Option<&str>, bytes: &[u8]) -> String {
    static TITLE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?is)<title[^>]*>(.*?)</title>").expect("static regex"));
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    let picked = TITLE
        .captures(&text)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| text.to_string());
    let flat: String = picked.split_whitespace().collect::<Vec<_>>().join(" ");
    let short: String = flat.chars().take(120).collect();
    match (short.is_empty(), content_type) {
        (true, _) => String::new(),
        (false, Some(ct)) => format!(" ({ct}): {short}"),
        (false, None) => format!(": {short}"),
    }
}

/// The `rel="next"` target of a `Link` header value.
pub fn next_link(value: &str) -> Option<String> {
    static LINK: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r#"<([^>]*)>\s*;\s*rel="?([^";,]*)"?"#).expect("static regex"));
    LINK.captures_iter(value)
        .find(|c| {
            c[2].split_whitespace()
                .any(|rel| rel.eq_ignore_ascii_case("next"))
        })
        .map(|c| c[1].to_string())
}

/// When a 429 or a rate-limit 403 allows the next request: `Retry-After` (seconds or an
/// HTTP date) first, then `x-ratelimit-reset` (epoch seconds), else a minute for a 429.
/// A 403 that is not about rate limits is an ordinary error (returns `None`).
pub fn rate_limited_until(
    status: StatusCode,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let retry_after = text("retry-after").and_then(|v| {
        if let Ok(secs) = v.parse::<i64>() {
            return Some(now + chrono::Duration::seconds(secs.clamp(0, 7 * 24 * 3600)));
        }
        httpdate::parse_http_date(v)
            .ok()
            .map(|at: SystemTime| DateTime::<Utc>::from(at))
    });
    let exhausted = text("x-ratelimit-remaining") == Some("0");
    let reset = text("x-ratelimit-reset")
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(|epoch| DateTime::<Utc>::from_timestamp(epoch, 0));
    let limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN && (retry_after.is_some() || exhausted));
    if !limited {
        return None;
    }
    let until = retry_after
        .or(if exhausted || status == StatusCode::TOO_MANY_REQUESTS {
            reset
        } else {
            None
        })
        .unwrap_or(now + chrono::Duration::seconds(DEFAULT_RATE_LIMIT_WAIT));
    Some(until.max(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        let v = r#"<https://api.github.com/repositories/515435940/issues?per_page=3&page=2>; rel="next", <https://api.github.com/repositories/515435940/issues?per_page=3&page=5>; rel="last""#;
        assert_eq!(
            next_link(v).as_deref(),
            Some("https://api.github.com/repositories/515435940/issues?per_page=3&page=2")
        );
        assert_eq!(next_link(r#"<https://x/?page=1>; rel="prev""#), None);
        assert_eq!(
            next_link(r#"<https://x/?page=3>; rel=NEXT"#).as_deref(),
            Some("https://x/?page=3")
        );
    }

    #[test]
    fn rate_limits() {
        let now = DateTime::<Utc>::from_timestamp(1_658_200_000, 0).expect("ts");
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("120"));
        assert_eq!(
            rate_limited_until(StatusCode::TOO_MANY_REQUESTS, &h, now),
            Some(now + chrono::Duration::seconds(120))
        );
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("1658208999"));
        assert_eq!(
            rate_limited_until(StatusCode::FORBIDDEN, &h, now),
            DateTime::<Utc>::from_timestamp(1_658_208_999, 0)
        );
        assert_eq!(
            rate_limited_until(StatusCode::FORBIDDEN, &HeaderMap::new(), now),
            None
        );
        assert_eq!(
            rate_limited_until(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), now),
            Some(now + chrono::Duration::seconds(60))
        );
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(
            rate_limited_until(StatusCode::TOO_MANY_REQUESTS, &h, now),
            Some(now)
        );
    }

    #[test]
    fn error_excerpts() {
        let html = b"<html><head><title>502 Bad\n Gateway</title></head><body>...</body></html>";
        assert_eq!(
            excerpt(Some("text/html"), html),
            " (text/html): 502 Bad Gateway"
        );
        assert_eq!(excerpt(None, b""), "");
    }
}
