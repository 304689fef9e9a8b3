//! `UserIdentity`: the verified caller, with Convex's field names.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use convex_sync_types::{UserIdentifier, UserIdentityAttributes};
use serde_json::{Map, Value};

use crate::error::TokenRejection;
use crate::jwt::invalid_claim;

/// A verified identity, shaped like Convex's `ctx.auth.getUserIdentity()`.
///
/// The standard fields live in [`UserIdentityAttributes`] (the official Convex wire type), whose
/// `custom_claims` hold each other claim JSON-encoded, as Convex stores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserIdentity {
    /// The token's `sub`.
    pub subject: String,
    /// The token's `iss` (as presented).
    pub issuer: String,
    /// Convex's attributes (token identifier, standard claims, custom claims).
    pub attributes: UserIdentityAttributes,
    expires_at: i64,
}

/// Registered or protocol claims that never become identity fields.
const DROPPED: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "fva",
    "azp",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "at_hash",
    "c_hash",
];

/// Whether standard OIDC claims are mapped to fields (OIDC) or everything is a flattened
/// custom claim (`customJwt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClaimMapping {
    Oidc,
    CustomJwt,
}

impl UserIdentity {
    /// Builds the identity from verified claims. `exp` was checked by the caller.
    pub(crate) fn from_claims(
        claims: &Map<String, Value>,
        exp: i64,
        mapping: ClaimMapping,
    ) -> Result<Self, TokenRejection> {
        let issuer = required_string(claims, "iss")?;
        let subject = required_string(claims, "sub")?;
        let mut a = UserIdentityAttributes {
            token_identifier: UserIdentifier::construct(&issuer, &subject),
            issuer: Some(issuer.clone()),
            subject: Some(subject.clone()),
            ..UserIdentityAttributes::default()
        };
        for (name, value) in claims {
            if DROPPED.contains(&name.as_str()) {
                continue;
            }
            match mapping {
                ClaimMapping::Oidc => {
                    if !set_standard(&mut a, name, value)? {
                        a.custom_claims.insert(name.clone(), value.to_string());
                    }
                }
                ClaimMapping::CustomJwt => flatten_into(&mut a.custom_claims, name, value),
            }
        }
        Ok(UserIdentity {
            subject,
            issuer,
            attributes: a,
            expires_at: exp,
        })
    }

    /// `"<iss>|<sub>"`, Convex's stable user key.
    pub fn token_identifier(&self) -> &str {
        &self.attributes.token_identifier
    }

    /// When the token that proved this identity expires.
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::try_from(self.expires_at).unwrap_or(0))
    }

    /// The token's `exp` in Unix seconds.
    pub fn expires_at_unix(&self) -> i64 {
        self.expires_at
    }

    /// A custom claim's JSON value (e.g. `sid`, or `org.id` for `customJwt`).
    pub fn custom_claim(&self, name: &str) -> Option<Value> {
        let raw = self.attributes.custom_claims.get(name)?;
        Some(serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.clone())))
    }

    /// The identity as Convex presents it to functions: camelCase standard fields
    /// (`tokenIdentifier`, `subject`, `issuer`, `name`, `givenName`, …) plus custom claims.
    ///
    /// ```
    /// # fn show(identity: &keel_auth::UserIdentity) {
    /// let json = identity.to_json();
    /// assert_eq!(json["tokenIdentifier"], identity.token_identifier());
    /// # }
    /// ```
    pub fn to_json(&self) -> Map<String, Value> {
        let a = &self.attributes;
        let mut out = Map::new();
        for (name, value) in &a.custom_claims {
            let value =
                serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.clone()));
            out.insert(name.clone(), value);
        }
        out.insert(
            "tokenIdentifier".into(),
            Value::String(a.token_identifier.0.clone()),
        );
        out.insert("subject".into(), Value::String(self.subject.clone()));
        out.insert("issuer".into(), Value::String(self.issuer.clone()));
        let strings = [
            ("name", &a.name),
            ("givenName", &a.given_name),
            ("familyName", &a.family_name),
            ("nickname", &a.nickname),
            ("preferredUsername", &a.preferred_username),
            ("profileUrl", &a.profile_url),
            ("pictureUrl", &a.picture_url),
            ("websiteUrl", &a.website_url),
            ("email", &a.email),
            ("gender", &a.gender),
            ("birthday", &a.birthday),
            ("timezone", &a.timezone),
            ("language", &a.language),
            ("phoneNumber", &a.phone_number),
            ("address", &a.address),
            ("updatedAt", &a.updated_at),
        ];
        for (key, value) in strings {
            if let Some(v) = value {
                out.insert(key.into(), Value::String(v.clone()));
            }
        }
        for (key, value) in [
            ("emailVerified", a.email_verified),
            ("phoneNumberVerified", a.phone_number_verified),
        ] {
            if let Some(v) = value {
                out.insert(key.into(), Value::Bool(v));
            }
        }
        out
    }
}

