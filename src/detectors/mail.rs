//! Outgoing nosy mail: queued by the reactor during the call and delivered after
//! the transaction has committed, so a mail failure never loses the write. It
//! goes to the `[mail] debug` file when that is set (as Roundup does), otherwise
//! to the SMTP server in `[mail] host`.

use crate::tracker::Settings;
use std::io::Write;

/// One mail to send.
#[derive(Debug, Clone, PartialEq)]
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
    let addr = if settings.tracker_email.is_empty() {
        format!("roundup@{}", settings.mail_domain)
    } else {
        settings.tracker_email.clone()
    };
    if author.is_empty() {
        addr
    } else {
        format!("{author} <{addr}>")
    }
}

impl OutgoingMail {
    /// The message as RFC 5322 text.
    pub fn render(&self) -> String {
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

/// Delivers queued mail. Failures are logged and never propagate: the data is
/// already committed.
pub fn deliver(outbox: Vec<OutgoingMail>, settings: &Settings) {
    for m in outbox {
        if let Some(path) = &settings.mail_debug {
            let res = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| writeln!(f, "{}", m.render()));
            if let Err(e) = res {
                tracing::error!(file = %path.display(), error = %e, "cannot write mail debug file");
            }
        } else if settings.mail_host.is_empty() {
            tracing::warn!(to = ?m.to, "no [mail] host configured; nosy mail not sent");
        } else if let Err(e) = send_smtp(&m, settings) {
            tracing::error!(to = ?m.to, host = %settings.mail_host, error = %e, "nosy mail not sent");
        }
    }
}

/// Why an SMTP delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// An address or header could not be used.
    #[error("bad message: {0}")]
    Message(String),
    /// The SMTP conversation failed.
    #[error("smtp: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// Sends one mail through `[mail] host` (STARTTLS when `[mail] tls`, AUTH when
/// `[mail] username` is set).
fn send_smtp(m: &OutgoingMail, settings: &Settings) -> Result<(), MailError> {
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{Message, SmtpTransport, Transport};
    let bad = |e: &dyn std::fmt::Display| MailError::Message(e.to_string());
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
    let mut transport = if settings.mail_tls {
        SmtpTransport::starttls_relay(&settings.mail_host)?
    } else {
        SmtpTransport::builder_dangerous(&settings.mail_host)
    }
    .port(settings.mail_port)
    .timeout(Some(std::time::Duration::from_secs(30)));
    if !settings.mail_username.is_empty() {
        transport = transport.credentials(Credentials::new(
            settings.mail_username.clone(),
            settings.mail_password.clone(),
        ));
    }
    transport.build().send(&message)?;
    Ok(())
}
