//! Configuration: every `HERALD_*` variable (read from the environment and a `.env` file)
//! with its `--flag` twin, validated into one [`Config`] that every adapter takes its
//! addresses, paths and limits from.
//!
//! Owns: defaults, validation and messages for bad values; wrapping secrets so they never
//! print. Does not own: the meaning of the tracked projects (see [`projects`]).

pub mod channels;
pub mod projects;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ipnet::IpNet;
use secrecy::SecretString;
use url::Url;

use crate::model::Project;

/// Settings shared by every command, each from a flag or its `HERALD_*` variable.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Configuration (flags override HERALD_* variables and .env)")]
pub struct Settings {
    /// Database URL: sqlite://PATH (created if missing) or postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "HERALD_DATABASE_URL",
        default_value = "sqlite://herald.db",
        global = true
    )]
    pub database_url: String,

    /// TOML file listing the tracked projects [default: built-in preset: pretalx and its official plugins].
    #[arg(long, env = "HERALD_PROJECTS", global = true, value_name = "FILE")]
    pub projects: Option<PathBuf>,

    /// Base URL of the Python package index.
    #[arg(
        long,
        env = "HERALD_PYPI_URL",
        default_value = "https://pypi.org",
        global = true
    )]
    pub pypi_url: String,

    /// Base URL of the GitHub REST API.
    #[arg(
        long,
        env = "HERALD_GITHUB_API_URL",
        default_value = "https://api.github.com",
        global = true
    )]
    pub github_api_url: String,

    /// GitHub token: raises the API rate limit from 60 to 5,000 requests an hour.
    #[arg(
        long,
        env = "HERALD_GITHUB_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub github_token: Option<String>,

    /// SMTP relay: smtp://host:port, smtp://user:pass@host:587?tls=required or smtps://user:pass@host:465.
    #[arg(long, env = "HERALD_SMTP_URL", hide_env_values = true, global = true)]
    pub smtp_url: Option<String>,

    /// PEM file of certificates to trust for the relay, besides the system's (a private CA, or
    /// a relay's self-signed certificate).
    #[arg(long, env = "HERALD_SMTP_CA_FILE", global = true, value_name = "FILE")]
    pub smtp_ca_file: Option<PathBuf>,

    /// Sender address of Herald's mail.
    #[arg(
        long,
        env = "HERALD_FROM",
        default_value = "herald@localhost",
        global = true
    )]
    pub from: String,

    /// Public URL of the web service, used in links inside mails.
    #[arg(
        long,
        env = "HERALD_BASE_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub base_url: String,

    /// Key for signed tokens [default: generated once into a .secret file beside the SQLite database; required with PostgreSQL].
    #[arg(long, env = "HERALD_SECRET", hide_env_values = true, global = true)]
    pub secret: Option<String>,

    /// Cron expression for `herald serve` (5-field crontab syntax accepted).
    #[arg(
        long,
        env = "HERALD_SCHEDULE",
        default_value = "0 6 * * *",
        global = true
    )]
    pub schedule: String,

    /// Time zone HERALD_SCHEDULE is read in (an IANA name such as Europe/Berlin).
    #[arg(
        long,
        env = "HERALD_TIMEZONE",
        default_value = "UTC",
        global = true,
        value_name = "ZONE"
    )]
    pub timezone: String,

    /// Delay each scheduled run by up to this many seconds (spreads instances sharing a relay or an index).
    #[arg(
        long,
        env = "HERALD_SCHEDULE_JITTER",
        default_value_t = 0,
        global = true,
        value_name = "SECONDS"
    )]
    pub schedule_jitter: u32,

    /// Address `herald serve` listens on.
    #[arg(
        long,
        env = "HERALD_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: String,

    /// Reverse proxies whose forwarding headers (Forwarded, X-Forwarded-For) name the client:
    /// comma-separated addresses or CIDR ranges, e.g. 127.0.0.1,10.0.0.0/8,::1 [default: none].
    #[arg(
        long,
        env = "HERALD_TRUSTED_PROXIES",
        global = true,
        value_name = "ADDRESSES"
    )]
    pub trusted_proxies: Option<String>,

    /// TOML file listing non-mail channels (webhook, matrix, slack, discord, ntfy); see the
    /// README's "Channels" section. `${NAME}` in it reads that environment variable.
    #[arg(long, env = "HERALD_CHANNELS", global = true, value_name = "FILE")]
    pub channels: Option<PathBuf>,

    /// Folder whose files override the built-in email templates, file by file.
    #[arg(long, env = "HERALD_TEMPLATES_DIR", global = true, value_name = "DIR")]
    pub templates_dir: Option<PathBuf>,

    /// Total time allowed for one HTTP request, in seconds.
    #[arg(
        long,
        env = "HERALD_HTTP_TIMEOUT",
        default_value_t = 30.0,
        global = true,
        value_name = "SECONDS"
    )]
    pub http_timeout: f64,

    /// Time allowed to open an HTTP connection, in seconds.
    #[arg(
        long,
        env = "HERALD_CONNECT_TIMEOUT",
        default_value_t = 10.0,
        global = true,
        value_name = "SECONDS"
    )]
    pub connect_timeout: f64,

    /// Extra attempts after a 5xx answer, a timeout or a dropped connection.
    #[arg(long, env = "HERALD_HTTP_RETRIES", default_value_t = 2, global = true)]
    pub http_retries: u32,

    /// Delay before the first retry, in milliseconds; it doubles on each further retry.
    #[arg(
        long,
        env = "HERALD_RETRY_BACKOFF_MS",
        default_value_t = 500,
        global = true,
        value_name = "MS"
    )]
    pub retry_backoff_ms: u64,

    /// Largest response body accepted from an upstream, in bytes.
    #[arg(long, env = "HERALD_MAX_BODY_BYTES", default_value_t = 20 * 1024 * 1024, global = true, value_name = "BYTES")]
    pub max_body_bytes: usize,

    /// SMTP connections (and messages in flight) the dispatcher uses at once.
    #[arg(
        long,
        env = "HERALD_SMTP_CONNECTIONS",
        default_value_t = 4,
        global = true
    )]
    pub smtp_connections: u32,

    /// How long a dispatcher on another host keeps the messages it claimed before this one may
    /// send them (a dispatcher on this host that died gives its claims up at once).
    #[arg(
        long,
        env = "HERALD_CLAIM_SECONDS",
        default_value_t = 600,
        global = true,
        value_name = "SECONDS"
    )]
    pub claim_seconds: u32,

    /// Log format on stderr: text (human lines) or json (one object per line, for journald or Loki).
    #[arg(
        long,
        env = "HERALD_LOG_FORMAT",
        value_enum,
        default_value_t = crate::logging::LogFormat::Text,
        global = true,
        value_name = "FORMAT"
    )]
    pub log_format: crate::logging::LogFormat,

    /// How many upstream requests may run at once.
    #[arg(long, env = "HERALD_CONCURRENCY", default_value_t = 16, global = true)]
    pub concurrency: usize,
}

