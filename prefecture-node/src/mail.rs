//! Outgoing e-mail (Japanese): a persisted queue (`mail_outbox`) and the background sender that
//! delivers it over SMTP with lettre.
//!
//! A request never talks to SMTP: it calls [`enqueue`] inside its own transaction, so the mail
//! exists exactly when the change that caused it does, and the answer does not depend on the mail
//! server (nor, for the nurse's sign-in form, on whether her address is registered). The sender
//! ([`Sender::run`], started by `serve`) retries with a capped backoff while SMTP is down and marks
//! each mail sent once. Bodies hold sign-in and confirmation links, so a body is blanked as soon as
//! the mail is sent, refused for good or past its expiry, and finished rows are pruned.
//!
//! Without an SMTP server, `serve --mail-to-log` writes each mail to the log instead (local
//! development only: the links in it work).

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use ncf_shared::db::{DbConn, Pool};
use ncf_shared::ids::RecordId;

use crate::schema::mail_outbox;

/// Backoff after a failed delivery: 1 s, doubling per failed attempt, at most this.
pub const MAX_RETRY_SECS: i64 = 300;
/// How long finished rows (no body left) are kept, for the operator's "was it sent?".
pub const KEEP_FINISHED_DAYS: i64 = 7;
/// Mails taken per round.
const BATCH: i64 = 20;

#[derive(Clone)]
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
        /// For `smtp://` URLs (plain or STARTTLS): one kept connection of our own, with
        /// `TCP_NODELAY`. lettre writes a message and its closing `.` separately; with Nagle's
        /// algorithm on, the `.` waits for the server's delayed ACK, 40 ms per message (digests
        /// went out at 17 a second). `smtps://` goes through lettre's transport.
        direct: Option<Arc<Direct>>,
    },
    /// `--mail-to-log`: messages go to the log.
    Log,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.delivers() { "Mailer::Smtp" } else { "Mailer::Log" })
    }
}

/// Why a delivery failed: worth retrying (server down, 4xx) or never (5xx, bad address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    Transient(String),
    Permanent(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transient(e) => write!(f, "{e} (will retry)"),
            Self::Permanent(e) => write!(f, "{e} (given up)"),
        }
    }
}

