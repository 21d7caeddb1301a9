//! An in-process SMTP server for integration tests. [`SmtpSink`] owns a loopback listener,
//! every connection it accepted, the messages it accepted and the faults a test injects.
//!
//! It speaks the ESMTP subset lettre 0.11's async transport uses: greeting, EHLO/HELO
//! (advertising `PIPELINING`, `8BITMIME`, `SMTPUTF8`, `SIZE`; `AUTH PLAIN` only after
//! [`SmtpSink::require_auth`]; never `STARTTLS`), MAIL, RCPT, DATA (dot-unstuffed), RSET,
//! NOOP, QUIT. Lines are capped at [`MAX_LINE`] bytes and messages at [`MAX_MESSAGE`]; a client
//! that vanishes only ends its own connection.
//!
//! URL: lettre's `from_url` accepts `smtp://HOST:PORT` as plain SMTP (never TLS, not even
//! opportunistic STARTTLS), optionally with `user:pass@`. Only `?tls=required` and
//! `?tls=opportunistic` are accepted as a `tls` parameter: `?tls=none` is rejected as an
//! unknown scheme. [`SmtpSink::url`] therefore gives `smtp://127.0.0.1:PORT`.
//!
//! A message is recorded only once its final dot was answered with 250. As in real SMTP, a
//! message is delivered to the recipients that were accepted even if another was refused;
//! lettre gives up on the first refused recipient, so with lettre nothing is recorded then.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Longest accepted line, CRLF included (RFC 5321 allows 512 for commands, 1000 for text).
pub const MAX_LINE: usize = 4096;
/// Largest accepted message, advertised as `SIZE`.
pub const MAX_MESSAGE: usize = 10 * 1024 * 1024;

/// One accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The reverse path without angle brackets (empty for `<>`).
    pub mail_from: String,
    /// Accepted recipients, in order.
    pub rcpt_to: Vec<String>,
    /// The RFC 5322 message as received, dot-unstuffed, without the terminating `.` line.
    pub data: Vec<u8>,
}

/// Where [`SmtpSink::fail_next`] answers with an injected reply instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The greeting of a new connection (then the connection is closed).
    Greeting,
    /// EHLO or HELO.
    Ehlo,
    /// MAIL FROM.
    MailFrom,
    /// Every RCPT TO, whatever the recipient.
    RcptTo,
    /// The DATA command itself (instead of 354).
    Data,
    /// The final dot, after the whole message was read (instead of 250).
    EndOfData,
}

#[derive(Default)]
struct State {
    messages: Vec<Received>,
    rejected: HashMap<String, (u16, String)>,
    fail_next: HashMap<Stage, (u16, String, usize)>,
    drop_during_data: usize,
    auth: Option<(String, String)>,
    /// Messages one connection may carry, and whether the relay then says `421` to the next
    /// MAIL (true) or closes the connection right after the last one (false).
    per_connection: Option<(usize, bool)>,
    /// How long the final dot waits for its answer (a relay that takes its time).
    pace: Option<Duration>,
}

struct Shared {
    state: Mutex<State>,
    /// The number of recorded messages, for [`SmtpSink::wait_for`].
    count: watch::Sender<usize>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("smtp sink state poisoned")
    }

    fn take_fault(&self, stage: Stage) -> Option<(u16, String)> {
        let mut state = self.lock();
        let (code, text, left) = state.fail_next.get_mut(&stage)?;
        let reply = (*code, text.clone());
        *left -= 1;
        if *left == 0 {
            state.fail_next.remove(&stage);
        }
        Some(reply)
    }
}

