//! Herald's integration tests as one test binary: one module per area, all sharing the
//! harness in `tests/common` (one link instead of one per file). Run one area with a filter,
//! e.g. `cargo test --test it mail::`.
//!
//! `tests/statements.rs` stays a binary of its own: it installs a process-wide tracing
//! subscriber to count sqlx's statements, which every other test here would add to.

#[path = "../common/mod.rs"]
mod common;

mod alerts;
mod attribution;
mod backup;
mod browser_e2e;
mod browser_harness;
mod browser_pages;
mod channels;
mod check_runs;
mod copy_db;
mod crash;
mod data_safety;
mod documents;
mod feeds;
mod fuzz_regressions;
mod hostile;
mod instances;
mod layout;
mod mail;
mod operations;
mod pages;
mod pep440;
mod pretalx_history;
mod proxy;
mod repository;
mod scheduler;
mod secrets;
mod serve;
mod smtp_sink;
mod smtp_tls;
mod store;
mod systemd;
mod templates;
mod web;
