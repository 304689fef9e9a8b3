//! Claims of the tokens the idp mints: Clerk v2 session tokens and JWT templates (`convex`).

use serde_json::{Map, Value, json};

use crate::store::{Session, User};

/// Header `cat` of session tokens (Clerk's category marker).
pub(crate) const SESSION_CATEGORY: &str = "cl_B7d4PD111AAA";
/// Header `cat` of template tokens.
pub(crate) const TEMPLATE_CATEGORY: &str = "cl_B7d4PD222AAA";
/// Clock skew subtracted from `iat` for `nbf` (Clerk's default allowed skew).
const NBF_SKEW_SECS: i64 = 5;

/// Templates the idp knows.
pub const TEMPLATES: &[&str] = &["convex"];

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

/// A template token, or `None` for an unknown template.
pub(crate) fn template_claims(
    template: &str,
    issuer: &str,
    user: &User,
    azp: Option<&str>,
    now: i64,
    ttl_secs: i64,
) -> Option<Value> {
    let mut claims = Map::new();
    match template {
        "convex" => {
            claims.insert("aud".into(), json!("convex"));
            let mut put = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    claims.insert(k.into(), Value::String(v));
                }
            };
            put("name", user.full_name());
            put("given_name", user.first_name.clone());
            put("family_name", user.last_name.clone());
            put("nickname", user.username.clone());
            put("picture", user.image_url.clone());
            if let Some(email) = user.primary_email() {
                claims.insert("email".into(), json!(email.email_address));
                // Verified by the administrator (created through the Backend API) or by a code.
                claims.insert("email_verified".into(), json!(email.is_verified()));
            }
            claims.insert("updated_at".into(), json!(user.updated_at / 1000));
        }
        _ => return None,
    }
    claims.insert("iss".into(), json!(issuer));
    claims.insert("sub".into(), json!(user.id));
    claims.insert("iat".into(), json!(now));
    claims.insert("nbf".into(), json!(now - NBF_SKEW_SECS));
    claims.insert("exp".into(), json!(now + ttl_secs));
    claims.insert("jti".into(), json!(crate::ids::random_chars(20)));
    if let Some(azp) = azp {
        claims.insert("azp".into(), json!(azp));
    }
    Some(Value::Object(claims))
}