/// A running SMTP server on 127.0.0.1; dropping it stops it.
pub struct SmtpSink {
    shared: Arc<Shared>,
    port: u16,
    shutdown: watch::Sender<bool>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl SmtpSink {
    /// Starts a sink on a free port.
    pub async fn start() -> SmtpSink {
        SmtpSink::start_on(0).await
    }

    /// Starts a sink on `port` (0 for any), e.g. the port of a sink that was stopped.
    pub async fn start_on(port: u16) -> SmtpSink {
        let socket = TcpSocket::new_v4().expect("smtp sink socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket
            .bind(([127, 0, 0, 1], port).into())
            .unwrap_or_else(|err| panic!("smtp sink cannot bind 127.0.0.1:{port}: {err}"));
        let listener = socket.listen(1024).expect("smtp sink listen");
        let port = listener.local_addr().expect("smtp sink address").port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            count: watch::Sender::new(0),
        });
        let (shutdown, stopped) = watch::channel(false);
        let server = tokio::spawn(serve(listener, shared.clone(), stopped));
        SmtpSink {
            shared,
            port,
            shutdown,
            server: Mutex::new(Some(server)),
        }
    }

    /// Limits every connection to `n` messages, as relays do: with `say_421`, the next MAIL
    /// is answered `421 4.7.0` and the connection closed; otherwise the connection is closed
    /// right after the `n`th message was accepted.
    pub fn limit_per_connection(&self, n: usize, say_421: bool) {
        self.shared.lock().per_connection = Some((n, say_421));
    }

    /// Answers each message's final dot only after `delay`, as a busy relay does (so several
    /// senders visibly share the work).
    pub fn pace(&self, delay: Duration) {
        self.shared.lock().pace = Some(delay);
    }

    /// Closes the listener and every connection; returns once the port is free. Messages
    /// stay readable. Idempotent.
    pub async fn stop(&self) {
        self.shutdown.send_replace(true);
        let server = self.server.lock().expect("smtp sink handle").take();
        if let Some(server) = server {
            // The server task never panics by itself; a JoinError here is a test bug.
            server.await.expect("smtp sink server task");
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:PORT`: plain SMTP for lettre's `from_url`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every accepted message, in order of acceptance.
    pub fn messages(&self) -> Vec<Received> {
        self.shared.lock().messages.clone()
    }

    pub fn count(&self) -> usize {
        self.shared.lock().messages.len()
    }

    /// How many accepted messages list `addr` (case-insensitive) as a recipient.
    pub fn count_for(&self, addr: &str) -> usize {
        let state = self.shared.lock();
        let to_addr = |messages: &Received| {
            messages
                .rcpt_to
                .iter()
                .filter(|r| r.eq_ignore_ascii_case(addr))
                .count()
        };
        state.messages.iter().map(to_addr).sum()
    }

    /// Waits until at least `n` messages were accepted and returns them all; panics after
    /// `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let mut count = self.shared.count.subscribe();
        let reached = tokio::time::timeout(timeout, count.wait_for(|c| *c >= n)).await;
        if !matches!(reached, Ok(Ok(_))) {
            panic!(
                "smtp sink: {} of {n} messages arrived within {timeout:?}",
                self.count()
            );
        }
        self.messages()
    }

    /// Answers RCPT TO `addr` (case-insensitive) with `code text` until cleared.
    pub fn reject_recipient(&self, addr: &str, code: u16, text: &str) {
        let mut state = self.shared.lock();
        let reply = (code, text.to_string());
        state.rejected.insert(addr.to_ascii_lowercase(), reply);
    }

    /// Accepts `addr` again.
    pub fn accept_recipient(&self, addr: &str) {
        self.shared
            .lock()
            .rejected
            .remove(&addr.to_ascii_lowercase());
    }

    /// Answers `code text` at `stage` the next `times` times it is reached (replacing an
    /// earlier setting for that stage). A 421 reply also closes the connection.
    pub fn fail_next(&self, stage: Stage, code: u16, text: &str, times: usize) {
        let mut state = self.shared.lock();
        if times == 0 {
            state.fail_next.remove(&stage);
        } else {
            state
                .fail_next
                .insert(stage, (code, text.to_string(), times));
        }
    }

    /// Closes the connection after the first line of the next `times` messages' data.
    pub fn drop_during_data(&self, times: usize) {
        self.shared.lock().drop_during_data = times;
    }

    /// Advertises `AUTH PLAIN` and refuses MAIL FROM (530) until these credentials are given.
    pub fn require_auth(&self, user: &str, password: &str) {
        self.shared.lock().auth = Some((user.to_string(), password.to_string()));
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            // Also ends when the sink (the sender) is dropped.
            _ = stop.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    sessions.spawn(session(stream, shared.clone()));
                }
            }
            // Reaps finished sessions; their I/O errors are the client's business.
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    drop(listener);
    sessions.shutdown().await;
}

