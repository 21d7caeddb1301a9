//! The test SMTP sink against lettre's real async transport, and against a raw client.

use crate::common;

use std::time::Duration;

use common::smtp::{MAX_LINE, SmtpSink, Stage};
use lettre::message::{Mailbox, MultiPart, header::ContentType};
use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use mail_parser::MessageParser;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

fn mailer(url: &str) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .expect("lettre accepts the sink's URL")
        .timeout(Some(WAIT))
        .build()
}

fn mailbox(addr: &str) -> Mailbox {
    addr.parse().expect("mailbox")
}

fn plain(to: &[&str], subject: &str, body: &str) -> Message {
    let mut builder = Message::builder()
        .from(mailbox("Herald <herald@example.org>"))
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for addr in to {
        builder = builder.to(mailbox(addr));
    }
    builder.body(body.to_string()).expect("message builds")
}

/// The connection error for a refused connection, found in the error's source chain.
fn is_refused(err: &SmtpError) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = err.source();
    }
    false
}

#[tokio::test]
async fn multipart_message_arrives_and_parses() {
    let sink = SmtpSink::start().await;
    let message = Message::builder()
        .from(mailbox("Herald <herald@example.org>"))
        .to(mailbox("Ops <ops@example.org>"))
        .subject("pretalx 2025.1.0 released — Grüße")
        .multipart(MultiPart::alternative_plain_html(
            "Plain part: upgrade soon.".to_string(),
            "<p>HTML part: <b>upgrade</b> soon.</p>".to_string(),
        ))
        .expect("message builds");
    mailer(&sink.url()).send(message).await.expect("sent");

    let received = sink.wait_for(1, WAIT).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].mail_from, "herald@example.org");
    assert_eq!(received[0].rcpt_to, vec!["ops@example.org".to_string()]);
    let parsed = MessageParser::default()
        .parse(&received[0].data)
        .expect("RFC 5322 message");
    assert_eq!(parsed.subject(), Some("pretalx 2025.1.0 released — Grüße"));
    let text = parsed.body_text(0).expect("plain part");
    assert_eq!(text.trim_end(), "Plain part: upgrade soon.");
    let html = parsed.body_html(0).expect("html part");
    assert!(html.contains("<b>upgrade</b>"), "{html}");
    assert_eq!(sink.count_for("OPS@example.org"), 1);
}

#[tokio::test]
async fn dot_stuffing_round_trips() {
    let sink = SmtpSink::start().await;
    let body = "first\r\n.hidden line\r\n.\r\n..two dots\r\nlast\r\n";
    let to = ["ops@example.org"];
    mailer(&sink.url())
        .send(plain(&to, "dots", body))
        .await
        .expect("sent");

    let received = sink.wait_for(1, WAIT).await;
    let raw = String::from_utf8_lossy(&received[0].data);
    assert!(
        raw.contains("\r\n.hidden line\r\n.\r\n..two dots\r\nlast\r\n"),
        "{raw}"
    );
    let parsed = MessageParser::default()
        .parse(&received[0].data)
        .expect("message");
    assert!(
        parsed.body_text(0).expect("body").starts_with(body),
        "{raw}"
    );
}

#[tokio::test]
async fn refused_recipient_is_permanent_and_nothing_is_recorded() {
    let sink = SmtpSink::start().await;
    sink.reject_recipient("Gone@example.org", 550, "5.1.1 no such user");
    let to = ["ops@example.org", "gone@example.org"];
    let err = mailer(&sink.url())
        .send(plain(&to, "hi", "hello"))
        .await
        .expect_err("refused");
    assert!(err.is_permanent(), "{err}");
    assert_eq!(err.status().map(u16::from), Some(550));
    assert_eq!(sink.count(), 0);

    sink.accept_recipient("gone@example.org");
    let to = ["gone@example.org"];
    let sent = mailer(&sink.url()).send(plain(&to, "hi", "hello")).await;
    sent.expect("accepted again");
    assert_eq!(sink.count_for("gone@example.org"), 1);
}