impl Mailer {
    /// `smtp://host:port` (plain, for a relay on loopback), `smtp://host:port?tls=required`
    /// (STARTTLS) or `smtps://host:port`, with optional `user:password@`.
    pub fn smtp(url: &str, from: &str) -> Result<Self, String> {
        let from: Mailbox = from.parse().map_err(|e| format!("invalid sender address {from:?}: {e}"))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("invalid SMTP URL: {e}"))?
            .timeout(Some(Duration::from_secs(15)))
            .build();
        Ok(Self::Smtp { transport, from, direct: Direct::from_url(url).map(Arc::new) })
    }

    pub fn delivers(&self) -> bool {
        matches!(self, Self::Smtp { .. })
    }

    /// Sends a plain-text message.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), SendError> {
        self.send_letter(&Letter {
            to,
            subject: subject.to_string(),
            text: body,
            html: None,
            message_id: None,
            unsubscribe: None,
        })
        .await
    }

    /// Sends a letter: plain text, or plain text and HTML as alternatives, with the headers given.
    pub async fn send_letter(&self, letter: &Letter<'_>) -> Result<(), SendError> {
        self.begin(letter).await?.commit().await
    }

    /// Writes a letter up to, not including, the end of its data: the server cannot have
    /// accepted it before [`Prepared::commit`]. Dropping the result instead closes the
    /// connection, which discards the message. (What a caller may do in between — the digests
    /// record the previous message as sent — overlaps with this message's round trips.)
    pub async fn begin<'a>(&'a self, letter: &Letter<'_>) -> Result<Prepared<'a>, SendError> {
        self.begin_composed(&self.compose(letter)?).await
    }

    /// The CPU's part of a message, done before any I/O: the MIME message built and, for our
    /// own sessions, formatted with its envelope. The digests compose a batch on another thread
    /// while the previous batch goes out. A recipient that is no address fails here, permanently.
    pub fn compose(&self, letter: &Letter<'_>) -> Result<Composed, SendError> {
        Ok(Composed(match self {
            Self::Smtp { from, direct, .. } => {
                let message = build(from, letter)?;
                match direct {
                    Some(direct) if direct.raw() => {
                        let envelope = message.envelope();
                        let formatted = message.formatted();
                        Composition::Raw {
                            from: envelope.from().map(|a| a.to_string()).unwrap_or_default(),
                            to: envelope.to().first().map(|a| a.to_string()).unwrap_or_default(),
                            eight_bit: !formatted.is_ascii(),
                            data: stuffed(&formatted),
                        }
                    }
                    _ => Composition::Message(Box::new(message)),
                }
            }
            Self::Log => Composition::Logged {
                to: mask_email(letter.to),
                subject: letter.subject.clone(),
                message_id: letter.message_id.clone().unwrap_or_default(),
                text: letter.text.clone(),
            },
        }))
    }

    /// [`Mailer::begin`] for a composed message (which stays the caller's, to begin again on
    /// another session if this one is refused).
    pub async fn begin_composed<'a>(&'a self, composed: &Composed) -> Result<Prepared<'a>, SendError> {
        match (self, &composed.0) {
            (Self::Smtp { direct: Some(direct), .. }, Composition::Raw { from, to, eight_bit, data }) => {
                direct.begin(from, to, *eight_bit, data).await
            }
            (Self::Smtp { direct: Some(direct), .. }, Composition::Message(message)) => {
                Ok(Prepared(Stage::Lettre { direct, message: (**message).clone() }))
            }
            (Self::Smtp { transport, direct: None, .. }, Composition::Message(message)) => {
                Ok(Prepared(Stage::Whole { transport, message: (**message).clone() }))
            }
            (Self::Log, Composition::Logged { to, subject, message_id, text }) => {
                Ok(Prepared(Stage::Logged {
                    to: to.clone(),
                    subject: subject.clone(),
                    message_id: message_id.clone(),
                    text: text.clone(),
                }))
            }
            _ => Err(SendError::Transient("a message composed for another mailer".into())),
        }
    }
}

/// A message composed by [`Mailer::compose`], ready to begin on a session. (No `Debug`: it
/// holds her address and the whole message.)
pub struct Composed(Composition);

enum Composition {
    /// For our own session: the envelope, and the formatted message as SMTP's DATA carries it
    /// ([`stuffed`]); whether it holds 8-bit bytes.
    Raw { from: String, to: String, eight_bit: bool, data: Vec<u8> },
    /// For lettre (STARTTLS, credentials, `smtps://`).
    Message(Box<Message>),
    /// `--mail-to-log`.
    Logged { to: String, subject: String, message_id: String, text: String },
}

fn build(from: &Mailbox, letter: &Letter<'_>) -> Result<Message, SendError> {
    let to: Mailbox =
        letter.to.parse().map_err(|e| SendError::Permanent(format!("invalid recipient: {e}")))?;
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(letter.subject.as_str())
        .message_id(letter.message_id.clone());
    if let Some(url) = &letter.unsubscribe {
        // RFC 8058: a mail client may offer one-click unsubscribe by POSTing to it.
        builder = builder
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_string(),
            ));
    }
    match &letter.html {
        Some(html) => builder.multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text_body(&letter.text)),
                )
                .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(text_body(html))),
        ),
        None => builder.header(ContentType::TEXT_PLAIN).body(text_body(&letter.text)),
    }
    .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))
}