enum Line {
    Ok,
    TooLong,
    Eof,
}

/// Reads one line (up to and including `\n`) into `line`, which keeps at most `MAX_LINE`
/// bytes; a longer line is consumed whole and reported as `TooLong`.
async fn read_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
) -> io::Result<Line> {
    line.clear();
    let mut too_long = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(Line::Eof);
        }
        let end = buf.iter().position(|b| *b == b'\n');
        let n = end.map_or(buf.len(), |i| i + 1);
        if line.len() + n <= MAX_LINE {
            line.extend_from_slice(&buf[..n]);
        } else {
            too_long = true;
        }
        reader.consume(n);
        if end.is_some() {
            return Ok(if too_long { Line::TooLong } else { Line::Ok });
        }
    }
}

async fn reply(out: &mut OwnedWriteHalf, code: u16, text: &str) -> io::Result<()> {
    out.write_all(format!("{code} {text}\r\n").as_bytes()).await
}

/// `FROM:<a@b> PARAMS` → (`a@b`, `PARAMS`).
fn path_arg<'a>(arg: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    let inner = rest.strip_prefix('<')?;
    let end = inner.find('>')?;
    Some((&inner[..end], inner[end + 1..].trim()))
}

fn plain_credentials(b64: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.split('\0');
    let (_authz, user, password) = (parts.next()?, parts.next()?, parts.next()?);
    Some((user.to_string(), password.to_string()))
}

/// What a command asks the connection loop to do.
enum Next {
    /// Send this reply (a 421 also closes the connection).
    Reply(u16, String),
    /// Send this ready multi-line reply.
    Lines(String),
    /// Send 334 and check the credentials on the next line.
    AuthChallenge,
    /// Send 354 and read the message.
    Data,
    Quit,
}

fn r(code: u16, text: &str) -> Next {
    Next::Reply(code, text.to_string())
}

/// One connection's transaction state.
struct Session {
    shared: Arc<Shared>,
    from: Option<String>,
    rcpt: Vec<String>,
    authenticated: bool,
}

