//! SMTP connections Herald opens itself: a tokio `TcpStream` with `TCP_NODELAY` (lettre's own
//! pool writes a message's body and its final dot separately, so with Nagle's algorithm every
//! message waited for the relay's delayed ACK, about 40 ms), optionally wrapped in TLS
//! (`smtps://`, implicit TLS) or upgraded with STARTTLS (`?tls=required` or
//! `?tls=opportunistic`), then handed to lettre's `AsyncSmtpConnection` for EHLO, AUTH
//! (PLAIN or LOGIN) and the SMTP conversation. A connection is kept open across messages and
//! replaced when it breaks.
//!
//! Owns: the relay's address, TLS and credentials, and turning lettre's errors into
//! [`SendError`]s. Does not own: what is sent (`mail`) or when (`notify::dispatch`).

use std::sync::Arc;
use std::time::Duration;

use lettre::Message;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::mail::{MailConfigError, SendError};

/// How long connecting (TCP, TLS, greeting, EHLO, AUTH) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one message (MAIL FROM to the answer after the final dot) may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// How the connection is encrypted.
#[derive(Clone)]
enum Security {
    /// Plain text (a local relay).
    None,
    /// STARTTLS when the relay offers it.
    Opportunistic(TlsParameters),
    /// STARTTLS, or no connection.
    Required(TlsParameters),
    /// TLS from the first byte (`smtps://`).
    Implicit(Arc<rustls::ClientConfig>),
}

/// Where and how to reach the relay; opens [`SmtpConnection`]s.
#[derive(Clone)]
pub struct Relay {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Relay {{ {}:{} }}", self.host, self.port)
    }
}

/// An open connection to the relay.
pub struct SmtpConnection {
    inner: AsyncSmtpConnection,
    /// Messages the relay accepted over it.
    pub sent: usize,
    /// Set when a message timed out: the conversation's state is unknown.
    timed_out: bool,
    /// The relay offers `PIPELINING` (RFC 2920): a message's MAIL FROM, RCPT TO and DATA go
    /// out in one write, and its content with the final dot in another, so a message costs two
    /// round trips instead of four.
    pipelining: bool,
}

/// A message the relay did not take.
#[derive(Debug)]
pub struct Failure {
    /// What to record.
    pub error: SendError,
    /// The connection went away (closed, reset, or `421` "closing channel") rather than the
    /// relay refusing this message: a fresh connection may take it at once.
    pub connection_lost: bool,
}

impl Relay {
    /// Reads `smtp://[user:pass@]host[:port][?tls=required|opportunistic]` or
    /// `smtps://[user:pass@]host[:port]`; `ca_pem` adds trusted roots (a private CA or a
    /// relay's self-signed certificate) to the system's.
    pub fn from_url(
        url: &SecretString,
        ca_pem: Option<&[u8]>,
        shown: &str,
    ) -> Result<Relay, MailConfigError> {
        let fail = |message: String| MailConfigError {
            name: "HERALD_SMTP_URL",
            message: format!("{shown}: {message}"),
        };
        let parsed = Url::parse(url.expose_secret()).map_err(|err| fail(format!("{err}")))?;
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| fail("the URL names no host".into()))?
            .trim_matches(['[', ']'])
            .to_string();
        let tls = parsed
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.to_string());
        let extra_roots = extra_roots(ca_pem)?;
        let parameters = || -> Result<TlsParameters, MailConfigError> {
            let mut builder = TlsParameters::builder(host.clone());
            for der in &extra_roots {
                let cert = Certificate::from_der(der.to_vec()).map_err(|err| MailConfigError {
                    name: "HERALD_SMTP_CA_FILE",
                    message: err.to_string(),
                })?;
                builder = builder.add_root_certificate(cert);
            }
            builder
                .build_rustls()
                .map_err(|err| fail(format!("TLS: {err}")))
        };
        let (security, default_port) = match (parsed.scheme(), tls.as_deref()) {
            ("smtp", None | Some("none")) => (Security::None, 25),
            ("smtp", Some("opportunistic")) => (Security::Opportunistic(parameters()?), 587),
            ("smtp", Some("required")) => (Security::Required(parameters()?), 587),
            ("smtps", None | Some("wrapper") | Some("implicit")) => {
                (Security::Implicit(implicit_tls(&extra_roots)?), 465)
            }
            (scheme, tls) => {
                return Err(fail(format!(
                    "unknown scheme `{scheme}` or tls=`{}`: use smtp://host:port, \
                     smtp://user:pass@host:587?tls=required or smtps://user:pass@host:465",
                    tls.unwrap_or_default()
                )));
            }
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| fail("the user name or password is not UTF-8".into()))
        };
        let credentials = match parsed.password() {
            Some(password) => Some(Credentials::new(
                decode(parsed.username())?,
                decode(password)?,
            )),
            None => None,
        };
        let hello = match parsed.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_string()),
        };
        Ok(Relay {
            port: parsed.port().unwrap_or(default_port),
            host,
            security,
            credentials,
            hello,
        })
    }

    /// Opens a connection: TCP with `TCP_NODELAY`, TLS as configured, EHLO, AUTH.
    pub async fn connect(&self) -> Result<SmtpConnection, SendError> {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.open()).await {
            Ok(result) => result,
            Err(_) => Err(SendError::Transient(format!(
                "connecting to the relay took longer than {} s",
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    async fn open(&self) -> Result<SmtpConnection, SendError> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|err| SendError::Transient(format!("cannot connect to the relay: {err}")))?;
        tcp.set_nodelay(true)
            .map_err(|err| SendError::Transient(format!("TCP_NODELAY: {err}")))?;
        let stream: Box<dyn AsyncTokioStream> = match &self.security {
            Security::Implicit(config) => {
                let name = ServerName::try_from(self.host.clone())
                    .map_err(|err| SendError::Permanent(format!("relay host name: {err}")))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|err| SendError::Transient(format!("TLS with the relay: {err}")))?;
                Box::new(TlsStream(tls))
            }
            _ => Box::new(tcp),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
            .await
            .map_err(classify)?;
        match &self.security {
            Security::Required(parameters) => conn
                .starttls(parameters.clone(), &self.hello)
                .await
                .map_err(classify)?,
            Security::Opportunistic(parameters) if conn.can_starttls() => conn
                .starttls(parameters.clone(), &self.hello)
                .await
                .map_err(classify)?,
            _ => {}
        }
        // lettre keeps only the EHLO keywords it uses itself; ask again (before AUTH, after
        // STARTTLS) to learn whether the relay takes pipelined commands.
        let pipelining = conn
            .command(Ehlo::new(self.hello.clone()))
            .await
            .map_err(classify)?
            .message()
            .any(|line| {
                line.split_whitespace()
                    .next()
                    .is_some_and(|word| word.eq_ignore_ascii_case("PIPELINING"))
            });
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(classify)?;
        }
        Ok(SmtpConnection {
            inner: conn,
            sent: 0,
            timed_out: false,
            pipelining,
        })
    }
}