/// A text part's body with CRLF line ends: 7bit when it is short-lined ASCII, otherwise base64
/// in lines of 76 (RFC 2045 6.8). Japanese text is never ASCII; base64 carries it in 4/3 of its
/// size where quoted-printable takes 3×, and costs far less to make than lettre's weighing of
/// the two for every part (most of a digest's composing time).
fn text_body(text: &str) -> Body {
    let crlf =
        if text.contains('\r') { text.replace("\r\n", "\n") } else { text.to_owned() }.replace('\n', "\r\n");
    if crlf.is_ascii() && crlf.split("\r\n").all(|line| line.len() <= 998) {
        return Body::new(crlf);
    }
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(crlf.as_bytes());
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / 76 * 2 + 2);
    for (i, line) in encoded.as_bytes().chunks(76).enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(line);
    }
    Body::dangerous_pre_encoded(out, ContentTransferEncoding::Base64)
}

/// A letter written up to the end of its data ([`Mailer::begin`]).
pub struct Prepared<'a>(Stage<'a>);

enum Stage<'a> {
    /// On our own session: envelope accepted, data written but for its end.
    Raw {
        direct: &'a Direct,
        raw: Raw,
    },
    /// Through lettre (STARTTLS, credentials, `smtps://`): sent whole at commit.
    Whole {
        transport: &'a AsyncSmtpTransport<Tokio1Executor>,
        message: Message,
    },
    Lettre {
        direct: &'a Direct,
        message: Message,
    },
    /// `--mail-to-log`: written to the log at commit.
    Logged {
        to: String,
        subject: String,
        message_id: String,
        text: String,
    },
}

impl Prepared<'_> {
    /// Ends the data: from here the server may have accepted the message.
    pub async fn commit(self) -> Result<(), SendError> {
        match self.0 {
            // A refusal of the message itself (4xx or 5xx to the final dot) is the relay's policy,
            // retried later, never her address bouncing; the session is not kept after one.
            Stage::Raw { direct, mut raw } => {
                let ended = raw.commit().await;
                if ended.is_ok() {
                    direct.keep(raw);
                }
                ended
            }
            Stage::Whole { transport, message } => transport.send(message).await.map(drop).map_err(classify),
            Stage::Lettre { direct, message } => direct.send(&message).await,
            Stage::Logged { to, subject, message_id, text } => {
                tracing::warn!(
                    to = %to,
                    subject = %subject,
                    message_id = %message_id,
                    "--mail-to-log: this e-mail was not sent, it is only in this log:\n{}",
                    text
                );
                Ok(())
            }
        }
    }
}

/// A kept SMTP connection for `smtp://` URLs (see [`Mailer::Smtp`]), reconnected when broken.
pub struct Direct {
    host: String,
    port: u16,
    starttls: StartTls,
    credentials: Option<lettre::transport::smtp::authentication::Credentials>,
    conn: tokio::sync::Mutex<Option<lettre::transport::smtp::client::AsyncSmtpConnection>>,
    /// Plain `smtp://` without credentials (a relay on loopback or in the data centre): our own
    /// minimal client, which pipelines MAIL, RCPT and DATA (RFC 2920) when the server offers it:
    /// two round trips a message instead of four. Idle sessions are kept here; a message being
    /// written owns its session (so the next one can begin on another while it ends).
    idle: std::sync::Mutex<Vec<Raw>>,
}

/// A plain SMTP session: what `Direct` needs of RFC 5321, no more.
struct Raw {
    reader: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    pipelining: bool,
    eight_bit: bool,
    /// The server answered the last reset: the session can carry another message.
    reusable: bool,
}

fn reply_error(code: u16, text: &str) -> SendError {
    let text = format!("SMTP delivery failed: {code} {}", text.trim());
    if (500..600).contains(&code) { SendError::Permanent(text) } else { SendError::Transient(text) }
}

fn io_error(e: std::io::Error) -> SendError {
    SendError::Transient(format!("SMTP connection failed: {e}"))
}