impl Session {
    fn command(&mut self, verb: &str, arg: &str) -> Next {
        let stage = match verb {
            "EHLO" | "HELO" => Some(Stage::Ehlo),
            "MAIL" => Some(Stage::MailFrom),
            "RCPT" => Some(Stage::RcptTo),
            "DATA" => Some(Stage::Data),
            _ => None,
        };
        if let Some((code, text)) = stage.and_then(|stage| self.shared.take_fault(stage)) {
            return Next::Reply(code, text);
        }
        let auth_required = self.shared.lock().auth.is_some();
        match verb {
            "HELO" | "EHLO" | "RSET" => {
                (self.from, self.rcpt) = (None, Vec::new());
                match verb {
                    "HELO" => r(250, "127.0.0.1"),
                    "RSET" => r(250, "2.0.0 OK"),
                    _ => {
                        let auth = if auth_required {
                            "250-AUTH PLAIN\r\n"
                        } else {
                            ""
                        };
                        Next::Lines(format!(
                            "250-127.0.0.1 greets you\r\n250-PIPELINING\r\n250-8BITMIME\r\n\
                             250-SMTPUTF8\r\n{auth}250 SIZE {MAX_MESSAGE}\r\n"
                        ))
                    }
                }
            }
            "AUTH" if !auth_required => r(502, "5.5.1 AUTH not available"),
            "AUTH" => match arg.split_once(' ').unwrap_or((arg, "")) {
                (mechanism, _) if !mechanism.eq_ignore_ascii_case("PLAIN") => {
                    r(504, "5.5.4 Only PLAIN")
                }
                (_, "") => Next::AuthChallenge,
                (_, initial) => self.auth(initial),
            },
            "MAIL" if auth_required && !self.authenticated => {
                r(530, "5.7.0 Authentication required")
            }
            "MAIL" if self.from.is_some() => r(503, "5.5.1 Nested MAIL"),
            "MAIL" => match path_arg(arg, "FROM:") {
                None => r(501, "5.5.4 Syntax: MAIL FROM:<address>"),
                Some((_, params)) if too_big(params) => r(552, "5.3.4 Message too big"),
                Some((path, _)) => {
                    self.from = Some(path.to_string());
                    r(250, "2.1.0 OK")
                }
            },
            "RCPT" if self.from.is_none() => r(503, "5.5.1 MAIL first"),
            "RCPT" => match path_arg(arg, "TO:") {
                None | Some(("", _)) => r(501, "5.5.4 Syntax: RCPT TO:<address>"),
                Some((path, _)) => {
                    let state = self.shared.lock();
                    match state.rejected.get(&path.to_ascii_lowercase()) {
                        Some((code, text)) => r(*code, text),
                        None => {
                            self.rcpt.push(path.to_string());
                            r(250, "2.1.5 OK")
                        }
                    }
                }
            },
            "DATA" if self.rcpt.is_empty() => r(503, "5.5.1 No valid recipients"),
            "DATA" => Next::Data,
            "NOOP" => r(250, "2.0.0 OK"),
            "VRFY" => r(252, "2.5.0 Cannot VRFY"),
            "QUIT" => Next::Quit,
            _ => r(500, "5.5.2 Command unrecognized"),
        }
    }

    fn auth(&mut self, answer: &str) -> Next {
        let expected = self.shared.lock().auth.clone();
        if expected.is_some() && plain_credentials(answer) == expected {
            self.authenticated = true;
            r(235, "2.7.0 Authentication successful")
        } else {
            r(535, "5.7.8 Authentication credentials invalid")
        }
    }

    /// Answers the final dot; records the message only when answering 250.
    fn end_of_data(&mut self, data: Data) -> Next {
        let mail_from = self.from.take().unwrap_or_default();
        let rcpt_to = std::mem::take(&mut self.rcpt);
        let data = match data {
            Data::TooLong => return r(500, "5.5.2 Line too long"),
            Data::TooBig => return r(552, "5.3.4 Message too big"),
            Data::Complete(data) => data,
        };
        if let Some((code, text)) = self.shared.take_fault(Stage::EndOfData) {
            return Next::Reply(code, text);
        }
        let mut state = self.shared.lock();
        state.messages.push(Received {
            mail_from,
            rcpt_to,
            data,
        });
        self.shared.count.send_replace(state.messages.len());
        r(250, "2.0.0 OK queued")
    }

    fn take_drop(&self) -> bool {
        let mut state = self.shared.lock();
        let drop_now = state.drop_during_data > 0;
        state.drop_during_data = state.drop_during_data.saturating_sub(1);
        drop_now
    }
}

