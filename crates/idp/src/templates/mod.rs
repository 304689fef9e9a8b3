//! JWT templates (Clerk's `/v1/jwt_templates`): named claim objects with shortcodes
//! (`{{user.id}}`, `{{user.public_metadata.role}}`, …; see `shortcodes`), a token lifetime
//! and an allowed clock skew, stored in the idp's database. `convex` is added at first start
//! ([`CONVEX_TEMPLATE`]); `POST /v1/sessions/{sid}/tokens/{name}` mints any of them.
//!
//! Template tokens carry the rendered claims plus Clerk's default claims
//! (`azp exp iat iss jti nbf sub`), which a template may not set.

mod shortcodes;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::idp::Idp;
use crate::store::StoredTemplate;

/// The name of the template the idp adds at first start: Convex's claims (`aud: "convex"`,
/// OIDC profile claims).
pub const CONVEX_TEMPLATE: &str = "convex";

/// Claims every template token gets, which templates may not set (Clerk's default claims).
pub const RESERVED_CLAIMS: &[&str] = &["azp", "exp", "iat", "iss", "jti", "nbf", "sub"];

/// Shortest and longest lifetime a template may be given through the API (Clerk's range).
const LIFETIME_SECS: std::ops::RangeInclusive<u64> = 30..=315_360_000;
/// Largest allowed clock skew (Clerk's).
const MAX_CLOCK_SKEW_SECS: u64 = 300;
/// Clock skew of templates created without one (Clerk's default).
const DEFAULT_CLOCK_SKEW_SECS: u64 = 5;
/// Lifetime of templates created through the API without one (Clerk's default).
const DEFAULT_LIFETIME_SECS: u64 = 60;
/// Longest template name.
const MAX_NAME_CHARS: usize = 128;
/// Largest claims object, as JSON text.
const MAX_CLAIMS_BYTES: usize = 16 * 1024;
/// Most templates an instance keeps.
const MAX_TEMPLATES: u64 = 100;

/// A JWT template in Clerk's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtTemplate {
    /// `jtmp_…`
    pub id: String,
    /// The name tokens are minted by (`getToken({ template: name })`).
    pub name: String,
    /// The claims, with shortcodes.
    pub claims: Value,
    /// How long tokens live (`exp = iat + lifetime`).
    pub lifetime: Duration,
    /// Leeway for clocks (`nbf = iat - allowed_clock_skew`).
    pub allowed_clock_skew: Duration,
    /// Creation time, Unix ms.
    pub created_at: i64,
    /// Last change, Unix ms.
    pub updated_at: i64,
}

/// Fields of a template to create (`POST /v1/jwt_templates`) or change
/// (`PATCH /v1/jwt_templates/{id}`; `None` keeps the current value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JwtTemplateDraft {
    /// The name: 1–128 letters, digits, `_`, `-` or `.`; unique.
    pub name: Option<String>,
    /// A JSON object of claims (no reserved claim; well-formed shortcodes; at most 16 KiB).
    pub claims: Option<Value>,
    /// Seconds, 30–315 360 000 (default 60).
    pub lifetime: Option<u64>,
    /// Seconds, 0–300 (default 5).
    pub allowed_clock_skew: Option<u64>,
    /// Custom signing keys are not supported: `true` is refused.
    pub custom_signing_key: bool,
}

impl JwtTemplate {
    fn from_stored(t: StoredTemplate) -> Self {
        let secs = |s: i64| Duration::from_secs(u64::try_from(s).unwrap_or(0));
        JwtTemplate {
            id: t.id,
            name: t.name,
            claims: t.claims,
            lifetime: secs(t.lifetime_secs),
            allowed_clock_skew: secs(t.allowed_clock_skew_secs),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }

    /// Clerk's JSON shape (`object: "jwt_template"`).
    pub fn to_json(&self) -> Value {
        json!({
            "object": "jwt_template", "id": self.id, "name": self.name, "claims": self.claims,
            "lifetime": self.lifetime.as_secs(), "allowed_clock_skew": self.allowed_clock_skew.as_secs(),
            "custom_signing_key": false, "signing_algorithm": "RS256",
            "created_at": self.created_at, "updated_at": self.updated_at,
        })
    }
}

/// The `convex` template's claims: Convex's OIDC profile claims as Clerk's Convex template has
/// them.
pub(crate) fn convex_claims() -> Value {
    json!({
        "aud": "convex",
        "name": "{{user.full_name}}",
        "given_name": "{{user.first_name}}",
        "family_name": "{{user.last_name}}",
        "nickname": "{{user.username}}",
        "picture": "{{user.image_url}}",
        "email": "{{user.primary_email_address}}",
        "email_verified": "{{user.email_verified}}",
        "phone_number": "{{user.primary_phone_number}}",
        "phone_number_verified": "{{user.phone_number_verified}}",
        "updated_at": "{{user.updated_at}}",
    })
}

/// The `convex` template as the idp seeds it, with `lifetime`.
pub(crate) fn convex_template(lifetime: Duration) -> StoredTemplate {
    let now = crate::ids::now_ms();
    StoredTemplate {
        id: crate::ids::random_id("jtmp"),
        name: CONVEX_TEMPLATE.to_owned(),
        claims: convex_claims(),
        lifetime_secs: i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 4),
        allowed_clock_skew_secs: DEFAULT_CLOCK_SKEW_SECS as i64,
        seeded: true,
        created_at: now,
        updated_at: now,
    }
}