impl Raw {
    async fn connect(host: &str, port: u16) -> Result<Self, SendError> {
        use tokio::io::AsyncWriteExt;
        let stream =
            tokio::time::timeout(Duration::from_secs(15), tokio::net::TcpStream::connect((host, port)))
                .await
                .map_err(|_| SendError::Transient("SMTP server unreachable: connection timed out".into()))?
                .map_err(|e| SendError::Transient(format!("SMTP server unreachable: {e}")))?;
        stream.set_nodelay(true).map_err(io_error)?;
        let (read, writer) = stream.into_split();
        let mut raw = Self {
            reader: tokio::io::BufReader::new(read),
            writer,
            pipelining: false,
            eight_bit: false,
            reusable: true,
        };
        // Whatever the server says before a message (a full session table, a HELO-only relay)
        // is about the server, never about a recipient: temporary.
        let (code, text) = raw.reply().await?;
        if code != 220 {
            return Err(SendError::Transient(format!(
                "SMTP server refused the session: {code} {}",
                text.trim()
            )));
        }
        let hello = hostname();
        raw.writer.write_all(format!("EHLO {hello}\r\n").as_bytes()).await.map_err(io_error)?;
        let (code, text) = raw.reply().await?;
        if code != 250 {
            return Err(SendError::Transient(format!("SMTP server refused EHLO: {code} {}", text.trim())));
        }
        let upper = text.to_ascii_uppercase();
        raw.pipelining = upper.lines().any(|l| l.trim() == "PIPELINING");
        raw.eight_bit = upper.lines().any(|l| l.trim() == "8BITMIME");
        Ok(raw)
    }

    /// One reply, all its lines (`250-…` continues, `250 …` ends); the text without the codes.
    async fn reply(&mut self) -> Result<(u16, String), SendError> {
        use tokio::io::AsyncBufReadExt;
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(60), self.reader.read_line(&mut line))
                .await
                .map_err(|_| SendError::Transient("SMTP server did not answer".into()))?
                .map_err(io_error)?;
            if n == 0 {
                return Err(SendError::Transient("SMTP server closed the connection".into()));
            }
            let code: u16 = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| SendError::Transient(format!("unreadable SMTP reply: {}", line.trim())))?;
            text.push_str(line.get(4..).unwrap_or("").trim_end());
            text.push('\n');
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, text));
            }
        }
    }

    /// The envelope, and the data ([`stuffed`]) but for its end (the server accepts nothing
    /// before it).
    async fn begin(&mut self, from: &str, to: &str, eight_bit: bool, data: &[u8]) -> Result<(), SendError> {
        use tokio::io::AsyncWriteExt;
        let body = if eight_bit && self.eight_bit { " BODY=8BITMIME" } else { "" };
        let commands =
            [format!("MAIL FROM:<{from}>{body}\r\n"), format!("RCPT TO:<{to}>\r\n"), "DATA\r\n".into()];
        let mut replies = Vec::with_capacity(3);
        if self.pipelining {
            self.writer.write_all(commands.concat().as_bytes()).await.map_err(io_error)?;
            for _ in 0..3 {
                replies.push(self.reply().await?);
            }
        } else {
            for c in &commands {
                self.writer.write_all(c.as_bytes()).await.map_err(io_error)?;
                let r = self.reply().await?;
                let ok = r.0 < 400;
                replies.push(r);
                if !ok {
                    break;
                }
            }
        }
        let failed = replies.iter().take(2).find(|(code, _)| *code >= 400).cloned();
        let data_ok = replies.get(2).is_some_and(|(code, _)| *code == 354);
        // Only a refused recipient says something about her address; a refused sender, DATA or
        // message is the relay's configuration or policy, retried later like a server that is
        // down (never a reason to mark her address as bouncing).
        let recipient_refused = replies.first().is_some_and(|(code, _)| *code < 400)
            && replies.get(1).is_some_and(|(code, _)| *code >= 500);
        if let Some((code, text)) = failed.or_else(|| (!data_ok).then(|| replies.last().cloned()).flatten()) {
            if data_ok {
                // The server wants data although a command failed: end it empty, then reset.
                self.writer.write_all(b".\r\n").await.map_err(io_error)?;
                self.reply().await?;
            }
            self.writer.write_all(b"RSET\r\n").await.map_err(io_error)?;
            self.reusable = self.reply().await?.0 == 250;
            return Err(if recipient_refused {
                reply_error(code, &text)
            } else {
                SendError::Transient(format!("SMTP relay refused the message: {code} {}", text.trim()))
            });
        }
        self.writer.write_all(data).await.map_err(io_error)
    }

    /// Ends the data; the server's answer says whether it took the message.
    async fn commit(&mut self) -> Result<(), SendError> {
        use tokio::io::AsyncWriteExt;
        self.writer.write_all(b".\r\n").await.map_err(io_error)?;
        let (code, text) = self.reply().await?;
        if code == 250 {
            Ok(())
        } else {
            Err(SendError::Transient(format!("SMTP relay refused the message: {code} {}", text.trim())))
        }
    }
}

