//! Clerk's template shortcodes: `"{{user.id}}"` becomes the value with its own type (a string,
//! a boolean, a number, an object), `"Hi {{user.first_name}}"` interpolates text, and
//! `"{{user.public_metadata.age || 30}}"` takes the first operand that is neither `null` nor
//! `false` (else the last one). Literals are `'single-quoted'` strings, numbers, `true` and
//! `false`. Unknown fields of `user` become `null`, as on Clerk; `org.*` is always `null`
//! (the idp has no organizations). Templates are checked when stored ([`check`]) so that
//! minting ([`render`]) cannot fail.

use serde_json::{Map, Value};

use crate::store::User;

/// Deepest nesting of arrays and objects in a template's claims.
const MAX_DEPTH: usize = 16;
/// Most shortcodes in one string.
const MAX_SHORTCODES_PER_STRING: usize = 32;
/// Most operands of one `||` expression.
const MAX_OPERANDS: usize = 16;

/// Why a template's claims were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ShortcodeError(pub(crate) String);

/// One operand of an expression.
#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// `user.a.b` as its segments after the root.
    User(Vec<String>),
    /// `org.…`: always `null` here.
    Org,
    /// A literal.
    Literal(Value),
}

/// A piece of a string value: text, or an expression between `{{` and `}}`.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Expression(Vec<Operand>),
}

/// Checks every string of `claims` (recursively) for well-formed shortcodes.
pub(crate) fn check(claims: &Value) -> Result<(), ShortcodeError> {
    check_at(claims, 0, "")
}

