//! Outgoing e-mail (Japanese) over SMTP with lettre. Without an SMTP server configured (the local
//! demo) a message is written to the log instead of being sent, and the pages say so.

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Clone)]
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    /// No SMTP server: messages go to the log.
    Log,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.delivers() { "Mailer::Smtp" } else { "Mailer::Log" })
    }
}

impl Mailer {
    /// `smtp://host:port` (plain, for a relay on loopback), `smtp://host:port?tls=required`
    /// (STARTTLS) or `smtps://host:port`, with optional `user:password@`; `None` logs messages.
    pub fn new(smtp_url: Option<&str>, from: &str) -> Result<Self, String> {
        let Some(url) = smtp_url.filter(|u| !u.trim().is_empty()) else {
            return Ok(Self::Log);
        };
        let from: Mailbox = from.parse().map_err(|e| format!("invalid sender address {from:?}: {e}"))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("invalid SMTP URL: {e}"))?
            .timeout(Some(std::time::Duration::from_secs(15)))
            .build();
        Ok(Self::Smtp { transport, from })
    }

    pub fn delivers(&self) -> bool {
        matches!(self, Self::Smtp { .. })
    }

    /// Sends a plain-text message.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), String> {
        match self {
            Self::Smtp { transport, from } => {
                let to: Mailbox = to.parse().map_err(|e| format!("invalid recipient: {e}"))?;
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(body)
                    .map_err(|e| format!("cannot build the message: {e}"))?;
                transport.send(message).await.map(drop).map_err(|e| format!("SMTP delivery failed: {e}"))
            }
            Self::Log => {
                tracing::info!(
                    to = %mask_email(to),
                    %subject,
                    "no SMTP server configured; this e-mail was not sent:\n{body}"
                );
                Ok(())
            }
        }
    }
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
        assert!(!Mailer::new(None, "x@example.jp").unwrap().delivers());
        assert!(Mailer::new(Some("smtp://127.0.0.1:2525"), "センター <nc@example.jp>").unwrap().delivers());
        assert!(Mailer::new(Some("ftp://127.0.0.1"), "nc@example.jp").is_err());
        assert!(Mailer::new(Some("smtp://127.0.0.1:2525"), "not an address").is_err());
        assert_eq!(mask_email("hanako@example.jp"), "h***@example.jp");
    }
}