/// A formatted message as DATA carries it: a `.` doubled at the start of every line (RFC 5321
/// 4.5.2), ending in CRLF, without the final `.` that ends the data (sent apart, at commit).
fn stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    if message.first() == Some(&b'.') {
        out.push(b'.');
    }
    let mut last = 0;
    for i in memchr::memmem::find_iter(message, b"\n.") {
        out.extend_from_slice(&message[last..=i]);
        out.push(b'.');
        last = i + 1;
    }
    out.extend_from_slice(&message[last..]);
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
        .unwrap_or_else(|| "localhost".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartTls {
    Never,
    Opportunistic,
    Required,
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Direct {
    /// `smtp://[user[:password]@]host[:port][?tls=required|opportunistic]`; `None` for other
    /// schemes (lettre's transport handles them).
    fn from_url(url: &str) -> Option<Self> {
        let rest = url.strip_prefix("smtp://")?;
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = authority.trim_end_matches('/');
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse().ok()?),
            _ => (hostport, 25),
        };
        let starttls = match query.split('&').find_map(|kv| kv.strip_prefix("tls=")) {
            Some("required") => StartTls::Required,
            Some("opportunistic") => StartTls::Opportunistic,
            _ => StartTls::Never,
        };
        let credentials = userinfo.map(|u| {
            let (user, password) = u.split_once(':').unwrap_or((u, ""));
            lettre::transport::smtp::authentication::Credentials::new(
                percent_decode(user),
                percent_decode(password),
            )
        });
        Some(Self {
            host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
            port,
            starttls,
            credentials,
            conn: tokio::sync::Mutex::new(None),
            idle: std::sync::Mutex::new(Vec::new()),
        })
    }

    async fn connect(&self) -> Result<lettre::transport::smtp::client::AsyncSmtpConnection, SendError> {
        use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
        use lettre::transport::smtp::extension::ClientId;
        let stream = tokio::time::timeout(
            Duration::from_secs(15),
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connection timed out"))
        .and_then(|r| r)
        .map_err(|e| SendError::Transient(format!("SMTP server unreachable: {e}")))?;
        stream.set_nodelay(true).map_err(|e| SendError::Transient(format!("SMTP socket: {e}")))?;
        let hello = ClientId::default();
        let mut conn =
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &hello).await.map_err(classify)?;
        if self.starttls == StartTls::Required
            || self.starttls == StartTls::Opportunistic && conn.can_starttls()
        {
            let tls = TlsParameters::new(self.host.clone()).map_err(classify)?;
            conn.starttls(tls, &hello).await.map_err(classify)?;
        }
        if let Some(credentials) = &self.credentials {
            use lettre::transport::smtp::authentication::Mechanism;
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials).await.map_err(classify)?;
        }
        Ok(conn)
    }

    /// Whether messages go over our own plain session ([`Raw`]), not lettre's.
    fn raw(&self) -> bool {
        self.starttls == StartTls::Never && self.credentials.is_none()
    }

    /// Writes a formatted message on a kept session up to the end of its data; a kept session
    /// found closed (the server timed it out while idle) is replaced once — nothing of the
    /// message can have been accepted yet.
    async fn begin(
        &self,
        from: &str,
        to: &str,
        eight_bit: bool,
        data: &[u8],
    ) -> Result<Prepared<'_>, SendError> {
        for attempt in 0..2 {
            // The second attempt always on a new session: the idle ones may all have timed out.
            let kept = match attempt {
                0 => self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop(),
                _ => {
                    self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
                    None
                }
            };
            let reused = kept.is_some();
            let mut raw = match kept {
                Some(raw) => raw,
                None => Raw::connect(&self.host, self.port).await?,
            };
            match raw.begin(from, to, eight_bit, data).await {
                Ok(()) => return Ok(Prepared(Stage::Raw { direct: self, raw })),
                Err(SendError::Permanent(e)) => {
                    self.keep(raw); // a refused recipient leaves the session usable (RSET)
                    return Err(SendError::Permanent(e));
                }
                Err(_) if reused && attempt == 0 => continue,
                Err(e) => return Err(e),
            }
        }
        unreachable!("the second attempt returns")
    }

    /// Keeps a session for the next message (a few at most: one per message in flight).
    fn keep(&self, raw: Raw) {
        if !raw.reusable {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < 4 {
            idle.push(raw);
        }
    }

    /// Sends through lettre's connection (STARTTLS, credentials), kept between messages.
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let bytes = message.formatted();
        let mut held = self.conn.lock().await;
        // A kept connection is tested (NOOP) before the message, never after: once the message
        // went out, a lost reply may hide an acceptance, and sending again could repeat it.
        let mut kept = held.take().filter(|c| !c.has_broken());
        if let Some(conn) = kept.as_mut()
            && !conn.test_connected().await
        {
            kept = None;
        }
        let mut conn = match kept {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let sent = conn.send(message.envelope(), &bytes).await;
        if !conn.has_broken() {
            *held = Some(conn);
        }
        sent.map(drop).map_err(classify)
    }
}