fn check_at(value: &Value, depth: usize, path: &str) -> Result<(), ShortcodeError> {
    if depth > MAX_DEPTH {
        return Err(ShortcodeError(format!(
            "claims nest deeper than {MAX_DEPTH} levels"
        )));
    }
    match value {
        Value::String(s) => parse(s)
            .map(drop)
            .map_err(|e| ShortcodeError(format!("claim `{path}`: {}", e.0))),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_at(item, depth + 1, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().try_for_each(|(k, item)| {
            let path = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            check_at(item, depth + 1, &path)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// `claims` with every shortcode replaced by `user`'s values. Claims must have passed
/// [`check`]; a string that does not parse is kept as it is.
pub(crate) fn render(claims: &Value, user: &User) -> Value {
    match claims {
        Value::String(s) => match parse(s) {
            Ok(pieces) => render_string(s, &pieces, user),
            Err(_) => claims.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(|v| render(v, user)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), render(v, user)))
                .collect::<Map<_, _>>(),
        ),
        Value::Null | Value::Bool(_) | Value::Number(_) => claims.clone(),
    }
}

fn render_string(original: &str, pieces: &[Piece], user: &User) -> Value {
    match pieces {
        [] => Value::String(original.to_owned()),
        [Piece::Text(_)] => Value::String(original.to_owned()),
        // A value that is one shortcode keeps the value's type.
        [Piece::Expression(operands)] => evaluate(operands, user),
        _ => {
            let mut text = String::new();
            for piece in pieces {
                match piece {
                    Piece::Text(t) => text.push_str(t),
                    Piece::Expression(operands) => match evaluate(operands, user) {
                        Value::String(s) => text.push_str(&s),
                        other => text.push_str(&other.to_string()),
                    },
                }
            }
            Value::String(text.trim().to_owned())
        }
    }
}

/// The first operand that is neither `null` nor `false`, else the last one.
fn evaluate(operands: &[Operand], user: &User) -> Value {
    let mut last = Value::Null;
    for operand in operands {
        last = match operand {
            Operand::User(path) => user_value(user, path),
            Operand::Org => Value::Null,
            Operand::Literal(v) => v.clone(),
        };
        if !matches!(last, Value::Null | Value::Bool(false)) {
            return last;
        }
    }
    last
}

/// `user.<path>`: the fields Clerk's shortcodes name, `null` for the others.
fn user_value(user: &User, path: &[String]) -> Value {
    let Some((field, rest)) = path.split_first() else {
        return Value::Null;
    };
    let opt = |s: &Option<String>| s.clone().map_or(Value::Null, Value::String);
    let primary = user.primary_email();
    let value = match field.as_str() {
        "id" => Value::String(user.id.clone()),
        "first_name" => opt(&user.first_name),
        "last_name" => opt(&user.last_name),
        "full_name" => opt(&user.full_name()),
        "username" => opt(&user.username),
        "image_url" | "profile_image_url" => opt(&user.image_url),
        "has_image" => Value::Bool(user.image_url.is_some()),
        "primary_email_address" => primary.map_or(Value::Null, |e| e.email_address.clone().into()),
        "email_verified" => Value::Bool(primary.is_some_and(|e| e.is_verified())),
        "two_factor_enabled" => Value::Bool(user.two_factor.enabled()),
        // The idp keeps no phone numbers, wallets or external ids.
        "phone_number_verified" => Value::Bool(false),
        "created_at" => (user.created_at / 1000).into(),
        "updated_at" => (user.updated_at / 1000).into(),
        "last_sign_in_at" => user
            .last_sign_in_at
            .map_or(Value::Null, |ms| (ms / 1000).into()),
        "public_metadata" => user.public_metadata.clone(),
        "unsafe_metadata" => user.unsafe_metadata.clone(),
        _ => return Value::Null,
    };
    let is_metadata = matches!(field.as_str(), "public_metadata" | "unsafe_metadata");
    match (rest, is_metadata) {
        ([], _) => value,
        (rest, true) => rest
            .iter()
            .try_fold(&value, |v, key| v.get(key.as_str()))
            .cloned()
            .unwrap_or(Value::Null),
        (_, false) => Value::Null,
    }
}

/// Splits a string into text and `{{ … }}` expressions.
fn parse(s: &str) -> Result<Vec<Piece>, ShortcodeError> {
    let mut pieces = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        if pieces.len() >= 2 * MAX_SHORTCODES_PER_STRING {
            return Err(ShortcodeError(format!(
                "more than {MAX_SHORTCODES_PER_STRING} shortcodes in one value"
            )));
        }
        if start > 0 {
            pieces.push(Piece::Text(rest[..start].to_owned()));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(ShortcodeError(
                "a shortcode opened with `{{` is never closed with `}}`".to_owned(),
            ));
        };
        pieces.push(Piece::Expression(expression(&after[..end])?));
        rest = &after[end + 2..];
    }
    if rest.contains("}}") {
        return Err(ShortcodeError(
            "`}}` closes a shortcode that was never opened".to_owned(),
        ));
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

fn expression(text: &str) -> Result<Vec<Operand>, ShortcodeError> {
    let operands: Vec<&str> = text.split("||").map(str::trim).collect();
    if operands.len() > MAX_OPERANDS {
        return Err(ShortcodeError(format!(
            "more than {MAX_OPERANDS} operands in `{{{{{}}}}}`",
            shorten(text)
        )));
    }
    operands.into_iter().map(operand).collect()
}

fn operand(text: &str) -> Result<Operand, ShortcodeError> {
    let bad = |why: &str| ShortcodeError(format!("`{}` {why}", shorten(text)));
    if text.is_empty() {
        return Err(bad("is an empty shortcode operand"));
    }
    if let Some(inner) = text.strip_prefix('\'') {
        return match inner.strip_suffix('\'') {
            Some(s) if !s.contains('\'') => Ok(Operand::Literal(Value::String(s.to_owned()))),
            _ => Err(bad("is not a 'single-quoted' string")),
        };
    }
    match text {
        "true" => return Ok(Operand::Literal(Value::Bool(true))),
        "false" => return Ok(Operand::Literal(Value::Bool(false))),
        _ => {}
    }
    if text.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        return match serde_json::from_str::<serde_json::Number>(text) {
            Ok(n) => Ok(Operand::Literal(Value::Number(n))),
            Err(_) => Err(bad("is not a number")),
        };
    }
    let segments: Vec<&str> = text.split('.').collect();
    let word = |s: &&str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    };
    if !segments.iter().all(word) {
        return Err(bad(
            "is not a shortcode (`user.field`), a 'string', a number, true or false",
        ));
    }
    match segments[0] {
        "user" => Ok(Operand::User(
            segments[1..].iter().map(|s| (*s).to_owned()).collect(),
        )),
        "org" => Ok(Operand::Org),
        _ => Err(bad("names neither `user` nor `org`")),
    }
}

fn shorten(text: &str) -> String {
    text.chars()
        .take(64)
        .collect::<String>()
        .escape_debug()
        .to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::EmailAddress;

    fn maria() -> User {
        User {
            id: "user_abc".into(),
            email_addresses: vec![EmailAddress {
                id: "idn_1".into(),
                email_address: "maria@example.com".into(),
                verified_by: Some("admin".into()),
                pending_code: None,
            }],
            first_name: Some("Maria".into()),
            last_name: None,
            username: None,
            image_url: None,
            created_at: 1_227_618_844_000,
            updated_at: 1_227_618_900_000,
            last_sign_in_at: None,
            public_metadata: json!({"role": "admin", "profile": {"interests": ["reading"]}}),
            private_metadata: json!({"secret": 1}),
            unsafe_metadata: json!({}),
            password_hash: None,
            two_factor: Default::default(),
        }
    }

    #[test]
    fn two_factor_enabled_follows_the_users_second_factor() {
        let claims = json!({"mfa": "{{user.two_factor_enabled}}"});
        let mut user = maria();
        assert_eq!(render(&claims, &user), json!({"mfa": false}));
        user.two_factor.totp = true;
        assert_eq!(render(&claims, &user), json!({"mfa": true}));
    }

    #[test]
    fn renders_typed_values_interpolation_and_fallbacks() {
        let claims = json!({
            "aud": "https://example.com",
            "version": 1,
            "user_id": "{{user.id}}",
            "role": "{{ user.public_metadata.role }}",
            "likes": "{{user.public_metadata.profile.interests}}",
            "missing": "{{user.public_metadata.nope}}",
            "full": "{{user.last_name}} {{user.first_name}}",
            "verified": "{{user.email_verified}}",
            "since": "{{user.created_at}}",
            "name": "{{user.last_name || 'Anonymous'}}",
            "age": "{{user.public_metadata.age || user.unsafe_metadata.age || 30}}",
            "private": "{{user.private_metadata}}",
            "unknown": "{{user.i_dont_exist}}",
            "org": "{{org.id || false}}",
            "nested": {"list": ["{{user.primary_email_address}}", 2]},
        });
        check(&claims).unwrap();
        let out = render(&claims, &maria());
        assert_eq!(
            out,
            json!({
                "aud": "https://example.com",
                "version": 1,
                "user_id": "user_abc",
                "role": "admin",
                "likes": ["reading"],
                "missing": null,
                "full": "null Maria",
                "verified": true,
                "since": 1_227_618_844,
                "name": "Anonymous",
                "age": 30,
                "private": null,
                "unknown": null,
                "org": false,
                "nested": {"list": ["maria@example.com", 2]},
            })
        );
    }

    #[test]
    fn refuses_malformed_shortcodes() {
        for bad in [
            "{{user.id",
            "user.id}}",
            "{{}}",
            "{{ user..id }}",
            "{{session.id}}",
            "{{ 'unterminated }}",
            "{{ user.id || null }}",
            "{{ 12abc }}",
            "{{ user.id; drop }}",
        ] {
            let error = check(&json!({ "claim": bad })).unwrap_err();
            assert!(error.0.starts_with("claim `claim`"), "{bad}: {error}");
        }
        let mut deep = json!("x");
        for _ in 0..=MAX_DEPTH {
            deep = json!([deep]);
        }
        assert!(check(&deep).is_err());
    }
}
