//! The web service of `herald serve` (axum): the health check, the self-service pages
//! (subscribe with double opt-in, confirm, preferences, one-click unsubscribe), the project
//! histories, the plugin compatibility board, the upgrade advice form, the release feeds,
//! pretalx's update-check API and Prometheus metrics. The read-only pages and feeds answer
//! conditionally ([`conditional`]).
//!
//! Owns: routing, request limits (body size, per-client rate limits on the endpoints anyone
//! can call, keyed on the client address that [`forwarded`] finds behind trusted proxies),
//! security headers, and one error type that never leaks internals. Does not own: the data
//! (`store`), the reports (`alerts`) or delivery (`notify`).
//!
//! Every link and form action comes from `HERALD_BASE_URL`; nothing here builds a URL from
//! request data (`Host`, `X-Forwarded-Host`, `X-Forwarded-Proto`).

mod advise;
mod api;
mod board;
pub mod conditional;
pub mod forwarded;
pub mod history;
mod pages;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::App;

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// Largest body of `POST /advise`: a 64 KiB paste, form-encoded (which can triple it).
pub const MAX_ADVISE_BODY: usize = 3 * MAX_BODY + 1024;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct Web {
    /// The app.
    pub app: App,
    /// Requests to `/subscribe` per client.
    subscribe_limit: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Requests to `/api/update-check` per client.
    api_limit: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Reports asked of `POST /advise` per client (the same quota as `/subscribe`).
    advise_limit: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Rendered pages and feeds, answered conditionally.
    pub answers: Arc<conditional::AnswerCache>,
    /// Wakes the dispatcher when a confirmation mail was queued.
    pub mail_wakeup: Arc<tokio::sync::Notify>,
    /// Whether the "proxy speaks HTTPS, base URL says http" warning was logged.
    https_warned: Arc<AtomicBool>,
}

/// An error answer: a status and a message safe to show; details go to the log only.
#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    message: String,
}

impl HttpError {
    /// A client error with a message for the user.
    pub fn client(status: StatusCode, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            message: message.into(),
        }
    }

    /// An internal failure: logged, answered with a generic 500.
    pub fn internal(err: impl std::fmt::Display) -> HttpError {
        tracing::error!("request failed: {err}");
        HttpError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "Something went wrong on our side. Please try again later.".into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for HttpError {
    fn from(err: E) -> HttpError {
        HttpError::internal(format!("{:#}", err.into()))
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.message,
        )
            .into_response()
    }
}

fn limiter(per_minute: u32, burst: u32) -> Arc<DefaultKeyedRateLimiter<IpAddr>> {
    let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
    Arc::new(RateLimiter::keyed(quota))
}

impl Web {
    /// State for `app`.
    pub fn new(app: App) -> Web {
        Web {
            app,
            subscribe_limit: limiter(10, 5),
            api_limit: limiter(120, 30),
            advise_limit: limiter(10, 5),
            answers: Arc::new(conditional::AnswerCache::default()),
            mail_wakeup: Arc::new(tokio::sync::Notify::new()),
            https_warned: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Logs once when a trusted proxy forwards HTTPS requests while `HERALD_BASE_URL` is
    /// plain http: links in mails and pages would then point at the insecure address.
    fn check_forwarded_scheme(&self, peer: IpAddr, headers: &axum::http::HeaderMap) {
        let config = &self.app.config;
        if config.base_url.scheme() == "http"
            && forwarded::forwarded_https(peer, headers, &config.trusted_proxies)
            && !self.https_warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                base_url = %config.base_url,
                "a trusted proxy forwards HTTPS requests, but HERALD_BASE_URL is http: links in \
                 mails and pages use HERALD_BASE_URL, so set it to the public https:// address"
            );
        }
    }
}

/// Per-client limits; the client is the peer, or who a trusted proxy says it forwards for.
async fn rate_limited(
    State(web): State<Web>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    web.check_forwarded_scheme(peer.ip(), request.headers());
    let path = request.uri().path();
    let limit = if path == "/subscribe" && request.method() == axum::http::Method::POST {
        Some(&web.subscribe_limit)
    } else if path == "/api/update-check" {
        Some(&web.api_limit)
    } else if path == "/advise" && request.method() == axum::http::Method::POST {
        Some(&web.advise_limit)
    } else {
        None
    };
    if let Some(limit) = limit
        && limit
            .check_key(&forwarded::client_address(
                peer.ip(),
                request.headers(),
                &web.app.config.trusted_proxies,
            ))
            .is_err()
    {
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests: please wait a minute.",
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return response;
    }
    next.run(request).await
}

/// The router, with limits and headers.
pub fn router(web: Web) -> Router {
    let header = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(
            axum::http::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    };
    let advise = Router::new()
        .route("/advise", get(advise::advise_page).post(advise::advise))
        .layer(RequestBodyLimitLayer::new(MAX_ADVISE_BODY));
    Router::new()
        .route("/", get(pages::index))
        .route("/subscribe", post(pages::subscribe))
        .route("/confirm/{token}", get(pages::confirm_page).post(pages::confirm))
        .route("/preferences/{token}", get(pages::preferences_page).post(pages::preferences))
        .route("/unsubscribe/{token}", get(pages::unsubscribe_page).post(pages::unsubscribe))
        .route("/projects/{name}", get(history::project_page))
        .route("/compat", get(board::compat_page))
        .route("/compat.json", get(board::compat_json))
        .route("/releases.json", get(api::releases_json))
        .route("/releases.atom", get(api::releases_atom))
        .route("/api/update-check", post(api::update_check))
        .route("/healthcheck", get(api::healthcheck))
        .route("/healthcheck/", get(api::healthcheck))
        .route("/metrics", get(api::metrics))
        .fallback(|| async { HttpError::client(StatusCode::NOT_FOUND, "Not found.") })
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .merge(advise)
        .layer(middleware::from_fn_with_state(web.clone(), rate_limited))
        .layer(header("x-content-type-options", "nosniff"))
        .layer(header("x-frame-options", "DENY"))
        .layer(header("referrer-policy", "no-referrer"))
        .layer(header(
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ))
        .with_state(web)
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    web: Web,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(web).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// An HTML page answer.
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}
