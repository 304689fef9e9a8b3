//! Claims of Clerk v2 session tokens, and the token categories (JWT templates' claims are in
//! `templates`).

use serde_json::{Value, json};

use crate::store::Session;

/// Header `cat` of session tokens (Clerk's category marker).
pub(crate) const SESSION_CATEGORY: &str = "cl_B7d4PD111AAA";
/// Header `cat` of template tokens.
pub(crate) const TEMPLATE_CATEGORY: &str = "cl_B7d4PD222AAA";
/// Clock skew subtracted from `iat` for `nbf` (Clerk's default allowed skew).
const NBF_SKEW_SECS: i64 = 5;

/// Session token: `iss sub sid iat exp nbf azp v=2` (+ `jti`, `fva`).
pub(crate) fn session_claims(
    issuer: &str,
    session: &Session,
    azp: Option<&str>,
    now: i64,
    ttl_secs: i64,
) -> Value {
    let mut claims = json!({
        "iss": issuer,
        "sub": session.user_id,
        "sid": session.id,
        "iat": now,
        "nbf": now - NBF_SKEW_SECS,
        "exp": now + ttl_secs,
        "jti": crate::ids::random_chars(20),
        "v": 2,
        "fva": [0, -1],
    });
    if let (Some(azp), Some(map)) = (azp, claims.as_object_mut()) {
        map.insert("azp".into(), Value::String(azp.to_owned()));
    }
    claims
}