impl SmtpConnection {
    /// Sends one message; returns the relay's answer. After a failure the connection is not
    /// usable any more (lettre ends the conversation on every error).
    pub async fn send(&mut self, message: &Message) -> Result<String, Failure> {
        let formatted = message.formatted();
        self.begin(message, &formatted).await?;
        self.finish(&formatted).await
    }

    /// The first half of a message: MAIL FROM, RCPT TO and DATA, up to the relay's `354`.
    /// Nothing is delivered until [`SmtpConnection::finish`] sends the content and its final
    /// dot, so a caller may wait for something else in between (the record of the previous
    /// answer).
    pub async fn begin(&mut self, message: &Message, formatted: &[u8]) -> Result<(), Failure> {
        let envelope = message.envelope();
        let ascii = |a: &lettre::Address| AsRef::<str>::as_ref(a).is_ascii();
        let ascii_addresses = envelope.from().is_none_or(ascii) && envelope.to().iter().all(ascii);
        let mut options = Vec::new();
        if !ascii_addresses {
            if !self
                .inner
                .server_info()
                .supports_feature(Extension::SmtpUtfEight)
            {
                return Err(Failure {
                    error: SendError::Transient(
                        "the envelope is not ASCII and the relay does not offer SMTPUTF8".into(),
                    ),
                    connection_lost: false,
                });
            }
            options.push(MailParameter::SmtpUtfEight);
        }
        // As lettre does: 8BITMIME only for a message that is not 7-bit.
        if !formatted.is_ascii() {
            if !self
                .inner
                .server_info()
                .supports_feature(Extension::EightBitMime)
            {
                return Err(Failure {
                    error: SendError::Transient(
                        "the message is not 7-bit and the relay does not offer 8BITMIME".into(),
                    ),
                    connection_lost: false,
                });
            }
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let mail = Mail::new(envelope.from().cloned(), options);
        let pipelining = self.pipelining;
        let commands = async {
            if pipelining {
                // One write; then the answers in order (RFC 2920). After a refusal the
                // connection is ended, so the answers still unread do not matter.
                let mut group = mail.to_string();
                for to in envelope.to() {
                    group.push_str(&Rcpt::new(to.clone(), Vec::new()).to_string());
                }
                group.push_str(&Data.to_string());
                self.inner.command(Raw(&group)).await?;
                for _ in envelope.to() {
                    self.inner.read_response().await?;
                }
                return self.inner.read_response().await;
            }
            self.inner.command(mail).await?;
            for to in envelope.to() {
                self.inner
                    .command(Rcpt::new(to.clone(), Vec::new()))
                    .await?;
            }
            self.inner.command(Data).await
        };
        match tokio::time::timeout(SEND_TIMEOUT, commands).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(self.failed(err).await),
            Err(_) => Err(self.timeout()),
        }
    }