fn invalid(param: &'static str, long_message: String) -> ApiError {
    ApiError::unprocessable("form_param_value_invalid", "is invalid", long_message).param(param)
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=MAX_NAME_CHARS).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        return Ok(());
    }
    Err(ApiError::unprocessable(
        "form_param_format_invalid",
        "is invalid",
        format!(
            "A template name is 1 to {MAX_NAME_CHARS} letters, digits, `_`, `-` or `.`; got `{}`.",
            name.chars().take(64).collect::<String>().escape_debug()
        ),
    )
    .param("name"))
}

fn check_claims(claims: &Value) -> Result<(), ApiError> {
    let Value::Object(map) = claims else {
        return Err(invalid(
            "claims",
            "`claims` must be a JSON object of claim names and values.".to_owned(),
        ));
    };
    if let Some(reserved) = RESERVED_CLAIMS.iter().find(|c| map.contains_key(**c)) {
        return Err(invalid(
            "claims",
            format!(
                "`{reserved}` is a reserved claim: every template token gets it ({}), so a template cannot set it.",
                RESERVED_CLAIMS.join(", ")
            ),
        ));
    }
    if claims.to_string().len() > MAX_CLAIMS_BYTES {
        return Err(invalid(
            "claims",
            format!("`claims` may be at most {MAX_CLAIMS_BYTES} bytes of JSON."),
        ));
    }
    shortcodes::check(claims).map_err(|e| invalid("claims", format!("Invalid claims: {e}.")))
}

fn check_lifetime(lifetime: u64) -> Result<(), ApiError> {
    if LIFETIME_SECS.contains(&lifetime) {
        return Ok(());
    }
    Err(invalid(
        "lifetime",
        format!(
            "`lifetime` must be between {} and {} seconds, got {lifetime}.",
            LIFETIME_SECS.start(),
            LIFETIME_SECS.end()
        ),
    ))
}

fn check_clock_skew(skew: u64) -> Result<(), ApiError> {
    if skew <= MAX_CLOCK_SKEW_SECS {
        return Ok(());
    }
    Err(invalid(
        "allowed_clock_skew",
        format!(
            "`allowed_clock_skew` must be between 0 and {MAX_CLOCK_SKEW_SECS} seconds, got {skew}."
        ),
    ))
}

fn name_taken(name: &str) -> ApiError {
    ApiError::unprocessable(
        "form_identifier_exists",
        "That name is taken.",
        format!("A JWT template named `{name}` already exists."),
    )
    .param("name")
}

fn template_not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "resource_not_found",
        "not found",
        format!(
            "No JWT template exists with name: {}",
            name.chars().take(128).collect::<String>().escape_debug()
        ),
    )
}

impl Idp {
    /// Creates a template (`POST /v1/jwt_templates`). `name` and `claims` are required.
    pub fn create_jwt_template(&self, draft: JwtTemplateDraft) -> Result<JwtTemplate, ApiError> {
        if draft.custom_signing_key {
            return Err(invalid(
                "custom_signing_key",
                "Keel's idp signs every template with its own RS256 keys; custom signing keys need real Clerk.".to_owned(),
            ));
        }
        let name = draft.name.ok_or_else(|| missing("name"))?;
        let claims = draft.claims.ok_or_else(|| missing("claims"))?;
        let lifetime = draft.lifetime.unwrap_or(DEFAULT_LIFETIME_SECS);
        let skew = draft.allowed_clock_skew.unwrap_or(DEFAULT_CLOCK_SKEW_SECS);
        check_name(&name)?;
        check_claims(&claims)?;
        check_lifetime(lifetime)?;
        check_clock_skew(skew)?;
        let (_, total) = self.inner.store.templates(1, 0)?;
        if total >= MAX_TEMPLATES {
            return Err(ApiError::unprocessable(
                "form_param_value_invalid",
                "Too many JWT templates.",
                format!(
                    "An instance keeps at most {MAX_TEMPLATES} JWT templates; delete one first."
                ),
            ));
        }
        let now = crate::ids::now_ms();
        let stored = StoredTemplate {
            id: crate::ids::random_id("jtmp"),
            name,
            claims,
            lifetime_secs: lifetime as i64,
            allowed_clock_skew_secs: skew as i64,
            seeded: false,
            created_at: now,
            updated_at: now,
        };
        if !self.inner.store.insert_template(&stored)? {
            return Err(name_taken(&stored.name));
        }
        tracing::info!(template = %stored.name, "JWT template created");
        Ok(JwtTemplate::from_stored(stored))
    }

