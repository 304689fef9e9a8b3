//! Where the idp's emails (verification and password-reset codes) go: an SMTP server when
//! [`IdpConfig::smtp_url`](crate::IdpConfig::smtp_url) is set, else the development mailbox —
//! the last messages kept in memory, logged with `tracing`, and listed on the idp's
//! `/dev/mailbox` page.

use std::collections::VecDeque;

use parking_lot::Mutex;

use crate::smtp::SmtpSender;

/// Messages the development mailbox keeps (older ones are dropped).
const MAILBOX_CAPACITY: usize = 100;

/// One message the idp sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMail {
    /// The recipient.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
    /// The one-time code the message carries.
    pub code: String,
    /// When it was sent, Unix ms.
    pub sent_at: i64,
}

/// The idp's outgoing mail.
pub(crate) enum Mailer {
    /// No SMTP server: messages stay in memory (newest last) and in the log.
    Development(Mutex<VecDeque<SentMail>>),
    /// Messages go to an SMTP server.
    Smtp(SmtpSender),
}

impl Mailer {
    pub(crate) fn development() -> Self {
        Mailer::Development(Mutex::new(VecDeque::new()))
    }

    /// Sends `mail`: into the development mailbox at once, or to the SMTP server in the
    /// background (a failure is logged; the user can ask for a new code).
    pub(crate) fn send(&self, mail: SentMail) {
        match self {
            Mailer::Development(mailbox) => {
                tracing::info!(to = %mail.to, subject = %mail.subject, code = %mail.code,
                    "development mailbox: email not sent (no --smtp-url); code logged here and on /dev/mailbox");
                let mut mailbox = mailbox.lock();
                if mailbox.len() == MAILBOX_CAPACITY {
                    mailbox.pop_front();
                }
                mailbox.push_back(mail);
            }
            Mailer::Smtp(sender) => {
                let sender = sender.clone();
                tokio::spawn(deliver(sender, mail));
            }
        }
    }

    /// The development mailbox, newest first; `None` with an SMTP server.
    pub(crate) fn mailbox(&self) -> Option<Vec<SentMail>> {
        match self {
            Mailer::Development(mailbox) => Some(mailbox.lock().iter().rev().cloned().collect()),
            Mailer::Smtp(_) => None,
        }
    }
}

async fn deliver(sender: SmtpSender, mail: SentMail) {
    let (to, subject) = (&mail.to, &mail.subject);
    if let Err(error) = sender.send(to, subject, &mail.body).await {
        tracing::error!(%to, %error, code = error.code(), "email not sent");
    } else {
        tracing::info!(%to, %subject, "email sent");
    }
}