async fn session(stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    // Each answer is its own write: without TCP_NODELAY, the answers to a pipelined group
    // (MAIL, RCPT, DATA) would wait for the client's delayed ACK, about 40 ms each, where a
    // real relay (Postfix, Exim) sends them together.
    stream.set_nodelay(true)?;
    let (read, mut out) = stream.into_split();
    let mut reader = BufReader::new(read);
    if let Some((code, text)) = shared.take_fault(Stage::Greeting) {
        return reply(&mut out, code, &text).await;
    }
    reply(&mut out, 220, "127.0.0.1 Herald test sink ESMTP").await?;
    let mut session = Session {
        shared,
        from: None,
        rcpt: Vec::new(),
        authenticated: false,
    };
    let mut line = Vec::new();
    let mut carried = 0usize;
    loop {
        let limit = session.shared.lock().per_connection;
        let next = match read_line(&mut reader, &mut line).await? {
            Line::Eof => return Ok(()),
            Line::TooLong => r(500, "5.5.2 Line too long"),
            Line::Ok => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\r', '\n']);
                let (verb, arg) = text.split_once(' ').unwrap_or((text, ""));
                let verb = verb.to_ascii_uppercase();
                match limit {
                    Some((n, true)) if verb == "MAIL" && carried >= n => {
                        r(421, "4.7.0 Too many messages on this connection")
                    }
                    _ => session.command(&verb, arg),
                }
            }
        };
        let next = match next {
            Next::AuthChallenge => {
                reply(&mut out, 334, "").await?;
                match read_line(&mut reader, &mut line).await? {
                    Line::Ok => session.auth(&String::from_utf8_lossy(&line)),
                    _ => return Ok(()),
                }
            }
            Next::Data => {
                reply(&mut out, 354, "End data with <CR><LF>.<CR><LF>").await?;
                if session.take_drop() {
                    // Some of the message arrived; the final dot is never acknowledged.
                    read_line(&mut reader, &mut line).await?;
                    return Ok(());
                }
                match read_data(&mut reader, &mut line).await? {
                    Some(data) => {
                        let answer = session.end_of_data(data);
                        let pace = session.shared.lock().pace;
                        if let Some(delay) = pace {
                            tokio::time::sleep(delay).await;
                        }
                        if matches!(answer, Next::Reply(250, _)) {
                            carried += 1;
                            if let Some((n, false)) = limit
                                && carried >= n
                            {
                                if let Next::Reply(code, text) = &answer {
                                    reply(&mut out, *code, text).await?;
                                }
                                return Ok(());
                            }
                        }
                        answer
                    }
                    None => return Ok(()),
                }
            }
            next => next,
        };
        match next {
            Next::Reply(code, text) => {
                reply(&mut out, code, &text).await?;
                if code == 421 {
                    return Ok(());
                }
            }
            Next::Lines(lines) => out.write_all(lines.as_bytes()).await?,
            Next::Quit => return reply(&mut out, 221, "2.0.0 Bye").await,
            Next::AuthChallenge | Next::Data => unreachable!("handled above"),
        }
    }
}

/// A `SIZE=n` parameter larger than [`MAX_MESSAGE`].
fn too_big(params: &str) -> bool {
    params.split_whitespace().any(|p| {
        p.get(..5).is_some_and(|k| k.eq_ignore_ascii_case("SIZE="))
            && p[5..].parse::<usize>().is_ok_and(|n| n > MAX_MESSAGE)
    })
}

/// A message read up to its final dot.
enum Data {
    Complete(Vec<u8>),
    TooLong,
    TooBig,
}

/// Reads message data up to the `.` line, undoing dot-stuffing; keeps reading to the end
/// when the message is refused so the connection stays in step. `None`: the client left.
async fn read_data(
    reader: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
) -> io::Result<Option<Data>> {
    let mut data = Vec::new();
    let mut refused = None;
    loop {
        match read_line(reader, line).await? {
            Line::Eof => return Ok(None),
            Line::TooLong => {
                refused.get_or_insert(Data::TooLong);
                continue;
            }
            Line::Ok => {}
        }
        if line.as_slice() == b".\r\n" || line.as_slice() == b".\n" {
            return Ok(Some(refused.unwrap_or(Data::Complete(data))));
        }
        let content = line.strip_prefix(b".").unwrap_or(line);
        if refused.is_none() {
            if data.len() + content.len() > MAX_MESSAGE {
                refused = Some(Data::TooBig);
                data = Vec::new();
            } else {
                data.extend_from_slice(content);
            }
        }
    }
}
