//! Herald: a release notifier for self-hosted Python projects.
//!
//! Herald watches where a project announces releases (the Python package index, GitHub
//! releases, its blog feed), records every version in SQLite with its class (feature,
//! bugfix, pre-release), and tells the operators who run it what to do about it.
//!
//! # Layout
//!
//! - [`cli`]: one file per subcommand; exit codes.
//! - [`config`]: `HERALD_*` settings and their `--flag` twins, the projects file, the preset.
//! - [`app`]: [`app::App::build`], the one composition root, used by the binary and tests.
//! - [`clock`]: where "now" comes from (the system clock, or a manual one in tests).
//! - [`version`] (pure): PEP 440 parsing, tag normalisation, canonical keys, classes, lines.
//! - [`attribution`] (pure): which tags, release names, feed titles and slugs are a project's,
//!   and which are another package's; the one rule every source applies.
//! - [`model`] (pure): projects, sources, classes, observations, subscribers, and the
//!   upstream facts Herald keeps in its own shape (a release's requirements and known
//!   vulnerabilities, an operator's compatibility override).
//! - [`sources`]: PyPI, GitHub and feed adapters behind one trait; the shared HTTP client
//!   with its conditional-request validators ([`sources::http::Validators`]).
//! - [`merge`] (pure): which observations are one release and which releases are new, from
//!   the releases already recorded ([`merge::KnownRelease`], which `store` reads for it).
//! - [`decide`] (pure): who gets told what, instant or in a digest.
//! - [`inventory`] (pure): what an operator runs, from `NAME==VERSION` or `pip freeze`.
//! - [`compat`] (pure): plugin readiness for a core feature release, with evidence.
//! - [`advice`] (pure): the operator report as data (core status, plugin verdicts, the
//!   pinned upgrade), which `alerts` builds and the outbox stores inside operator alerts.
//! - [`check`]: one run, end to end, and its summary.
//! - [`alerts`]: operator reports (compatibility, upgrade advice, vulnerabilities) and the
//!   update-check answer; a pass loads once, plans purely (`alerts::plan`), then queues.
//! - [`notify`]: the typed outbox ([`notify::outbox`]: every message kind with its payload,
//!   queued by one function for mail and one for channels), the outbox dispatcher (one worker
//!   per SMTP connection, composing each mail in [`notify::compose`]), templates
//!   (minijinja), messages (lettre) and the relay connections Herald opens itself
//!   ([`notify::smtp`]: `TCP_NODELAY`, implicit TLS or STARTTLS, AUTH), and the channel
//!   deliveries beside the mail ([`notify::channels`]: signed webhooks, Matrix, Slack,
//!   Discord, ntfy; the channels file is [`config::channels`]).
//! - [`tokens`]: the signing key, signed and random tokens.
//! - [`store`]: all SQL; SQLite (the default) or PostgreSQL through sqlx, with embedded migrations.
//! - [`schedule`] (pure): cron times in a time zone, jitter, catch-up.
//! - [`serve`]: the daemon: scheduler, dispatcher and web service until a signal.
//! - [`http`]: the axum web service (pages, project histories, the compatibility board, the
//!   advise form, feeds, update check, health, metrics) with conditional answers
//!   ([`http::conditional`]); the client address behind trusted proxies ([`http::forwarded`]).
//! - [`logging`]: tracing to stderr, as text or JSON lines; the CLI's own stderr messages.
//!
//! ## Imports point one way
//!
//! `cli` -> `serve`/`check`/`alerts` -> `sources`/`store`/`notify`/`http` -> the pure modules
//! (`version`, `attribution`, `model`, `merge`, `decide`, `compat`, `advice`, `inventory`,
//! `schedule`), with `config` beside them (pure modules may read the validated settings).
//! House rules:
//!
//! - a pure module imports only pure modules and `config`: nothing from `store`, `sources`,
//!   `notify`, `http`, `app`, `check`, `alerts`, `cli` or `serve`;
//! - an adapter (`sources`, `store`, `notify`) never imports orchestration or a front door
//!   (`check`, `alerts`, `serve`, `http`, `cli`);
//! - there is no import cycle between top-level modules. A type two layers share lives with
//!   its owner below them: transport types with the HTTP client, what Herald stores of an
//!   upstream in `model`, the merge's inputs in `merge`, the operator report in `advice`.
//!
//! `tests/it/layout.rs` reads `src/` and fails, naming file and line, on a forbidden import or a
//! cycle. The dispatcher takes its parts (store, relay and templates, clock, settings) as a
//! [`notify::Mailroom`], which the app hands out; `notify` does not know the app.
//!
//! Functions read as named steps: none is longer than 80 lines (`clippy::too_many_lines`,
//! threshold in `clippy.toml`, switched on below and in `main.rs`; test code is exempt).

#![cfg_attr(not(test), warn(clippy::too_many_lines))]

pub mod advice;
pub mod alerts;
pub mod app;
pub mod attribution;
pub mod check;
pub mod cli;
pub mod clock;
pub mod compat;
pub mod config;
pub mod decide;
pub mod http;
pub mod inventory;
pub mod logging;
pub mod merge;
pub mod model;
pub mod notify;
pub mod schedule;
pub mod serve;
pub mod sources;
pub mod store;
pub mod tokens;
pub mod version;
