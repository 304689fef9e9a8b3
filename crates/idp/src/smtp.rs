//! A small SMTP submission client over tokio (RFC 5321 + STARTTLS + AUTH PLAIN), enough to
//! send the idp's plain-text messages: `smtps://` speaks TLS from the start (port 465 by
//! default); `smtp://` upgrades with STARTTLS (port 587 by default) and refuses a server that
//! does not offer it — unless the server is on a loopback address (a local relay or a
//! development catcher such as Mailpit), where plain SMTP is accepted. TLS is rustls with
//! aws-lc-rs and the system's root certificates.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A whole delivery (connect, TLS, commands, message) must finish within this time.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest reply line read from a server.
const MAX_REPLY_LINE: usize = 4096;

/// Why an email could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// The `--smtp-url` is not usable.
    #[error("invalid SMTP URL: {0}")]
    Url(String),
    /// Connecting, reading or writing failed.
    #[error("SMTP connection to {server} failed: {source}")]
    Io {
        /// `host:port`.
        server: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TLS could not be set up.
    #[error("SMTP TLS error: {0}")]
    Tls(String),
    /// The server answered a command with an error (or not in SMTP).
    #[error("SMTP server refused `{command}`: {reply}")]
    Refused {
        /// The command (credentials never included).
        command: String,
        /// The server's reply.
        reply: String,
    },
    /// The server does not offer STARTTLS and is not on a loopback address.
    #[error("SMTP server {0} does not offer STARTTLS; use smtps:// or a server that does")]
    NoStartTls(String),
    /// A delivery took longer than 30 s.
    #[error("SMTP delivery timed out after {0:?}")]
    Timeout(Duration),
}

impl SmtpError {
    /// A short stable code.
    pub fn code(&self) -> &'static str {
        match self {
            SmtpError::Url(_) => "SmtpUrl",
            SmtpError::Io { .. } => "SmtpIo",
            SmtpError::Tls(_) => "SmtpTls",
            SmtpError::Refused { .. } => "SmtpRefused",
            SmtpError::NoStartTls(_) => "SmtpNoStartTls",
            SmtpError::Timeout(_) => "SmtpTimeout",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://`: STARTTLS, required unless the host is a loopback address.
    StartTls { plain_allowed: bool },
}

/// Sends messages through one SMTP server. Cheap to clone.
#[derive(Clone)]
pub(crate) struct SmtpSender {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<(String, String)>,
    from: String,
    tls: TlsConnector,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl SmtpSender {
    /// A sender for `url` (`smtp[s]://[user[:password]@]host[:port]`), sending as `from`
    /// (`no-reply@example.com` or `Name <no-reply@example.com>`).
    pub(crate) fn new(url: &str, from: &str) -> Result<Self, SmtpError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| SmtpError::Url("expected smtp://… or smtps://…".to_owned()))?;
        let (security, default_port) = match scheme {
            "smtps" => (Security::Implicit, 465),
            "smtp" => (
                Security::StartTls {
                    plain_allowed: false,
                },
                587,
            ),
            other => {
                return Err(SmtpError::Url(format!(
                    "unknown scheme `{other}` (use smtp:// or smtps://)"
                )));
            }
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let credentials = userinfo.map(|u| {
            let (user, password) = u.split_once(':').unwrap_or((u, ""));
            (percent_decode(user), percent_decode(password))
        });
        let (host, port) = split_host_port(hostport, default_port)?;
        if host.is_empty() {
            return Err(SmtpError::Url("the URL names no host".to_owned()));
        }
        let security = match security {
            Security::StartTls { .. } => Security::StartTls {
                plain_allowed: is_loopback(&host),
            },
            Security::Implicit => Security::Implicit,
        };
        if from.contains(['\r', '\n']) || !from.contains('@') {
            return Err(SmtpError::Url(format!(
                "the sender `{}` is not an email address",
                from.escape_debug()
            )));
        }
        Ok(SmtpSender {
            host,
            port,
            security,
            credentials,
            from: from.to_owned(),
            tls: tls_connector()?,
        })
    }

    /// Delivers one plain-text message to `to`.
    pub(crate) async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), SmtpError> {
        if [to, subject].iter().any(|s| s.contains(['\r', '\n'])) {
            return Err(SmtpError::Refused {
                command: "message".to_owned(),
                reply: "line breaks in a header".to_owned(),
            });
        }
        tokio::time::timeout(DELIVERY_TIMEOUT, self.deliver(to, subject, body))
            .await
            .map_err(|_| SmtpError::Timeout(DELIVERY_TIMEOUT))?
    }

    fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn io(&self) -> impl Fn(std::io::Error) -> SmtpError + '_ {
        move |source| SmtpError::Io {
            server: self.server(),
            source,
        }
    }

    async fn deliver(&self, to: &str, subject: &str, body: &str) -> Result<(), SmtpError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(self.io())?;
        match self.security {
            Security::Implicit => {
                let tls = self.start_tls(tcp).await?;
                let mut s = BufReader::new(tls);
                self.expect(&mut s, None, 220).await?;
                self.ehlo(&mut s).await?;
                self.transact(&mut s, to, subject, body).await
            }
            Security::StartTls { plain_allowed } => {
                let mut s = BufReader::new(tcp);
                self.expect(&mut s, None, 220).await?;
                let extensions = self.ehlo(&mut s).await?;
                if extensions
                    .iter()
                    .any(|e| e.eq_ignore_ascii_case("STARTTLS"))
                {
                    self.expect(&mut s, Some("STARTTLS"), 220).await?;
                    let tls = self.start_tls(s.into_inner()).await?;
                    let mut s = BufReader::new(tls);
                    self.ehlo(&mut s).await?;
                    self.transact(&mut s, to, subject, body).await
                } else if plain_allowed {
                    self.transact(&mut s, to, subject, body).await
                } else {
                    Err(SmtpError::NoStartTls(self.server()))
                }
            }
        }
    }

    async fn start_tls(
        &self,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, SmtpError> {
        let name = ServerName::try_from(self.host.clone())
            .map_err(|e| SmtpError::Tls(format!("`{}` is not a server name: {e}", self.host)))?;
        self.tls
            .connect(name, tcp)
            .await
            .map_err(|e| SmtpError::Tls(format!("handshake with {} failed: {e}", self.server())))
    }

    /// EHLO; returns the extension keywords.
    async fn ehlo<S: AsyncBufRead + AsyncWrite + Unpin>(
        &self,
        s: &mut S,
    ) -> Result<Vec<String>, SmtpError> {
        let lines = self.expect(s, Some("EHLO keel-idp"), 250).await?;
        Ok(lines
            .iter()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect())
    }

    async fn transact<S: AsyncBufRead + AsyncWrite + Unpin>(
        &self,
        s: &mut S,
        to: &str,
        subject: &str,
        body: &str,
    ) -> Result<(), SmtpError> {
        if let Some((user, password)) = &self.credentials {
            let token = STANDARD.encode(format!("\0{user}\0{password}"));
            self.send_line(s, &format!("AUTH PLAIN {token}")).await?;
            self.reply_of(s, "AUTH PLAIN", &[235]).await?;
        }
        let sender = address_of(&self.from);
        self.expect(s, Some(&format!("MAIL FROM:<{sender}>")), 250)
            .await?;
        self.send_line(s, &format!("RCPT TO:<{to}>")).await?;
        self.reply_of(s, "RCPT TO", &[250, 251]).await?;
        self.expect(s, Some("DATA"), 354).await?;
        let message = message(&self.from, to, subject, body, &self.host);
        s.write_all(message.as_bytes()).await.map_err(self.io())?;
        s.write_all(b".\r\n").await.map_err(self.io())?;
        s.flush().await.map_err(self.io())?;
        self.reply_of(s, "message", &[250]).await?;
        // The message is accepted; a failed QUIT changes nothing.
        let _ = self.send_line(s, "QUIT").await;
        Ok(())
    }

    async fn send_line<S: AsyncWrite + Unpin>(
        &self,
        s: &mut S,
        line: &str,
    ) -> Result<(), SmtpError> {
        s.write_all(format!("{line}\r\n").as_bytes())
            .await
            .map_err(self.io())?;
        s.flush().await.map_err(self.io())
    }

    /// Sends `command` (if any) and requires reply `code`; returns the reply's lines.
    async fn expect<S: AsyncBufRead + AsyncWrite + Unpin>(
        &self,
        s: &mut S,
        command: Option<&str>,
        code: u16,
    ) -> Result<Vec<String>, SmtpError> {
        if let Some(command) = command {
            self.send_line(s, command).await?;
        }
        self.reply_of(s, command.unwrap_or("greeting"), &[code])
            .await
    }

    /// Reads one (possibly multi-line) reply; an unexpected code is [`SmtpError::Refused`].
    async fn reply_of<S: AsyncBufRead + Unpin>(
        &self,
        s: &mut S,
        command: &str,
        codes: &[u16],
    ) -> Result<Vec<String>, SmtpError> {
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            let read = (&mut *s)
                .take(MAX_REPLY_LINE as u64)
                .read_until(b'\n', &mut line)
                .await
                .map_err(self.io())?;
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            let refused = |reply: String| SmtpError::Refused {
                command: command.to_owned(),
                reply,
            };
            if read == 0 {
                return Err(refused("connection closed".to_owned()));
            }
            let code: u16 = text
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| refused(format!("not an SMTP reply: {}", text.escape_debug())))?;
            let last = text.as_bytes().get(3) != Some(&b'-');
            lines.push(text.get(4..).unwrap_or_default().to_owned());
            if last {
                if !codes.contains(&code) {
                    return Err(refused(format!("{code} {}", lines.join(" "))));
                }
                return Ok(lines);
            }
            if lines.len() > 100 {
                return Err(refused("reply too long".to_owned()));
            }
        }
    }
}

