//! Resolving plain YAML scalars the way `kubectl` does.
//!
//! kubectl converts YAML to JSON with sigs.k8s.io/yaml, which resolves plain scalars by YAML 1.1
//! rules (go-yaml v2): `yes`/`no`/`on`/`off` are booleans, `0x1A` is an integer, `~` is null.
//! Quoted scalars and `!!str` are always strings, so what we see is what the API server sees.

use std::borrow::Cow;

use saphyr_parser::{ScalarStyle, Tag};

use super::Value;

pub(super) fn resolve<'a>(text: Cow<'a, str>, style: ScalarStyle, tag: Option<&Tag>) -> Value<'a> {
    if let Some(tag) = tag {
        if tag.is_yaml_core_schema() {
            return match tag.suffix.as_str() {
                "str" => Value::Str(text),
                "null" => Value::Null,
                "bool" => bool_of(&text).map_or(Value::Str(text), Value::Bool),
                "int" => int_of(&text).map_or(Value::Str(text), Value::Int),
                "float" => number_of(&text).unwrap_or(Value::Str(text)),
                _ => Value::Str(text),
            };
        }
        // Unknown local tags carry no type for JSON: keep the text.
        return Value::Str(text);
    }
    if style != ScalarStyle::Plain {
        return Value::Str(text);
    }
    resolve_plain(text)
}

fn resolve_plain(text: Cow<'_, str>) -> Value<'_> {
    match text.as_ref() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        _ => {}
    }
    if let Some(b) = bool_of(&text) {
        return Value::Bool(b);
    }
    let first = text.as_bytes()[0];
    if (first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.'))
        && let Some(v) = number_of(&text)
    {
        return v;
    }
    Value::Str(text)
}

fn bool_of(text: &str) -> Option<bool> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Some(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Some(false)
        }
        _ => None,
    }
}

fn int_of(text: &str) -> Option<i64> {
    let cleaned: Cow<'_, str> = if text.contains('_') {
        Cow::Owned(text.replace('_', ""))
    } else {
        Cow::Borrowed(text)
    };
    let (negative, digits) = match cleaned.as_bytes().first()? {
        b'-' => (true, &cleaned[1..]),
        b'+' => (false, &cleaned[1..]),
        _ => (false, &cleaned[..]),
    };
    if digits.is_empty() {
        return None;
    }
    let magnitude = if let Some(hex) = digits.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()?
    } else if let Some(bin) = digits.strip_prefix("0b") {
        i128::from_str_radix(bin, 2).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i128::from_str_radix(oct, 8).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        // YAML 1.1 reads a leading zero as octal.
        i128::from_str_radix(&digits[1..], 8).ok()?
    } else {
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<i128>().ok()?
    };
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

fn number_of(text: &str) -> Option<Value<'static>> {
    if let Some(i) = int_of(text) {
        return Some(Value::Int(i));
    }
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Some(Value::Float(f64::INFINITY));
        }
        "-.inf" | "-.Inf" | "-.INF" => return Some(Value::Float(f64::NEG_INFINITY)),
        ".nan" | ".NaN" | ".NAN" => return Some(Value::Float(f64::NAN)),
        _ => {}
    }
    let cleaned = text.replace('_', "");
    let body = cleaned.trim_start_matches(['-', '+']);
    let plausible = !body.is_empty()
        && body.bytes().any(|b| b.is_ascii_digit())
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if !plausible {
        return None;
    }
    cleaned.parse::<f64>().ok().map(Value::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(s: &str) -> Value<'_> {
        resolve(Cow::Borrowed(s), ScalarStyle::Plain, None)
    }

    #[test]
    fn kubectl_style_resolution() {
        assert_eq!(plain("26"), Value::Int(26));
        assert_eq!(plain("-3"), Value::Int(-3));
        assert_eq!(plain("0x1A"), Value::Int(26));
        assert_eq!(plain("010"), Value::Int(8));
        assert_eq!(plain("1_000"), Value::Int(1000));
        assert_eq!(plain("26.0"), Value::Float(26.0));
        assert_eq!(plain("1e3"), Value::Float(1000.0));
        assert_eq!(plain("yes"), Value::Bool(true));
        assert_eq!(plain("Off"), Value::Bool(false));
        assert_eq!(plain("~"), Value::Null);
        assert_eq!(plain(""), Value::Null);
        assert_eq!(
            plain("10.0.0.0/16"),
            Value::Str(Cow::Borrowed("10.0.0.0/16"))
        );
        assert_eq!(plain("1.2.3"), Value::Str(Cow::Borrowed("1.2.3")));
        assert_eq!(plain("99999999999999999999"), Value::Float(1e20));
        assert_eq!(
            resolve(Cow::Borrowed("26"), ScalarStyle::DoubleQuoted, None),
            Value::Str(Cow::Borrowed("26"))
        );
    }
}