impl UserIdentity {
    /// The whole identity as one JSON value, for handing a verified caller to another Keel
    /// process that trusts this one (a backend node forwarding a mutation to the committer).
    /// [`UserIdentity::from_transfer_json`] reads it back unchanged.
    ///
    /// ```
    /// # fn show(identity: &keel_auth::UserIdentity) {
    /// let copy = keel_auth::UserIdentity::from_transfer_json(identity.to_transfer_json()).unwrap();
    /// assert_eq!(&copy, identity);
    /// # }
    /// ```
    pub fn to_transfer_json(&self) -> Value {
        let mut attributes = self.attributes.clone();
        let custom = std::mem::take(&mut attributes.custom_claims);
        let attributes = Value::try_from(attributes).unwrap_or(Value::Null);
        serde_json::json!({
            "subject": self.subject,
            "issuer": self.issuer,
            "expiresAt": self.expires_at,
            "attributes": attributes,
            "customClaims": custom,
        })
    }

    /// Reads what [`UserIdentity::to_transfer_json`] wrote.
    pub fn from_transfer_json(value: Value) -> Result<UserIdentity, String> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Transfer {
            subject: String,
            issuer: String,
            expires_at: i64,
            attributes: Value,
            custom_claims: BTreeMap<String, String>,
        }
        let t: Transfer = serde_json::from_value(value).map_err(|e| e.to_string())?;
        let mut attributes =
            UserIdentityAttributes::try_from(t.attributes).map_err(|e| e.to_string())?;
        attributes.custom_claims = t.custom_claims;
        Ok(UserIdentity {
            subject: t.subject,
            issuer: t.issuer,
            attributes,
            expires_at: t.expires_at,
        })
    }
}

fn required_string(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<String, TokenRejection> {
    match claims.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(invalid_claim(name, "must not be empty")),
        Some(_) => Err(invalid_claim(name, "must be a string")),
        None => Err(TokenRejection::MissingClaim(name)),
    }
}