#[tokio::test]
async fn transient_mail_from_then_success() {
    let sink = SmtpSink::start().await;
    sink.fail_next(Stage::MailFrom, 451, "4.3.0 try later", 1);
    let mailer = mailer(&sink.url());
    let to = ["ops@example.org"];
    let err = mailer.send(plain(&to, "one", "x")).await.expect_err("451");
    assert!(err.is_transient(), "{err}");
    assert_eq!(sink.count(), 0);

    mailer
        .send(plain(&to, "two", "x"))
        .await
        .expect("second try");
    assert_eq!(sink.wait_for(1, WAIT).await.len(), 1);
}

#[tokio::test]
async fn greeting_421_is_an_error() {
    let sink = SmtpSink::start().await;
    sink.fail_next(Stage::Greeting, 421, "4.3.2 shutting down", 1);
    let mailer = mailer(&sink.url());
    let to = ["ops@example.org"];
    let err = mailer.send(plain(&to, "one", "x")).await.expect_err("421");
    assert!(err.is_transient(), "{err}");
    assert_eq!(sink.count(), 0);

    mailer
        .send(plain(&to, "two", "x"))
        .await
        .expect("next connection");
    assert_eq!(sink.count(), 1);
}

#[tokio::test]
async fn refusal_after_the_final_dot_is_not_recorded() {
    let sink = SmtpSink::start().await;
    sink.fail_next(Stage::EndOfData, 554, "5.6.0 content rejected", 1);
    let to = ["ops@example.org"];
    let err = mailer(&sink.url())
        .send(plain(&to, "one", "x"))
        .await
        .expect_err("554");
    assert!(err.is_permanent(), "{err}");
    assert_eq!(sink.count(), 0);
}

#[tokio::test]
async fn dropped_during_data_is_an_error_and_not_recorded() {
    let sink = SmtpSink::start().await;
    sink.drop_during_data(1);
    let mailer = mailer(&sink.url());
    let to = ["ops@example.org"];
    let body = "line\r\n".repeat(2000);
    let err = mailer
        .send(plain(&to, "one", &body))
        .await
        .expect_err("dropped");
    assert!(!err.is_permanent(), "{err}");
    assert_eq!(sink.count(), 0);

    mailer
        .send(plain(&to, "two", &body))
        .await
        .expect("next send");
    assert_eq!(sink.count(), 1);
}

#[tokio::test]
async fn stopped_sink_refuses_and_restarts_on_the_same_port() {
    let sink = SmtpSink::start().await;
    let mailer = mailer(&sink.url());
    let to = ["ops@example.org"];
    mailer.send(plain(&to, "one", "x")).await.expect("up");
    sink.stop().await;
    sink.stop().await;

    let err = mailer.send(plain(&to, "two", "x")).await.expect_err("down");
    assert!(is_refused(&err), "{err:?}");
    assert_eq!(sink.count(), 1, "messages stay readable after stop");

    let again = SmtpSink::start_on(sink.port()).await;
    assert_eq!(again.url(), sink.url());
    mailer
        .send(plain(&to, "three", "x"))
        .await
        .expect("up again");
    assert_eq!(again.count(), 1);
}

#[tokio::test]
async fn concurrent_sends_are_all_recorded() {
    let sink = SmtpSink::start().await;
    let sends = (0..20).map(|i| {
        let mailer = mailer(&sink.url());
        let to = [if i % 2 == 0 {
            "even@example.org"
        } else {
            "odd@example.org"
        }];
        async move { mailer.send(plain(&to, &format!("n{i}"), "x")).await }
    });
    for sent in futures::future::join_all(sends).await {
        sent.expect("sent");
    }
    assert_eq!(sink.wait_for(20, WAIT).await.len(), 20);
    assert_eq!(sink.count_for("even@example.org"), 10);
    assert_eq!(sink.count_for("odd@example.org"), 10);
}