/// A setting Herald refuses.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable or flag has an unusable value.
    #[error("{name}: {message}")]
    Invalid {
        /// The variable, e.g. `HERALD_PYPI_URL`.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The projects file is refused.
    #[error(transparent)]
    Projects(#[from] projects::ProjectsError),
    /// The channels file is refused.
    #[error(transparent)]
    Channels(#[from] channels::ChannelsError),
}

/// HTTP client limits.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Total time for one request.
    pub timeout: Duration,
    /// Time to connect.
    pub connect_timeout: Duration,
    /// Retries after transient failures.
    pub retries: u32,
    /// First retry delay.
    pub backoff: Duration,
    /// Body size cap.
    pub max_body_bytes: usize,
    /// Concurrent requests.
    pub concurrency: usize,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// sqlx database URL.
    pub database_url: String,
    /// The tracked projects.
    pub projects: Vec<Project>,
    /// Where they came from (a file path or the preset).
    pub projects_origin: String,
    /// Package index base URL.
    pub pypi_url: Url,
    /// GitHub API base URL.
    pub github_api_url: Url,
    /// GitHub token.
    pub github_token: Option<SecretString>,
    /// SMTP relay URL (carries credentials).
    pub smtp_url: Option<SecretString>,
    /// Extra trusted certificates for the relay (PEM file).
    pub smtp_ca_file: Option<PathBuf>,
    /// Sender address.
    pub from: String,
    /// Public base URL of the web service.
    pub base_url: Url,
    /// Token signing key.
    pub secret: Option<SecretString>,
    /// Cron expression for `serve`.
    pub schedule: String,
    /// Jitter added to scheduled runs, in seconds.
    pub schedule_jitter: u32,
    /// Time zone of the schedule.
    pub timezone: chrono_tz::Tz,
    /// Listen address for `serve`.
    pub listen: SocketAddr,
    /// Peers whose forwarding headers are believed (empty: nobody's).
    pub trusted_proxies: Vec<IpNet>,
    /// Template overrides.
    pub templates_dir: Option<PathBuf>,
    /// HTTP limits.
    pub http: HttpSettings,
    /// SMTP connections used at once.
    pub smtp_connections: u32,
    /// Claim duration of the dispatcher, in seconds.
    pub claim_seconds: u32,
    /// Non-mail channels (empty: mail only).
    pub channels: Vec<channels::Channel>,
}

fn url_setting(name: &'static str, value: &str) -> Result<Url, ConfigError> {
    let mut url = projects::parse_http_url(value).map_err(|message| ConfigError::Invalid {
        name,
        message: format!("`{value}`: {message}"),
    })?;
    // Base URLs are joined with relative paths: make sure they end with a slash.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn seconds(name: &'static str, value: f64) -> Result<Duration, ConfigError> {
    if value.is_finite() && value > 0.0 && value <= 3600.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(ConfigError::Invalid {
            name,
            message: format!("`{value}` must be a number of seconds between 0 and 3600"),
        })
    }
}