/// Maps one standard OIDC claim; `Ok(false)` when `name` is not a standard claim.
fn set_standard(
    a: &mut UserIdentityAttributes,
    name: &str,
    value: &Value,
) -> Result<bool, TokenRejection> {
    let string = |value: &Value| match value {
        Value::String(s) => Ok(Some(s.clone())),
        Value::Null => Ok(None),
        _ => Err(invalid_claim(name, "must be a string")),
    };
    let boolean = |value: &Value| match value {
        Value::Bool(b) => Ok(Some(*b)),
        Value::Null => Ok(None),
        _ => Err(invalid_claim(name, "must be a boolean")),
    };
    match name {
        "name" => a.name = string(value)?,
        "given_name" => a.given_name = string(value)?,
        "family_name" => a.family_name = string(value)?,
        "nickname" => a.nickname = string(value)?,
        "preferred_username" => a.preferred_username = string(value)?,
        "profile" => a.profile_url = string(value)?,
        "picture" => a.picture_url = string(value)?,
        "website" => a.website_url = string(value)?,
        "email" => a.email = string(value)?,
        "email_verified" => a.email_verified = boolean(value)?,
        "gender" => a.gender = string(value)?,
        "birthdate" => a.birthday = string(value)?,
        "zoneinfo" => a.timezone = string(value)?,
        "locale" => a.language = string(value)?,
        "phone_number" => a.phone_number = string(value)?,
        "phone_number_verified" => a.phone_number_verified = boolean(value)?,
        "address" => {
            a.address = match value {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => Some(match o.get("formatted").and_then(Value::as_str) {
                    Some(f) => f.to_owned(),
                    None => value.to_string(),
                }),
                _ => return Err(invalid_claim(name, "must be an object or a string")),
            }
        }
        "updated_at" => {
            a.updated_at = match value {
                Value::Null => None,
                Value::Number(n) => {
                    let secs = n
                        .as_i64()
                        .filter(|s| (0..253_402_300_800).contains(s))
                        .ok_or_else(|| invalid_claim(name, "must be seconds since the epoch"))?;
                    Some(rfc3339(secs))
                }
                _ => {
                    return Err(invalid_claim(
                        name,
                        "must be a number of seconds since the epoch",
                    ));
                }
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `customJwt`: nested objects become dotted keys (`org.id`), values are JSON-encoded.
fn flatten_into(out: &mut BTreeMap<String, String>, prefix: &str, value: &Value) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten_into(out, &format!("{prefix}.{k}"), v);
            }
        }
        _ => {
            out.insert(prefix.to_owned(), value.to_string());
        }
    }
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (Convex stores `updatedAt` this way).
pub(crate) fn rfc3339(secs: i64) -> String {
    keel_values::utc::UtcTime::from_unix_secs(secs).rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn maps_oidc_claims_and_drops_protocol_claims() {
        let claims: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "iss": "https://i.example", "sub": "user_1", "aud": "convex", "exp": 10, "jti": "x",
            "fva": [1, -1], "nbf": 1, "email": "a@b.c", "email_verified": true,
            "updated_at": 0, "sid": "sess_1", "org": {"id": "o"}
        }))
        .unwrap();
        let id = UserIdentity::from_claims(&claims, 10, ClaimMapping::Oidc).unwrap();
        let json = id.to_json();
        assert_eq!(json["tokenIdentifier"], "https://i.example|user_1");
        assert_eq!(json["emailVerified"], true);
        assert_eq!(json["updatedAt"], "1970-01-01T00:00:00Z");
        assert_eq!(json["sid"], "sess_1");
        assert_eq!(json["org"]["id"], "o");
        for dropped in ["jti", "fva", "nbf", "aud", "exp"] {
            assert!(!json.contains_key(dropped), "{dropped} should be dropped");
        }
        let custom = UserIdentity::from_claims(&claims, 10, ClaimMapping::CustomJwt).unwrap();
        assert_eq!(custom.to_json()["org.id"], "o");
        // Both survive the transfer to another process unchanged (a custom claim named like a
        // standard field included).
        for identity in [&id, &custom] {
            let copy = UserIdentity::from_transfer_json(identity.to_transfer_json()).unwrap();
            assert_eq!(&copy, identity);
        }
        assert!(UserIdentity::from_transfer_json(serde_json::json!({"subject": 1})).is_err());
        assert!(custom.attributes.email.is_none());
    }

    #[test]
    fn wrong_standard_claim_type_is_rejected() {
        let claims: Map<String, Value> = serde_json::from_value(
            serde_json::json!({"iss": "i", "sub": "s", "email_verified": "yes"}),
        )
        .unwrap();
        let err = UserIdentity::from_claims(&claims, 10, ClaimMapping::Oidc).unwrap_err();
        assert_eq!(err.code(), "InvalidClaim");
    }
}
