//! Reading a JWT's `iat` and `exp` without checking its signature (the backend checks it), to
//! schedule token refreshes the way the Convex JS client does.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The lifetime claims of a token, in seconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TokenTimes {
    pub(crate) iat: u64,
    pub(crate) exp: u64,
}

impl TokenTimes {
    /// `iat` and `exp` of a JWT, if it has both as numbers.
    pub(crate) fn of(token: &str) -> Option<TokenTimes> {
        let payload = token.split('.').nth(1)?;
        let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let secs = |name: &str| claims.get(name).and_then(serde_json::Value::as_f64);
        let (iat, exp) = (secs("iat")?, secs("exp")?);
        (iat >= 0.0 && exp >= iat).then_some(TokenTimes {
            iat: iat as u64,
            exp: exp as u64,
        })
    }

    /// How long after confirmation to fetch the next token: `exp − iat − leeway`, like the JS
    /// client. When the token lives no longer than the leeway (the JS client would refetch in a
    /// tight loop), half its lifetime instead. `None` for tokens living ≤ 2 s (never refreshed,
    /// as in JS).
    pub(crate) fn refresh_delay(self, leeway: Duration) -> Option<Duration> {
        let lifetime = Duration::from_secs(self.exp - self.iat);
        if lifetime <= Duration::from_secs(2) {
            return None;
        }
        Some(match lifetime.checked_sub(leeway) {
            Some(d) if !d.is_zero() => d,
            _ => lifetime / 2,
        })
    }

    /// Whether the token has expired (or expires within `margin`) by the local clock.
    pub(crate) fn expires_within(self, margin: Duration) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        now + margin >= Duration::from_secs(self.exp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: &str) -> String {
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.sig",
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    #[test]
    fn reads_claims_and_schedules() {
        let t = TokenTimes::of(&token(r#"{"iat":100,"exp":160}"#)).unwrap();
        assert_eq!(t, TokenTimes { iat: 100, exp: 160 });
        assert_eq!(
            t.refresh_delay(Duration::from_secs(10)),
            Some(Duration::from_secs(50))
        );
        let short = TokenTimes { iat: 0, exp: 3 };
        assert_eq!(
            short.refresh_delay(Duration::from_secs(10)),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            short.refresh_delay(Duration::from_secs(1)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            TokenTimes { iat: 0, exp: 2 }.refresh_delay(Duration::ZERO),
            None
        );
        assert!(TokenTimes::of(&token(r#"{"iat":100}"#)).is_none());
        assert!(TokenTimes::of("garbage").is_none());
        assert!(TokenTimes { iat: 0, exp: 1 }.expires_within(Duration::ZERO));
    }
}