    /// Templates, oldest first (`GET /v1/jwt_templates`), and how many there are.
    pub fn jwt_templates(
        &self,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<JwtTemplate>, u64), ApiError> {
        if !(1..=500).contains(&limit) {
            return Err(invalid(
                "limit",
                format!("`limit` must be between 1 and 500, got {limit}."),
            ));
        }
        let (list, total) = self.inner.store.templates(limit, offset)?;
        Ok((
            list.into_iter().map(JwtTemplate::from_stored).collect(),
            total,
        ))
    }

    /// A template by id (`GET /v1/jwt_templates/{id}`).
    pub fn jwt_template(&self, id: &str) -> Result<JwtTemplate, ApiError> {
        self.inner
            .store
            .template(id)?
            .map(JwtTemplate::from_stored)
            .ok_or_else(|| ApiError::not_found("JWT template", id))
    }

    /// Changes a template (`PATCH /v1/jwt_templates/{id}`); fields left `None` keep their
    /// value. The `convex` template may be changed like any other (the idp then stops
    /// setting its lifetime from `--template-token-ttl`).
    pub fn update_jwt_template(
        &self,
        id: &str,
        draft: JwtTemplateDraft,
    ) -> Result<JwtTemplate, ApiError> {
        if draft.custom_signing_key {
            return Err(invalid(
                "custom_signing_key",
                "Keel's idp signs every template with its own RS256 keys; custom signing keys need real Clerk.".to_owned(),
            ));
        }
        let mut stored = self
            .inner
            .store
            .template(id)?
            .ok_or_else(|| ApiError::not_found("JWT template", id))?;
        if let Some(name) = draft.name {
            check_name(&name)?;
            stored.name = name;
        }
        if let Some(claims) = draft.claims {
            check_claims(&claims)?;
            stored.claims = claims;
        }
        if let Some(lifetime) = draft.lifetime {
            check_lifetime(lifetime)?;
            stored.lifetime_secs = lifetime as i64;
        }
        if let Some(skew) = draft.allowed_clock_skew {
            check_clock_skew(skew)?;
            stored.allowed_clock_skew_secs = skew as i64;
        }
        stored.updated_at = crate::ids::now_ms();
        match self.inner.store.replace_template(&stored)? {
            None => Err(ApiError::not_found("JWT template", id)),
            Some(false) => Err(name_taken(&stored.name)),
            Some(true) => {
                tracing::info!(template = %stored.name, "JWT template updated");
                self.jwt_template(id)
            }
        }
    }

    /// Deletes a template (`DELETE /v1/jwt_templates/{id}`).
    pub fn delete_jwt_template(&self, id: &str) -> Result<(), ApiError> {
        if self.inner.store.delete_template(id)? {
            tracing::info!(template_id = id, "JWT template deleted");
            Ok(())
        } else {
            Err(ApiError::not_found("JWT template", id))
        }
    }

    /// The claims of a token of template `name` for a user, at `now` (Unix s) with lifetime
    /// `ttl` (the template's own when `None`), with the default claims; Clerk's 404 for an
    /// unknown template.
    pub(crate) fn template_claims(
        &self,
        name: &str,
        user: &crate::store::User,
        azp: Option<&str>,
        now: i64,
        ttl: Option<Duration>,
    ) -> Result<Value, ApiError> {
        let template = self
            .inner
            .store
            .template_named(name)?
            .ok_or_else(|| template_not_found(name))?;
        let ttl = ttl.map_or(template.lifetime_secs, |d| {
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
        });
        let mut claims = match shortcodes::render(&template.claims, user) {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        claims.insert("iss".into(), json!(self.issuer()));
        claims.insert("sub".into(), json!(user.id));
        claims.insert("iat".into(), json!(now));
        claims.insert("nbf".into(), json!(now - template.allowed_clock_skew_secs));
        claims.insert("exp".into(), json!(now + ttl));
        claims.insert("jti".into(), json!(crate::ids::random_chars(20)));
        if let Some(azp) = azp {
            claims.insert("azp".into(), json!(azp));
        }
        Ok(Value::Object(claims))
    }

    /// The longest lifetime of any template, for key rotation.
    pub(crate) fn longest_template_lifetime(&self) -> Duration {
        let secs = self.inner.store.longest_template_lifetime().unwrap_or(0);
        Duration::from_secs(u64::try_from(secs).unwrap_or(0))
    }
}

fn missing(param: &'static str) -> ApiError {
    ApiError::unprocessable(
        "form_param_missing",
        "is missing",
        format!("`{param}` is required."),
    )
    .param(param)
}
