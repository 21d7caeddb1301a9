//! Logging: tracing to stderr, filtered by `HERALD_LOG` (or `RUST_LOG`), default `info` for
//! Herald and `warn` for its dependencies, in one of two formats (`HERALD_LOG_FORMAT`):
//!
//! - `text` (default): one human line per event; colour only when stderr is a terminal and
//!   `NO_COLOR` is unset, so a cron line's `>> herald.log 2>&1` stays plain text;
//! - `json`: one JSON object per line (`timestamp`, `level`, `message`, the event's fields and
//!   the enclosing span's fields under `span`, e.g. the run id), for journald, Loki and friends.
//!
//! The command line's own messages on stderr (errors, a refused command line) go through
//! [`say`], so that in JSON mode every stderr line is JSON.
//!
//! Owns: the subscriber and the stderr message format. Does not own: what is logged, nor
//! masking what must not be (see [`crate::model::mask_email`]).

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

/// How stderr lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The severity of a [`say`] message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something failed.
    Error,
    /// Something needs attention.
    Warn,
    /// For information.
    Info,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
        }
    }
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The format chosen at start ([`LogFormat::Text`] before [`init`]).
pub fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

/// The format named by `HERALD_LOG_FORMAT`, for messages printed before the command line is
/// parsed (an unreadable `.env`, a usage error).
pub fn format_from_env() -> LogFormat {
    match std::env::var("HERALD_LOG_FORMAT") {
        Ok(value) if value.trim().eq_ignore_ascii_case("json") => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// Whether human output on stderr may use colour: a terminal, and `NO_COLOR` unset or empty
/// (no-color.org).
pub fn colour_on_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the stderr subscriber once; later calls do nothing.
pub fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
    let filter = std::env::var("HERALD_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new("warn,herald=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(colour_on_stderr()).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_ansi(false)
            .try_init(),
    };
}

/// Prints one of the command line's own messages on stderr: `herald: TEXT` in the text
/// format, a JSON object with `message` and `fields` in the JSON format.
pub fn say(level: Level, text: &str, fields: &[(&str, &str)]) {
    say_in(format(), level, text, fields);
}

/// [`say`] in a given format (for messages before [`init`]).
pub fn say_in(format: LogFormat, level: Level, text: &str, fields: &[(&str, &str)]) {
    let line = match format {
        LogFormat::Text => format!("herald: {text}"),
        LogFormat::Json => json_line(level, text, fields),
    };
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
}

fn json_line(level: Level, text: &str, fields: &[(&str, &str)]) -> String {
    let mut object = serde_json::Map::new();
    object.insert(
        "timestamp".into(),
        chrono::Utc::now()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            .into(),
    );
    object.insert("level".into(), level.as_str().into());
    object.insert("message".into(), text.into());
    for (name, value) in fields {
        object.insert((*name).to_string(), (*value).into());
    }
    object.insert("target".into(), "herald".into());
    serde_json::Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_line_is_one_object_with_the_expected_fields() {
        let line = json_line(
            Level::Warn,
            "pretalx: pypi failed: \"500\"\nnext line",
            &[("project", "pretalx"), ("source", "pypi")],
        );
        assert!(!line.contains('\n'), "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(value["level"], "WARN");
        assert_eq!(value["project"], "pretalx");
        assert_eq!(value["source"], "pypi");
        assert_eq!(value["message"], "pretalx: pypi failed: \"500\"\nnext line");
        assert!(
            chrono::DateTime::parse_from_rfc3339(value["timestamp"].as_str().unwrap_or("")).is_ok()
        );
    }
}