/// `127.0.0.1, 10.0.0.0/8, ::1` -> ranges; a single address is a range of one.
fn trusted_proxies(value: Option<&str>) -> Result<Vec<IpNet>, ConfigError> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .map(|net| net.trunc())
                .or_else(|_| entry.parse::<IpAddr>().map(|ip| IpNet::from(ip.to_canonical())))
                .map_err(|_| ConfigError::Invalid {
                    name: "HERALD_TRUSTED_PROXIES",
                    message: format!(
                        "`{entry}` is not an IP address or CIDR range (e.g. 127.0.0.1, 10.0.0.0/8, ::1)"
                    ),
                })
        })
        .collect()
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

impl Config {
    /// Validates settings; loads the projects file (or the preset).
    pub fn from_settings(s: Settings) -> Result<Config, ConfigError> {
        let (projects, projects_origin) = match &s.projects {
            Some(path) => (projects::load_file(path)?, path.display().to_string()),
            None => (projects::preset()?, projects::PRESET_ORIGIN.to_string()),
        };
        let listen = s.listen.parse().map_err(|err| ConfigError::Invalid {
            name: "HERALD_LISTEN",
            message: format!(
                "`{}` is not an address like 127.0.0.1:8080 ({err})",
                s.listen
            ),
        })?;
        if s.concurrency == 0 || s.concurrency > 256 {
            return Err(ConfigError::Invalid {
                name: "HERALD_CONCURRENCY",
                message: format!("`{}` must be between 1 and 256", s.concurrency),
            });
        }
        if s.smtp_connections == 0 || s.smtp_connections > 64 {
            return Err(ConfigError::Invalid {
                name: "HERALD_SMTP_CONNECTIONS",
                message: format!("`{}` must be between 1 and 64", s.smtp_connections),
            });
        }
        if s.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid {
                name: "HERALD_MAX_BODY_BYTES",
                message: format!("`{}` is too small (at least 1024)", s.max_body_bytes),
            });
        }
        if s.http_retries > 10 {
            return Err(ConfigError::Invalid {
                name: "HERALD_HTTP_RETRIES",
                message: format!("`{}` is too many (at most 10)", s.http_retries),
            });
        }
        let channels = match &s.channels {
            Some(path) => channels::load_file(path, &projects)?,
            None => Vec::new(),
        };
        Ok(Config {
            channels,
            database_url: s.database_url,
            projects,
            projects_origin,
            pypi_url: url_setting("HERALD_PYPI_URL", &s.pypi_url)?,
            github_api_url: url_setting("HERALD_GITHUB_API_URL", &s.github_api_url)?,
            github_token: non_empty(s.github_token).map(SecretString::from),
            smtp_url: non_empty(s.smtp_url).map(SecretString::from),
            smtp_ca_file: s.smtp_ca_file,
            from: s.from,
            base_url: url_setting("HERALD_BASE_URL", &s.base_url)?,
            secret: non_empty(s.secret).map(SecretString::from),
            schedule: s.schedule,
            schedule_jitter: s.schedule_jitter,
            timezone: s.timezone.parse().map_err(|_| ConfigError::Invalid {
                name: "HERALD_TIMEZONE",
                message: format!(
                    "`{}` is not a time zone name (e.g. UTC, Europe/Berlin)",
                    s.timezone
                ),
            })?,
            listen,
            trusted_proxies: trusted_proxies(s.trusted_proxies.as_deref())?,
            templates_dir: s.templates_dir,
            http: HttpSettings {
                timeout: seconds("HERALD_HTTP_TIMEOUT", s.http_timeout)?,
                connect_timeout: seconds("HERALD_CONNECT_TIMEOUT", s.connect_timeout)?,
                retries: s.http_retries,
                backoff: Duration::from_millis(s.retry_backoff_ms),
                max_body_bytes: s.max_body_bytes,
                concurrency: s.concurrency,
            },
            smtp_connections: s.smtp_connections,
            claim_seconds: s.claim_seconds.max(1),
        })
    }

    /// The project with this name.
    pub fn project(&self, name: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.name == name)
    }

    /// The channel with this name.
    pub fn channel(&self, name: &str) -> Option<&channels::Channel> {
        self.channels.iter().find(|c| c.name == name)
    }

    /// The core projects (those that are no other project's plugin), in file order.
    pub fn cores(&self) -> impl Iterator<Item = &Project> {
        self.projects.iter().filter(|p| p.plugin_of.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_are_addresses_and_ranges() {
        let parsed = trusted_proxies(Some(" 127.0.0.1, 10.0.0.0/8,::1,,192.168.1.7/16 "))
            .expect("valid list");
        let shown: Vec<String> = parsed.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["127.0.0.1/32", "10.0.0.0/8", "::1/128", "192.168.0.0/16"]
        );
        assert!(trusted_proxies(None).expect("unset").is_empty());
        assert!(trusted_proxies(Some("")).expect("empty").is_empty());
        let mapped = trusted_proxies(Some("::ffff:127.0.0.1")).expect("mapped");
        assert_eq!(mapped[0].to_string(), "127.0.0.1/32");
    }

    #[test]
    fn a_bad_trusted_proxy_is_named() {
        for bad in ["10.0.0.0/33", "localhost", "10.0.0.1 10.0.0.2", "*"] {
            let err = trusted_proxies(Some(&format!("127.0.0.1,{bad}")))
                .expect_err("refused")
                .to_string();
            assert!(err.starts_with("HERALD_TRUSTED_PROXIES: "), "{err}");
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }
}
