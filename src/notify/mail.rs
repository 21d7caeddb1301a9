//! Mail through lettre: the relay from `HERALD_SMTP_URL` (connections in [`super::smtp`]),
//! and the construction of every message (multipart/alternative, stable `Message-ID`, `List-Id`,
//! RFC 8058 one-click `List-Unsubscribe`, `Auto-Submitted`). Only the dispatcher calls
//! [`Mailer::send`].

use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use url::Url;

use super::smtp::{Relay, SmtpConnection};
use super::templates::Rendered;
use crate::model::EmailAddress;

/// A relay or sender setting Herald refuses.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct MailConfigError {
    /// The variable.
    pub name: &'static str,
    /// The problem (never a password).
    pub message: String,
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: connection refused or dropped, a 4xx answer, a timeout.
    #[error("{0}")]
    Transient(String),
    /// Not worth retrying: a 5xx answer (e.g. 550 on the recipient).
    #[error("{0}")]
    Permanent(String),
}

/// The relay and the sender: opens the connections the dispatcher sends through.
#[derive(Clone)]
pub struct Mailer {
    relay_at: Relay,
    from: Mailbox,
    relay: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mailer {{ relay: {}, from: {} }}", self.relay, self.from)
    }
}

/// The sender address, validated.
pub fn sender(from: &str) -> Result<Mailbox, MailConfigError> {
    from.parse::<EmailAddress>()
        .map_err(|message| MailConfigError {
            name: "HERALD_FROM",
            message,
        })?
        .as_str()
        .parse::<Mailbox>()
        .map_err(|err| MailConfigError {
            name: "HERALD_FROM",
            message: format!("`{from}`: {err}"),
        })
}

/// `scheme://host:port` of a relay URL: what logs and messages may show.
pub fn redacted(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or("?"),
            u.port()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "default".into())
        ),
        Err(_) => "an unparsable URL".into(),
    }
}

impl Mailer {
    /// Reads the relay URL; `ca_pem` adds trusted roots for the relay's certificate.
    pub fn new(
        url: &SecretString,
        from: &str,
        ca_pem: Option<&[u8]>,
    ) -> Result<Mailer, MailConfigError> {
        let raw = url.expose_secret();
        let shown = redacted(raw);
        let fail = |message: String| MailConfigError {
            name: "HERALD_SMTP_URL",
            message,
        };
        let parsed = Url::parse(raw).map_err(|err| fail(format!("not a URL ({err})")))?;
        if !matches!(parsed.scheme(), "smtp" | "smtps") {
            return Err(fail(format!(
                "{shown}: use smtp://host:port, smtp://user:pass@host:587?tls=required or smtps://user:pass@host:465"
            )));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(fail(format!("{shown}: the URL names no host")));
        }
        Ok(Mailer {
            relay_at: Relay::from_url(url, ca_pem, &shown)?,
            from: sender(from)?,
            relay: shown,
        })
    }

    /// The relay, without credentials.
    pub fn relay(&self) -> &str {
        &self.relay
    }

    /// The sender.
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Opens a connection to the relay.
    pub async fn connect(&self) -> Result<SmtpConnection, SendError> {
        self.relay_at.connect().await
    }

    /// Sends one message over a connection of its own (a test message); returns the answer.
    pub async fn send(&self, message: Message) -> Result<String, SendError> {
        let mut connection = self.connect().await?;
        match connection.send(&message).await {
            Ok(answer) => {
                connection.quit().await;
                Ok(answer)
            }
            Err(failure) => Err(failure.error),
        }
    }
}

/// A `Message-ID` that stays the same for a recipient and subject across retries.
pub fn message_id(recipient: &str, subject_key: &str, from: &Mailbox) -> String {
    let digest = Sha256::digest(format!("{recipient}\n{subject_key}").as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("<{hex}@{}>", from.email.domain())
}

/// Headers of mail sent to a subscriber.
#[derive(Debug, Clone)]
pub struct ListHeaders {
    /// One-click unsubscribe link (RFC 8058).
    pub unsubscribe_url: String,
}

fn header(name: &'static str, value: String) -> HeaderValue {
    // Values are built from validated parts only; strip line breaks regardless.
    let clean: String = value.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    HeaderValue::new(HeaderName::new_from_ascii_str(name), clean)
}

/// Builds a message from rendered parts.
pub fn build(
    from: &Mailbox,
    to: &EmailAddress,
    message_id: &str,
    rendered: &Rendered,
    list: Option<&ListHeaders>,
) -> Result<Message, String> {
    let to: Mailbox = to
        .as_str()
        .parse()
        .map_err(|err| format!("recipient `{to}`: {err}"))?;
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(rendered.subject.clone())
        .message_id(Some(message_id.to_string()))
        .raw_header(header("Auto-Submitted", "auto-generated".into()));
    if let Some(list) = list {
        let domain = from.email.domain();
        builder = builder
            .raw_header(header(
                "List-Id",
                format!("Herald release mail <releases.{domain}>"),
            ))
            .raw_header(header(
                "List-Unsubscribe",
                format!(
                    "<{}>, <mailto:{}?subject=unsubscribe>",
                    list.unsubscribe_url, from.email
                ),
            ))
            .raw_header(header(
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click".into(),
            ));
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            rendered.text.clone(),
            rendered.html.clone(),
        ))
        .map_err(|err| format!("cannot build the message: {err}"))
}
