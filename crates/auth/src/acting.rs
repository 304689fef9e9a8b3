//! [`UserIdentity::acting_as`]: the identity an operator runs a function as (`keel run
//! --identity`, the dashboard), from Convex's `UserIdentity` fields rather than a token.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::identity::{ClaimMapping, UserIdentity};

/// The issuer of an identity an operator acts as when none is given
/// ([`UserIdentity::acting_as`]).
pub const ACTING_ISSUER: &str = "keel-admin";

/// Convex's camelCase `UserIdentity` field names and the OIDC claims they come from.
const ACTING_FIELDS: &[(&str, &str)] = &[
    ("givenName", "given_name"),
    ("familyName", "family_name"),
    ("preferredUsername", "preferred_username"),
    ("profileUrl", "profile"),
    ("pictureUrl", "picture"),
    ("websiteUrl", "website"),
    ("emailVerified", "email_verified"),
    ("birthday", "birthdate"),
    ("timezone", "zoneinfo"),
    ("language", "locale"),
    ("phoneNumber", "phone_number"),
    ("phoneNumberVerified", "phone_number_verified"),
    ("updatedAt", "updated_at"),
];

impl UserIdentity {
    /// The identity an operator runs a function as (`keel run --identity '<json>'`, the
    /// dashboard's "act as user"), from Convex's `UserIdentity` fields: `subject` is required,
    /// `issuer` defaults to [`ACTING_ISSUER`], `tokenIdentifier` is always
    /// `<issuer>|<subject>`, the standard fields (`name`, `email`, `emailVerified`, …) are
    /// checked as a token's would be, and any other key is a custom claim. It is valid for an
    /// hour.
    ///
    /// ```
    /// let claims = serde_json::json!({"subject": "user_1", "name": "Ann", "role": "admin"});
    /// let identity = keel_auth::UserIdentity::acting_as(claims.as_object().unwrap()).unwrap();
    /// assert_eq!(identity.token_identifier(), "keel-admin|user_1");
    /// assert_eq!(identity.attributes.name.as_deref(), Some("Ann"));
    /// assert!(keel_auth::UserIdentity::acting_as(&serde_json::Map::new()).is_err());
    /// ```
    pub fn acting_as(fields: &Map<String, Value>) -> Result<UserIdentity, String> {
        let mut claims = Map::new();
        claims.insert(
            "iss".into(),
            fields
                .get("issuer")
                .cloned()
                .unwrap_or_else(|| Value::String(ACTING_ISSUER.into())),
        );
        for (name, value) in fields {
            let claim = match name.as_str() {
                "issuer" | "tokenIdentifier" => continue,
                "subject" => "sub",
                other => ACTING_FIELDS
                    .iter()
                    .find(|(field, _)| *field == other)
                    .map_or(other, |(_, claim)| claim),
            };
            claims.insert(claim.to_owned(), value.clone());
        }
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64
            + 3600;
        UserIdentity::from_claims(&claims, exp, ClaimMapping::Oidc).map_err(|e| {
            e.to_string()
                .replace("`sub`", "`subject`")
                .replace("`iss`", "`issuer`")
        })
    }
}
