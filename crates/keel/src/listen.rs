//! Where a service listens: [`ListenAddr`] as the user typed it (`host:port`, a host name
//! allowed), and binding it with errors that name the flag to change.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use anyhow::Context;
use tokio::net::TcpListener;

/// Where a service listens, as typed: `host:port`, the host an IP address (`127.0.0.1`,
/// `[::1]`, `0.0.0.0`) or a name (`localhost`) resolved when the service binds.
///
/// ```
/// let addr: keel::ListenAddr = "localhost:5000".parse().unwrap();
/// assert_eq!((addr.host(), addr.port()), ("localhost", 5000));
/// assert!("localhost".parse::<keel::ListenAddr>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    host: String,
    port: u16,
}

impl ListenAddr {
    /// The host as typed (without brackets for an IPv6 address).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (0: any free port).
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(value: &str) -> Result<ListenAddr, String> {
        let expected = "expected host:port, e.g. 127.0.0.1:3000, localhost:3000 or [::1]:3000";
        let (host, port) = value
            .rsplit_once(':')
            .ok_or_else(|| format!("`{value}` has no port; {expected}"))?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner
                .strip_suffix(']')
                .filter(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
                .ok_or_else(|| format!("`{value}` is not a valid address; {expected}"))?,
            None if host.contains(':') => {
                return Err(format!(
                    "`{value}`: write an IPv6 address in brackets; {expected}"
                ));
            }
            None => host,
        };
        let name_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
        if !name_ok {
            return Err(format!("`{value}` is not a valid address; {expected}"));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("`{port}` is not a port (0 to 65535); {expected}"))?;
        Ok(ListenAddr {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A flag and its environment variable, as error messages name them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Flag {
    name: &'static str,
    env: &'static str,
}

impl std::fmt::Display for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} / {}", self.name, self.env)
    }
}

pub(crate) const WEB_ADDR: Flag = Flag {
    name: "--web-addr",
    env: "KEEL_WEB_ADDR",
};
pub(crate) const BACKEND_ADDR: Flag = Flag {
    name: "--backend-addr",
    env: "KEEL_BACKEND_ADDR",
};
pub(crate) const SITE_ADDR: Flag = Flag {
    name: "--site-addr",
    env: "KEEL_SITE_ADDR",
};
pub(crate) const IDP_ADDR: Flag = Flag {
    name: "--idp-addr",
    env: "KEEL_IDP_ADDR",
};

/// A bound listener and the URL it is reached at.
pub(crate) struct Bound {
    pub(crate) listener: TcpListener,
    /// `http://<host>:<port>`: the host as typed (a name stays a name), the port as bound.
    pub(crate) url: String,
}

/// Binds `addr` (resolving a host name), or fails naming `flag` — with a hint when the port is
/// taken, which usually means another keel is running.
pub(crate) async fn bind(addr: &ListenAddr, flag: Flag) -> anyhow::Result<Bound> {
    let listener = match TcpListener::bind((addr.host(), addr.port())).await {
        Ok(listener) => listener,
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => anyhow::bail!(
            "cannot listen on {addr} ({flag}): the address is already in use — is another keel \
             (or another server) running there? Stop it, or choose another address with {}",
            flag.name
        ),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot listen on {addr} ({flag})"));
        }
    };
    let local = listener.local_addr()?;
    let url = if addr.host().parse::<IpAddr>().is_ok() {
        format!("http://{local}")
    } else {
        format!("http://{}:{}", addr.host(), local.port())
    };
    Ok(Bound { listener, url })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_take_host_names_and_brackets() {
        let named: ListenAddr = "localhost:5000".parse().unwrap();
        assert_eq!((named.host(), named.port()), ("localhost", 5000));
        let v6: ListenAddr = "[::1]:0".parse().unwrap();
        assert_eq!((v6.host(), v6.to_string().as_str()), ("::1", "[::1]:0"));
        for bad in ["::1:80", "localhost", "host:99999", ":80", "a b:1", "[x]:1"] {
            assert!(bad.parse::<ListenAddr>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_taken_port_names_the_flag_and_hints_at_another_keel() {
        let first = bind(&"127.0.0.1:0".parse().unwrap(), WEB_ADDR)
            .await
            .unwrap();
        let port = first.listener.local_addr().unwrap().port();
        assert_eq!(first.url, format!("http://127.0.0.1:{port}"));
        let taken: ListenAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let error = format!("{:#}", bind(&taken, WEB_ADDR).await.err().unwrap());
        assert!(error.contains("--web-addr / KEEL_WEB_ADDR"), "{error}");
        assert!(error.contains("another keel"), "{error}");
        let named = bind(&"localhost:0".parse().unwrap(), IDP_ADDR)
            .await
            .unwrap();
        assert!(named.url.starts_with("http://localhost:"), "{}", named.url);
    }
}
