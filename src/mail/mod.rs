//! Outgoing nosy mail: built by the reactor during the call, written to the
//! tracker's outbox (`db/outbox/`) as part of the call's transaction (so it exists
//! exactly when the change does, crash or not), and delivered by the tracker's
//! delivery thread ([`outbox`]) with retries. A slow or dead mail server
//! never delays an answer, and a restart loses no mail. Mail goes to the
//! `[mail] debug` file when that is set (as Roundup does), otherwise to the SMTP
//! server in `[mail] host`.

pub mod outbox;

pub use outbox::Outbox;

use crate::config::Settings;
use crate::store::Tx;
use crate::store::OUTBOX_DIR;
use std::io::Write;

/// One mail to send (also its form in the outbox, as TOML).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutgoingMail {
    /// Recipient addresses.
    pub to: Vec<String>,
    /// The From header.
    pub from: String,
    /// The Subject header.
    pub subject: String,
    /// The Message-Id (with angle brackets).
    pub message_id: String,
    /// The plain-text body.
    pub body: String,
    /// A complete message composed elsewhere (by Roundup's own mail code, run by a
    /// Python detector): sent exactly as it is, with `from` as the envelope
    /// sender and `to` as the envelope recipients; the fields above are then
    /// informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// A new unique Message-Id for a message about `<classname><id>`, in Roundup's
/// form `<TIME.RANDOM.CLASSNAMEID@MAIL_DOMAIN>`: `TIME` is Python's `str(time.time())`
/// and `RANDOM` the base32 text of 10 random bytes (`roundupdb.send_message`).
pub fn new_message_id(classname: &str, id: crate::store::Id, domain: &str) -> String {
    let random: [u8; 10] = rand::random();
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    // Rust prints the shortest round-trip digits, as Python's float repr does;
    // Python keeps a ".0" on whole numbers.
    let mut time = format!("{t}");
    if !time.contains('.') {
        time.push_str(".0");
    }
    format!(
        "<{time}.{}.{classname}{id}@{}>",
        data_encoding::BASE32.encode(&random),
        if domain.is_empty() {
            "localhost"
        } else {
            domain
        }
    )
}

/// The From header Roundup uses for nosy mail: the author's name at the tracker address.
pub fn from_header(author: &str, settings: &Settings) -> String {
    let tracker = settings.tracker_address();
    let addr = if tracker.is_empty() {
        format!("roundup@{}", settings.mail_domain())
    } else {
        tracker
    };
    if author.is_empty() {
        addr
    } else {
        format!("{author} <{addr}>")
    }
}

impl OutgoingMail {
    /// A message Roundup's mail code composed (`Mailer.smtp_send(to, message,
    /// sender)` in a Python detector), to send as it is.
    pub fn raw(sender: &str, to: Vec<String>, message: String) -> OutgoingMail {
        let header = |name: &str| {
            message
                .split("\n\n")
                .next()
                .unwrap_or_default()
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                })
                .unwrap_or_default()
        };
        OutgoingMail {
            to,
            from: sender.to_string(),
            subject: header("subject"),
            message_id: header("message-id"),
            body: String::new(),
            raw: Some(message),
        }
    }

    /// The message as RFC 5322 text.
    pub fn render(&self) -> String {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        format!(
            "From: {}\nTo: {}\nSubject: {}\nMessage-Id: {}\nContent-Type: text/plain; charset=\"utf-8\"\nX-Roundup-Name: roundup-xmlrpc-server\n\n{}",
            self.from,
            self.to.join(", "),
            self.subject,
            self.message_id,
            self.body
        )
    }
}

/// Writes `mails` to the outbox inside `tx`: they appear when it commits. Without
/// `[mail] debug` or `[mail] host` there is nowhere to send them: they are
/// dropped with a warning, as before there was an outbox.
pub fn queue(
    tx: &mut dyn Tx,
    mails: &[OutgoingMail],
    settings: &Settings,
) -> crate::store::Result<()> {
    if mails.is_empty() {
        return Ok(());
    }
    if settings.mail.debug.is_none() && settings.mail.host.is_none() {
        for m in mails {
            tracing::warn!(to = ?m.to, "no [mail] host configured; nosy mail not sent");
        }
        return Ok(());
    }
    for m in mails {
        let text = toml::to_string(m).map_err(|e| {
            crate::store::StoreError::Io(std::io::Error::other(format!("mail: {e}")))
        })?;
        tx.put_file_on_commit(OUTBOX_DIR, &queue_name(), text.as_bytes())?;
    }
    Ok(())
}

/// A new outbox file name: sorts by queueing time, unique in the process and
/// across processes.
fn queue_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed) % 1_000_000;
    let r: u32 = rand::random();
    format!("{micros:020}-{seq:06}-{r:08x}{}", outbox::MAIL_EXT)
}

/// Reads an outbox file back.
pub fn from_queue_file(text: &str) -> Result<OutgoingMail, MailError> {
    toml::from_str(text).map_err(|e| MailError::Message(format!("unreadable outbox file: {e}")))
}