fn classify(e: lettre::transport::smtp::Error) -> SendError {
    let text = format!("SMTP delivery failed: {e}");
    if e.is_permanent() { SendError::Permanent(text) } else { SendError::Transient(text) }
}

/// One outgoing message.
#[derive(Debug, Clone)]
pub struct Letter<'a> {
    pub to: &'a str,
    pub subject: String,
    pub text: String,
    /// The same content as HTML, sent as an alternative to `text`.
    pub html: Option<String>,
    /// `<…@…>`; lettre makes one up when `None`.
    pub message_id: Option<String>,
    /// The one-click unsubscribe URL (`List-Unsubscribe` with `List-Unsubscribe-Post`).
    pub unsubscribe: Option<String>,
}

/// Queues a mail, to be called inside the caller's transaction: it is sent only if that commits.
pub fn enqueue(conn: &mut DbConn, to: &str, subject: &str, body: &str) -> QueryResult<()> {
    enqueue_until(conn, to, subject, body, None)
}

/// Queues a mail that is pointless after `expires_at` (the link in it no longer works): if it
/// could not be sent by then, its body is dropped unsent.
pub fn enqueue_until(
    conn: &mut DbConn,
    to: &str,
    subject: &str,
    body: &str,
    expires_at: Option<NaiveDateTime>,
) -> QueryResult<()> {
    let now = ncf_shared::time::now_utc();
    diesel::insert_into(mail_outbox::table)
        .values((
            mail_outbox::id.eq(RecordId::new().0),
            mail_outbox::to_address.eq(to),
            mail_outbox::subject.eq(subject),
            mail_outbox::body.eq(body),
            mail_outbox::state.eq("queued"),
            mail_outbox::created_at.eq(now),
            mail_outbox::expires_at.eq(expires_at),
            mail_outbox::attempts.eq(0),
            mail_outbox::next_attempt_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

/// A queued mail as the sender takes it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mail_outbox)]
pub struct QueuedMail {
    pub id: String,
    pub to_address: String,
    pub subject: String,
    pub body: String,
    pub attempts: i32,
}

/// Mails waiting to be sent, due now, oldest first. Expired ones are dropped first (body blanked),
/// and finished rows older than `KEEP_FINISHED_DAYS` pruned.
pub fn due(conn: &mut DbConn, now: NaiveDateTime, limit: i64) -> QueryResult<Vec<QueuedMail>> {
    let expired = diesel::update(
        mail_outbox::table.filter(mail_outbox::state.eq("queued")).filter(mail_outbox::expires_at.le(now)),
    )
    .set((mail_outbox::state.eq("expired"), mail_outbox::body.eq(""), mail_outbox::finished_at.eq(now)))
    .execute(conn)?;
    if expired > 0 {
        tracing::warn!(expired, "e-mails dropped unsent: their links expired before SMTP took them");
    }
    diesel::delete(
        mail_outbox::table
            .filter(mail_outbox::state.ne("queued"))
            .filter(mail_outbox::finished_at.le(now - chrono::Duration::days(KEEP_FINISHED_DAYS))),
    )
    .execute(conn)?;
    mail_outbox::table
        .filter(mail_outbox::state.eq("queued"))
        .filter(mail_outbox::next_attempt_at.le(now))
        .order((mail_outbox::next_attempt_at, mail_outbox::created_at))
        .limit(limit)
        .select(QueuedMail::as_select())
        .load(conn)
}

/// Records a delivery: sent (once: a mail already finished is left alone) and its body blanked.
/// Returns whether this call marked it.
pub fn mark_sent(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> QueryResult<bool> {
    let marked = diesel::update(mail_outbox::table.find(id).filter(mail_outbox::state.eq("queued")))
        .set((mail_outbox::state.eq("sent"), mail_outbox::body.eq(""), mail_outbox::finished_at.eq(now)))
        .execute(conn)?;
    Ok(marked == 1)
}

/// Records a failed delivery: retried after a backoff, or given up (body blanked) when permanent.
pub fn mark_failed(
    conn: &mut DbConn,
    mail: &QueuedMail,
    error: &SendError,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let attempts = mail.attempts + 1;
    let target = mail_outbox::table.find(&mail.id).filter(mail_outbox::state.eq("queued"));
    match error {
        SendError::Transient(e) => diesel::update(target)
            .set((
                mail_outbox::attempts.eq(attempts),
                mail_outbox::next_attempt_at.eq(now + chrono::Duration::seconds(retry_delay_secs(attempts))),
                mail_outbox::last_error.eq(e),
            ))
            .execute(conn),
        SendError::Permanent(e) => diesel::update(target)
            .set((
                mail_outbox::attempts.eq(attempts),
                mail_outbox::state.eq("refused"),
                mail_outbox::body.eq(""),
                mail_outbox::last_error.eq(e),
                mail_outbox::finished_at.eq(now),
            ))
            .execute(conn),
    }
    .map(drop)
}

/// Seconds to wait after `attempts` failed deliveries: 1, 2, 4, … up to `MAX_RETRY_SECS`.
pub fn retry_delay_secs(attempts: i32) -> i64 {
    let exponent = attempts.clamp(1, 20) - 1;
    (1_i64 << exponent).min(MAX_RETRY_SECS)
}

/// The background sender: takes due mails from the queue and delivers them one by one.
#[derive(Clone)]
pub struct Sender {
    pool: Pool,
    mailer: Mailer,
    wake: Arc<tokio::sync::Notify>,
}

impl Sender {
    pub fn new(pool: Pool, mailer: Mailer) -> Self {
        Self { pool, mailer, wake: Arc::new(tokio::sync::Notify::new()) }
    }

    /// Tells the sender a mail was just queued (otherwise it looks every `idle`).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs for ever: a failed round (database down) is logged and tried again later.
    pub async fn run(self, idle: Duration) {
        loop {
            match self.round().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "mail queue not read"),
            }
            let _ = tokio::time::timeout(idle, self.wake.notified()).await;
        }
    }

    /// One batch; returns whether a full batch was taken (more may be due).
    pub async fn round(&self) -> Result<bool, String> {
        let due = self.db(|conn| due(conn, ncf_shared::time::now_utc(), BATCH)).await?;
        let full = due.len() as i64 == BATCH;
        for mail in due {
            let outcome = self.mailer.send(&mail.to_address, &mail.subject, mail.body.clone()).await;
            let id = mail.id.clone();
            match outcome {
                Ok(()) => {
                    self.db(move |conn| mark_sent(conn, &id, ncf_shared::time::now_utc())).await?;
                    tracing::info!(mail = %mail.id, to = %mask_email(&mail.to_address), "e-mail sent");
                }
                Err(error) => {
                    tracing::warn!(
                        mail = %mail.id,
                        to = %mask_email(&mail.to_address),
                        attempts = mail.attempts + 1,
                        %error,
                        "e-mail not delivered"
                    );
                    let retry = matches!(error, SendError::Transient(_));
                    self.db(move |conn| mark_failed(conn, &mail, &error, ncf_shared::time::now_utc()))
                        .await?;
                    // The server is down: the rest of the batch would fail the same way.
                    if retry {
                        return Ok(false);
                    }
                }
            }
        }
        Ok(full)
    }

    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConn) -> QueryResult<T> + Send + 'static,
    ) -> Result<T, String> {
        on_pool(&self.pool, f).await
    }
}