#[tokio::test]
async fn auth_plain_when_required() {
    let sink = SmtpSink::start().await;
    sink.require_auth("herald", "s3cret");
    let to = ["ops@example.org"];

    let anonymous = mailer(&sink.url()).send(plain(&to, "a", "x")).await;
    let err = anonymous.expect_err("530");
    assert_eq!(err.status().map(u16::from), Some(530));

    let wrong = format!("smtp://herald:nope@127.0.0.1:{}", sink.port());
    let err = mailer(&wrong)
        .send(plain(&to, "b", "x"))
        .await
        .expect_err("535");
    assert!(err.is_permanent(), "{err}");

    let right = format!("smtp://herald:s3cret@127.0.0.1:{}", sink.port());
    mailer(&right)
        .send(plain(&to, "c", "x"))
        .await
        .expect("authenticated");
    assert_eq!(sink.count(), 1);
}

/// Reads one (possibly multi-line) reply and returns its lines.
async fn read_reply(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.expect("reply");
        assert!(line.len() >= 4, "short reply {line:?}");
        let last = line.as_bytes()[3] == b' ';
        lines.push(line.trim_end().to_string());
        if last {
            return lines;
        }
    }
}

#[tokio::test]
async fn raw_client_pipelining_long_lines_and_hangups() {
    let sink = SmtpSink::start().await;
    let stream = TcpStream::connect(("127.0.0.1", sink.port()))
        .await
        .expect("connect");
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    assert!(read_reply(&mut reader).await[0].starts_with("220 "));

    write.write_all(b"EHLO tester\r\n").await.expect("write");
    let ehlo = read_reply(&mut reader).await.join("\n");
    for feature in ["PIPELINING", "8BITMIME", "SMTPUTF8", "SIZE"] {
        assert!(ehlo.contains(feature), "{ehlo}");
    }
    assert!(
        !ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );

    let long = format!("NOOP {}\r\n", "x".repeat(MAX_LINE));
    write.write_all(long.as_bytes()).await.expect("write");
    assert!(read_reply(&mut reader).await[0].starts_with("500 "));

    // Pipelined envelope, then a message body cut off by a hang-up.
    let pipelined = "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n";
    write.write_all(pipelined.as_bytes()).await.expect("write");
    for code in ["250 ", "250 ", "354 "] {
        assert!(read_reply(&mut reader).await[0].starts_with(code));
    }
    write
        .write_all(b"Subject: cut\r\n\r\npartial")
        .await
        .expect("write");
    drop(write);
    drop(reader);

    let to = ["ops@example.org"];
    mailer(&sink.url())
        .send(plain(&to, "after", "x"))
        .await
        .expect("still serving");
    assert_eq!(sink.count(), 1);
}

#[tokio::test]
async fn raw_auth_plain_with_a_challenge() {
    use base64::Engine as _;
    let sink = SmtpSink::start().await;
    sink.require_auth("herald", "s3cret");
    let stream = TcpStream::connect(("127.0.0.1", sink.port()))
        .await
        .expect("connect");
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    read_reply(&mut reader).await;
    write.write_all(b"EHLO tester\r\n").await.expect("write");
    let ehlo = read_reply(&mut reader).await.join("\n");
    assert!(ehlo.contains("AUTH PLAIN"), "{ehlo}");

    write.write_all(b"AUTH PLAIN\r\n").await.expect("write");
    assert!(read_reply(&mut reader).await[0].starts_with("334"));
    let answer = base64::engine::general_purpose::STANDARD.encode("\0herald\0s3cret");
    write
        .write_all(format!("{answer}\r\n").as_bytes())
        .await
        .expect("write");
    assert!(read_reply(&mut reader).await[0].starts_with("235 "));
    write
        .write_all(b"MAIL FROM:<>\r\nQUIT\r\n")
        .await
        .expect("write");
    assert!(read_reply(&mut reader).await[0].starts_with("250 "));
    assert!(read_reply(&mut reader).await[0].starts_with("221 "));
}