/// Delivers one mail: appends it to the `[mail] debug` file, or sends it through
/// `[mail] host`.
pub fn deliver_one(m: &OutgoingMail, settings: &Settings) -> Result<(), MailError> {
    if let Some(path) = &settings.mail.debug {
        let text = match &m.raw {
            // Roundup's Mailer.smtp_send writes its messages so (the date format,
            // month number included, is Roundup's).
            Some(raw) => format!(
                "From {} {}\nFROM: {}\nTO: {}\n{raw}\n\n",
                m.from,
                chrono::Utc::now().format("%a %b %m %H:%M:%S %Y"),
                m.from,
                m.to.join(", ")
            ),
            None => format!("{}\n", m.render()),
        };
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| MailError::File(format!("{}: {e}", path.display())))
    } else if let Some(host) = &settings.mail.host {
        send_smtp(m, host, settings)
    } else {
        Err(MailError::Message("no [mail] host configured".into()))
    }
}

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// An address or header could not be used (permanent).
    #[error("bad message: {0}")]
    Message(String),
    /// The SMTP conversation failed.
    #[error("smtp: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// The `[mail] debug` file could not be written (retried).
    #[error("mail debug file {0}")]
    File(String),
}

impl MailError {
    /// True when trying again cannot help: a bad message, or an SMTP 5xx answer.
    pub fn is_permanent(&self) -> bool {
        match self {
            MailError::Message(_) => true,
            MailError::Smtp(e) => e.is_permanent(),
            MailError::File(_) => false,
        }
    }
}

/// Sends one mail through `[mail] host` (STARTTLS when `[mail] tls`, AUTH when
/// `[mail] username` is set).
fn send_smtp(m: &OutgoingMail, host: &str, settings: &Settings) -> Result<(), MailError> {
    use lettre::message::header::ContentType;
    use lettre::{Message, Transport};
    let bad = |e: &dyn std::fmt::Display| MailError::Message(e.to_string());
    if let Some(raw) = &m.raw {
        let mut to = Vec::with_capacity(m.to.len());
        for t in &m.to {
            to.push(t.parse().map_err(|e| bad(&e))?);
        }
        let from = if m.from.is_empty() {
            None
        } else {
            Some(m.from.parse().map_err(|e| bad(&e))?)
        };
        let envelope = lettre::address::Envelope::new(from, to).map_err(|e| bad(&e))?;
        smtp_transport(host, settings)?.send_raw(&envelope, raw.as_bytes())?;
        return Ok(());
    }
    let mut builder = Message::builder()
        .from(m.from.parse().map_err(|e| bad(&e))?)
        .subject(m.subject.clone())
        .header(ContentType::TEXT_PLAIN);
    if !m.message_id.is_empty() {
        builder = builder.message_id(Some(m.message_id.clone()));
    }
    for to in &m.to {
        builder = builder.to(to.parse().map_err(|e| bad(&e))?);
    }
    let message = builder.body(m.body.clone()).map_err(|e| bad(&e))?;
    smtp_transport(host, settings)?.send(&message)?;
    Ok(())
}

/// The SMTP transport of `[mail]` (STARTTLS when `[mail] tls`, AUTH when
/// `[mail] username` is set).
fn smtp_transport(host: &str, settings: &Settings) -> Result<lettre::SmtpTransport, MailError> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::SmtpTransport;
    let mut transport = if settings.mail.tls {
        SmtpTransport::starttls_relay(host)?
    } else {
        SmtpTransport::builder_dangerous(host)
    }
    .port(settings.mail.port)
    .timeout(Some(std::time::Duration::from_secs(30)));
    if let Some(username) = &settings.mail.username {
        transport = transport.credentials(Credentials::new(
            username.clone(),
            settings.mail.password.clone().unwrap_or_default(),
        ));
    }
    Ok(transport.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_files_read_back_exactly() {
        let m = OutgoingMail {
            to: vec!["joe@example.com".into(), "bob@example.com".into()],
            from: "Admin \"x\" <tracker@example.com>".into(),
            subject: "[issue1] \u{e9}\u{4e2d} \"quoted\" '\\' \r\n\t".into(),
            message_id: "<1.2@example.com>".into(),
            body: "line 1\n\u{0}\u{7f} \"\"\" ''' end\n".into(),
            raw: None,
        };
        let text = toml::to_string(&m).expect("serialise");
        assert_eq!(from_queue_file(&text).expect("read back"), m);
        let bad = from_queue_file("to = 1").expect_err("not a mail");
        assert!(bad.is_permanent());
    }

    #[test]
    fn queue_names_sort_by_time_and_are_unique() {
        let a = queue_name();
        let b = queue_name();
        assert!(a < b, "{a} {b}");
        assert!(a.ends_with(outbox::MAIL_EXT));
        assert!(!a.contains('/'));
    }
}
