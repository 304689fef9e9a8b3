//! Convex JSON as text, byte-identical to JavaScript's `JSON.stringify(convexToJson(v))`.
//!
//! serde_json writes numbers differently from JavaScript (`1.0` vs `1`, `1e21` vs `1e+21`), so
//! this small writer formats numbers with `ryu-js` (JavaScript's `Number.prototype.toString`) and
//! escapes strings exactly as `JSON.stringify` does: `"` and `\` with a backslash, `\b \f \n \r
//! \t` by name, other characters below U+0020 as `\u00xx` (lowercase hex), and nothing else (not
//! `/`, not non-ASCII). Object fields follow [`js_field_order`]. The golden test
//! `tests/golden_convex_js.rs` checks all this against the official `convex` npm package.

use std::fmt::Write as _;

use crate::Value;
use crate::json::{bytes_base64, float_base64, integer_base64, is_special_float, js_field_order};

/// Convex JSON text of a value, byte-identical to `JSON.stringify(convexToJson(v))` in
/// `convex@1.48.0` for the same value.
///
/// ```
/// use keel_values::{obj, to_json_string, Value};
/// let v = obj! { "b" => 1.0, "a" => 1e21, "10" => -0.0, "2" => 7i64 };
/// assert_eq!(
///     to_json_string(&v),
///     r#"{"2":{"$integer":"BwAAAAAAAAA="},"10":{"$float":"AAAAAAAAAIA="},"a":1e+21,"b":1}"#
/// );
/// ```
pub fn to_json_string(v: &Value) -> String {
    let mut out = String::with_capacity(64);
    write_value(v, &mut out);
    out
}

fn write_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Boolean(true) => out.push_str("true"),
        Value::Boolean(false) => out.push_str("false"),
        Value::Int64(i) => write_tagged("$integer", &integer_base64(*i), out),
        Value::Float64(f) if is_special_float(*f) => {
            write_tagged("$float", &float_base64(*f), out);
        }
        Value::Float64(f) => out.push_str(ryu_js::Buffer::new().format_finite(*f)),
        Value::String(s) => write_string(s, out),
        Value::Bytes(b) => write_tagged("$bytes", &bytes_base64(b), out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (i, (name, field)) in js_field_order(fields).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(name, out);
                out.push(':');
                write_value(field, out);
            }
            out.push('}');
        }
    }
}

fn write_tagged(tag: &str, base64: &str, out: &mut String) {
    out.push_str("{\"");
    out.push_str(tag);
    out.push_str("\":\"");
    out.push_str(base64);
    out.push_str("\"}");
}

/// A JSON string literal as `JSON.stringify` writes it.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    let mut plain_from = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[plain_from..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        plain_from = i + 1;
    }
    out.push_str(&s[plain_from..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obj;

    #[test]
    fn numbers_are_written_like_javascript() {
        let cases: [(f64, &str); 9] = [
            (1.0, "1"),
            (0.0, "0"),
            (0.1, "0.1"),
            (1e21, "1e+21"),
            (1e-7, "1e-7"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (123456789.123, "123456789.123"),
            (-2.5, "-2.5"),
        ];
        for (f, text) in cases {
            assert_eq!(to_json_string(&Value::Float64(f)), text);
        }
    }

    #[test]
    fn strings_are_escaped_like_json_stringify() {
        let s = "q\"b\\s/\u{1}\u{1f}\u{7f}\u{8}\u{c}\n\r\t\u{e9}\u{2028}\u{1F600}";
        assert_eq!(
            to_json_string(&Value::from(s)),
            "\"q\\\"b\\\\s/\\u0001\\u001f\u{7f}\\b\\f\\n\\r\\t\u{e9}\u{2028}\u{1F600}\""
        );
    }

    #[test]
    fn array_index_fields_come_first_in_numeric_order() {
        let v = obj! { "b" => 1.0, "10" => 2.0, "9" => 3.0, "01" => 4.0, "4294967295" => 5.0,
        "4294967294" => 6.0 };
        assert_eq!(
            to_json_string(&v),
            r#"{"9":3,"10":2,"4294967294":6,"01":4,"4294967295":5,"b":1}"#
        );
    }
}