    /// The second half: the content and its final dot; returns the relay's answer.
    pub async fn finish(&mut self, formatted: &[u8]) -> Result<String, Failure> {
        // The content and the final dot in one write (lettre writes them separately).
        let content = async {
            match String::from_utf8(stuffed(formatted)) {
                Ok(content) => self.inner.command(Raw(&content)).await,
                Err(_) => self.inner.message(formatted).await,
            }
        };
        let response = match tokio::time::timeout(SEND_TIMEOUT, content).await {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => return Err(self.failed(err).await),
            Err(_) => return Err(self.timeout()),
        };
        self.sent += 1;
        let mut answer = response.code().to_string();
        for line in response.message() {
            answer.push(' ');
            answer.push_str(line);
        }
        Ok(answer)
    }

    /// Ends the conversation after an error, as lettre's own `send` does.
    async fn failed(&mut self, err: lettre::transport::smtp::Error) -> Failure {
        let connection_lost = err.status().is_none_or(|code| code.to_string() == "421");
        self.inner.abort().await;
        Failure {
            error: classify(err),
            connection_lost,
        }
    }

    fn timeout(&mut self) -> Failure {
        self.timed_out = true;
        Failure {
            error: SendError::Transient(format!(
                "the relay did not answer within {} s",
                SEND_TIMEOUT.as_secs()
            )),
            connection_lost: false,
        }
    }

    /// Whether the connection can carry another message.
    pub fn is_usable(&self) -> bool {
        !self.inner.has_broken() && !self.timed_out
    }

    /// Says goodbye (QUIT), ignoring a relay that already left.
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.inner.quit()).await;
    }
}

/// Text written to the relay as it is (pipelined commands, a message's content).
struct Raw<'a>(&'a str);

impl std::fmt::Display for Raw<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A message's content as sent after `DATA`: every line that starts with a dot gets another
/// (RFC 5321 4.5.2, as lettre's own codec does), then the final dot.
fn stuffed(formatted: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(formatted.len() + 16);
    let mut line_start = true;
    let mut after_cr = false;
    for &byte in formatted {
        if byte == b'.' && line_start {
            out.push(b'.');
        }
        out.push(byte);
        line_start = after_cr && byte == b'\n';
        after_cr = byte == b'\r';
    }
    out.extend_from_slice(b"\r\n.\r\n");
    out
}

/// lettre's error as Herald's: 5xx answers are permanent, everything else (4xx, a dropped or
/// refused connection, TLS trouble) is worth another try.
pub fn classify(err: lettre::transport::smtp::Error) -> SendError {
    if err.is_permanent() {
        SendError::Permanent(err.to_string())
    } else {
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(inner) = source {
            // lettre's message already quotes the relay's answer, which is also its source.
            let inner_text = inner.to_string();
            if !text.contains(&inner_text) {
                text.push_str(&format!(": {inner_text}"));
            }
            source = inner.source();
        }
        SendError::Transient(text)
    }
}

fn extra_roots(pem: Option<&[u8]>) -> Result<Vec<CertificateDer<'static>>, MailConfigError> {
    let Some(pem) = pem else {
        return Ok(Vec::new());
    };
    let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|err| MailConfigError {
            name: "HERALD_SMTP_CA_FILE",
            message: format!("not a PEM certificate file: {err}"),
        })?;
    if roots.is_empty() {
        return Err(MailConfigError {
            name: "HERALD_SMTP_CA_FILE",
            message: "the file holds no certificate".into(),
        });
    }
    Ok(roots)
}

/// The client configuration for implicit TLS: the system's trust store (as lettre uses for
/// STARTTLS) plus the configured extra roots.
fn implicit_tls(
    extra: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, MailConfigError> {
    let fail = |message: String| MailConfigError {
        name: "HERALD_SMTP_URL",
        message: format!("TLS: {message}"),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra.to_vec(), provider.clone())
            .map_err(|err| fail(err.to_string()))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| fail(err.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TLS stream lettre can drive (it needs the peer's address).
#[derive(Debug)]
struct TlsStream(tokio_rustls::client::TlsStream<tokio::net::TcpStream>);

impl AsyncTokioStream for TlsStream {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl tokio::io::AsyncRead for TlsStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::stuffed;

    #[test]
    fn content_is_dot_stuffed_like_lettre_and_ends_with_the_final_dot() {
        assert_eq!(
            stuffed(b"a\r\n.b\r\n..\r\n"),
            b"a\r\n..b\r\n...\r\n\r\n.\r\n"
        );
        assert_eq!(stuffed(b".first"), b"..first\r\n.\r\n");
        // Only a dot at the start of a CRLF line counts.
        assert_eq!(stuffed(b"a.b\n.c\r.d"), b"a.b\n.c\r.d\r\n.\r\n");
    }
}