/// Runs database work for the background senders (mail queue, digests) off the async threads.
pub(crate) async fn on_pool<T: Send + 'static>(
    pool: &Pool,
    f: impl FnOnce(&mut DbConn) -> QueryResult<T> + Send + 'static,
) -> Result<T, String> {
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        f(&mut conn).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// `hanako@example.jp` → `h***@example.jp`, for logs.
pub fn mask_email(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
        None => "***".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Inside a runtime, as in the server: the SMTP pool starts a task.
    #[tokio::test]
    async fn urls_and_masking() {
        assert!(!Mailer::Log.delivers());
        assert!(Mailer::smtp("smtp://127.0.0.1:2525", "センター <nc@example.jp>").unwrap().delivers());
        assert!(Mailer::smtp("ftp://127.0.0.1", "nc@example.jp").is_err());
        assert!(Mailer::smtp("smtp://127.0.0.1:2525", "not an address").is_err());
        assert_eq!(mask_email("hanako@example.jp"), "h***@example.jp");
    }

    #[test]
    fn data_doubles_a_leading_dot_on_every_line_and_ends_in_crlf() {
        assert_eq!(stuffed(b".a\r\nb.c\r\n.\r\n..d"), b"..a\r\nb.c\r\n..\r\n...d\r\n");
        assert_eq!(stuffed(b"plain\r\n"), b"plain\r\n");
        assert_eq!(stuffed(b""), b"\r\n");
    }

    #[test]
    fn japanese_text_goes_in_base64_lines_of_crlf_text() {
        use base64::Engine as _;
        let text = "山田 花子 様\n\n求人（3件）\n".repeat(20);
        let body = text_body(&text);
        assert_eq!(body.encoding(), ContentTransferEncoding::Base64);
        let encoded = std::str::from_utf8(body.as_ref()).unwrap();
        assert!(encoded.split("\r\n").all(|line| line.len() <= 76), "lines of 76 at most");
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.replace("\r\n", "")).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), text.replace('\n', "\r\n"));
        // Plain ASCII stays readable as it is.
        let ascii = text_body("Hello\nworld\n");
        assert_eq!(ascii.encoding(), ContentTransferEncoding::SevenBit);
        assert_eq!(ascii.as_ref(), b"Hello\r\nworld\r\n");
    }

    #[test]
    fn retries_back_off_and_are_capped() {
        let delays: Vec<i64> = (1..=12).map(retry_delay_secs).collect();
        assert_eq!(&delays[..5], [1, 2, 4, 8, 16]);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(retry_delay_secs(100), MAX_RETRY_SECS);
    }
}