use tokio::io::AsyncReadExt as _;

/// The message: headers, a blank line, the body with CRLF line ends and dot-stuffing.
fn message(from: &str, to: &str, subject: &str, body: &str, host: &str) -> String {
    let now = crate::ids::now_ms() / 1000;
    let mut out = format!(
        "From: {from}\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: {}\r\nMessage-ID: <{}@{host}>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        rfc5322_date(now),
        crate::ids::random_chars(24),
    );
    for line in body.lines() {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

/// `Sun, 06 Dec 2026 07:48:11 +0000` for Unix seconds `t`.
fn rfc5322_date(t: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = keel_values::utc::UtcTime::from_unix_secs(t);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[t.weekday() as usize],
        t.day,
        MONTHS[(t.month - 1) as usize],
        t.year,
        t.hour,
        t.minute,
        t.second
    )
}

/// `a@b` of `Name <a@b>` or `a@b`.
fn address_of(from: &str) -> &str {
    match (from.rfind('<'), from.rfind('>')) {
        (Some(open), Some(close)) if open < close => &from[open + 1..close],
        _ => from.trim(),
    }
}

fn split_host_port(hostport: &str, default_port: u16) -> Result<(String, u16), SmtpError> {
    let bad_port = |p: &str| SmtpError::Url(format!("`{p}` is not a port"));
    if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| SmtpError::Url("unclosed `[` in the host".to_owned()))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad_port(p))?,
            None => default_port,
        };
        return Ok((host.to_owned(), port));
    }
    match hostport.rsplit_once(':') {
        Some((host, p)) => Ok((host.to_owned(), p.parse().map_err(|_| bad_port(p))?)),
        None => Ok((hostport.to_owned(), default_port)),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Decodes `%XX` escapes; anything else is kept as is.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn tls_connector() -> Result<TlsConnector, SmtpError> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SmtpError::Tls(format!("cannot set up TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_defaults_and_credentials() {
        let s = SmtpSender::new("smtps://ann%40x.com:p%3Ass@mail.example.com", "a@b.co").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("mail.example.com", 465));
        assert_eq!(s.security, Security::Implicit);
        assert_eq!(
            s.credentials,
            Some(("ann@x.com".to_owned(), "p:ss".to_owned()))
        );
        let s = SmtpSender::new("smtp://mail.example.com", "a@b.co").unwrap();
        assert_eq!(s.port, 587);
        assert_eq!(
            s.security,
            Security::StartTls {
                plain_allowed: false
            }
        );
        let s = SmtpSender::new("smtp://127.0.0.1:2525", "a@b.co").unwrap();
        assert_eq!(
            (s.port, s.security),
            (
                2525,
                Security::StartTls {
                    plain_allowed: true
                }
            )
        );
        for bad in [
            "http://x",
            "smtp://",
            "smtp://host:notaport",
            "mail.example.com",
        ] {
            assert!(SmtpSender::new(bad, "a@b.co").is_err(), "{bad}");
        }
        assert!(SmtpSender::new("smtp://h", "evil\r\nBcc: x@y.z").is_err());
    }

    #[test]
    fn messages_are_dot_stuffed_and_dated() {
        let m = message("Keel <a@b.co>", "c@d.co", "Hi", "one\n.two\nthree", "h");
        assert!(m.contains("\r\n\r\none\r\n..two\r\nthree\r\n"), "{m}");
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_796_543_291),
            "Sun, 06 Dec 2026 07:48:11 +0000"
        );
        assert_eq!(address_of("Keel <no-reply@x.co>"), "no-reply@x.co");
    }
}
