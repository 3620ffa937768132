//! The Kubernetes API server's checks of ObjectMeta (apimachinery's validation), applied to both
//! API groups.

use super::Finding;
use crate::model::IpPool;
use crate::report::FieldPath;

const MAX_SUBDOMAIN: usize = 253;
const MAX_NAME_PART: usize = 63;
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

pub(super) fn check(pool: &IpPool, out: &mut Vec<Finding>) {
    check_name(pool, out);
    let labels = || FieldPath::keys(&["metadata", "labels"]);
    for (key, value) in &pool.metadata.labels {
        if let Err(why) = qualified_name(key) {
            out.push(
                Finding::new("IPP041", labels().key(key), format!("label key '{key}' is invalid: {why}"))
                    .hint("keys are [prefix/]name: name up to 63 alphanumerics, '-', '_', '.'; prefix a DNS subdomain"),
            );
        }
        if let Err(why) = label_value(value) {
            out.push(
                Finding::new("IPP042", labels().key(key), format!("label value '{value}' is invalid: {why}"))
                    .hint("values are empty or up to 63 alphanumerics, '-', '_', '.', starting and ending alphanumeric"),
            );
        }
    }
    let annotations = || FieldPath::keys(&["metadata", "annotations"]);
    let mut total = 0usize;
    for (key, value) in &pool.metadata.annotations {
        total += key.len() + value.len();
        if let Err(why) = qualified_name(&key.to_lowercase()) {
            out.push(
                Finding::new("IPP043", annotations().key(key), format!("annotation key '{key}' is invalid: {why}"))
                    .hint("keys are [prefix/]name: name up to 63 alphanumerics, '-', '_', '.'; prefix a DNS subdomain"),
            );
        }
    }
    if total > MAX_ANNOTATIONS_BYTES {
        out.push(
            Finding::new(
                "IPP044",
                annotations(),
                format!("annotations total {total} bytes, more than the API server's limit of {MAX_ANNOTATIONS_BYTES} bytes"),
            )
            .hint("move large data out of annotations (e.g. into a ConfigMap)"),
        );
    }
}

fn check_name(pool: &IpPool, out: &mut Vec<Finding>) {
    let path = || FieldPath::keys(&["metadata", "name"]);
    match pool.metadata.name.as_deref() {
        None | Some("") => {
            let generated = pool
                .metadata
                .extra
                .get("generateName")
                .and_then(|g| g.as_str())
                .is_some_and(|g| !g.is_empty());
            if !generated {
                out.push(
                    Finding::new("IPP014", path(), "metadata.name is required")
                        .hint("add metadata.name, e.g. name: default-ipv4-ippool"),
                );
            }
        }
        Some(name) => {
            if let Err(why) = dns_subdomain(name) {
                out.push(
                    Finding::new("IPP040", path(), format!("name '{name}' is not a valid DNS-1123 subdomain: {why}"))
                        .hint("use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"),
                );
            }
        }
    }
}

fn dns_label_ok(label: &str) -> bool {
    let b = label.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A DNS-1123 subdomain: dot-separated labels of [a-z0-9-], each starting and ending
/// alphanumeric, at most 253 characters.
pub(crate) fn dns_subdomain(name: &str) -> Result<(), String> {
    if name.len() > MAX_SUBDOMAIN {
        return Err(format!(
            "{} characters, more than {MAX_SUBDOMAIN}",
            name.len()
        ));
    }
    if name.split('.').all(dns_label_ok) {
        Ok(())
    } else {
        Err("must consist of lowercase alphanumerics, '-' or '.', and start and end with an alphanumeric".into())
    }
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters (empty allowed by callers).
fn name_part(part: &str) -> Result<(), String> {
    let b = part.as_bytes();
    if b.len() > MAX_NAME_PART {
        return Err(format!("{} characters, more than {MAX_NAME_PART}", b.len()));
    }
    let inner_ok = b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    let ends_ok = b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric);
    if inner_ok && ends_ok {
        Ok(())
    } else {
        Err("must consist of alphanumerics, '-', '_' or '.', and start and end with an alphanumeric".into())
    }
}

fn qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if name.is_empty() {
        return Err("the name part must not be empty".into());
    }
    if name.contains('/') {
        return Err("must contain at most one '/'".into());
    }
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err("the prefix before '/' must not be empty".into());
        }
        dns_subdomain(prefix).map_err(|why| format!("prefix '{prefix}' {why}"))?;
    }
    name_part(name)
}

fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        Ok(())
    } else {
        name_part(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys() {
        assert!(dns_subdomain("default-ipv4-ippool").is_ok());
        assert!(dns_subdomain("a.b-c.d").is_ok());
        assert!(dns_subdomain("Default").is_err());
        assert!(dns_subdomain("-a").is_err());
        assert!(dns_subdomain("a..b").is_err());
        assert!(dns_subdomain(&"a".repeat(254)).is_err());
        assert!(qualified_name("app.kubernetes.io/managed-by").is_ok());
        assert!(qualified_name("zone").is_ok());
        assert!(qualified_name("/zone").is_err());
        assert!(qualified_name("a/b/c").is_err());
        assert!(qualified_name("Bad_Prefix/x").is_err());
        assert!(qualified_name(&"x".repeat(64)).is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("tigera-operator").is_ok());
        assert!(label_value("-x").is_err());
    }
}
