//! A container's environment as kubelet builds it: the Service variables of the API server, then
//! `envFrom`, then `env` in order (values, `fieldRef`s, Secret and ConfigMap keys), with `$(VAR)`
//! references expanded against what came before; the same expansion applies to command and args.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Container, Pod};
use thiserror::Error;

use super::sources::Sources;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EnvError {
    #[error(
        "env {variable}: fieldRef {field} is not one kubelet resolves (metadata.name, metadata.namespace, metadata.uid, metadata.labels['K'], metadata.annotations['K'], spec.nodeName, spec.serviceAccountName, status.hostIP, status.hostIPs, status.podIP, status.podIPs)"
    )]
    Field { variable: String, field: String },
    #[error("env {variable}: {what} not found (make it exist or mark the reference optional)")]
    Missing { variable: String, what: String },
    #[error("env {variable}: resourceFieldRef is not supported by calico-sim; set a value instead")]
    ResourceField { variable: String },
}

/// What the environment of a pod on this node refers to.
pub struct Context<'a> {
    pub pod: &'a Pod,
    pub node: &'a str,
    pub ip: IpAddr,
    /// The API server as its clients reach it (KUBERNETES_SERVICE_HOST/PORT).
    pub api_host: &'a str,
    pub api_port: u16,
    pub sources: &'a Sources,
}

/// The environment of `container`, in kubelet's order.
pub fn environment(
    context: &Context<'_>,
    container: &Container,
) -> Result<Vec<(String, String)>, EnvError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, name: &str, value: String| {
        env.retain(|(n, _)| n != name);
        env.push((name.to_owned(), value));
    };
    // No image supplies PATH here: the host's stands in for it.
    if let Ok(path) = std::env::var("PATH") {
        set(&mut env, "PATH", path);
    }
    let host_network = context
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let hostname = if host_network {
        context.node.to_owned()
    } else {
        context.pod.metadata.name.clone().unwrap_or_default()
    };
    set(&mut env, "HOSTNAME", hostname);
    let port = context.api_port.to_string();
    set(
        &mut env,
        "KUBERNETES_SERVICE_HOST",
        context.api_host.to_owned(),
    );
    set(&mut env, "KUBERNETES_SERVICE_PORT", port.clone());
    set(&mut env, "KUBERNETES_SERVICE_PORT_HTTPS", port);
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let data = if let Some(r) = &from.config_map_ref {
            let found = context.sources.config_map_data(&r.name);
            if found.is_none() && !r.optional.unwrap_or(false) {
                return Err(EnvError::Missing {
                    variable: format!("{prefix}*"),
                    what: format!("ConfigMap {}", r.name),
                });
            }
            found.unwrap_or_default()
        } else if let Some(r) = &from.secret_ref {
            let found = context.sources.secret_data(&r.name);
            if found.is_none() && !r.optional.unwrap_or(false) {
                return Err(EnvError::Missing {
                    variable: format!("{prefix}*"),
                    what: format!("Secret {}", r.name),
                });
            }
            found.unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        for (key, value) in data {
            set(
                &mut env,
                &format!("{prefix}{key}"),
                String::from_utf8_lossy(&value).into_owned(),
            );
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => {
                if let Some(field) = &from.field_ref {
                    field_value(context, &field.field_path).ok_or_else(|| EnvError::Field {
                        variable: var.name.clone(),
                        field: field.field_path.clone(),
                    })?
                } else if let Some(key) = &from.secret_key_ref {
                    match context.sources.secret_key(&key.name, &key.key) {
                        Some(v) => String::from_utf8_lossy(&v).into_owned(),
                        None if key.optional.unwrap_or(false) => continue,
                        None => {
                            return Err(EnvError::Missing {
                                variable: var.name.clone(),
                                what: format!("key {} of Secret {}", key.key, key.name),
                            });
                        }
                    }
                } else if let Some(key) = &from.config_map_key_ref {
                    match context.sources.config_map_key(&key.name, &key.key) {
                        Some(v) => String::from_utf8_lossy(&v).into_owned(),
                        None if key.optional.unwrap_or(false) => continue,
                        None => {
                            return Err(EnvError::Missing {
                                variable: var.name.clone(),
                                what: format!("key {} of ConfigMap {}", key.key, key.name),
                            });
                        }
                    }
                } else {
                    return Err(EnvError::ResourceField {
                        variable: var.name.clone(),
                    });
                }
            }
            (Some(value), None) => expand(value, &env),
            (None, None) => String::new(),
        };
        set(&mut env, &var.name, value);
    }
    Ok(env)
}

/// The value of a downward-API field of the pod, as kubelet resolves it.
pub fn field_value(context: &Context<'_>, path: &str) -> Option<String> {
    let pod = context.pod;
    let ip = context.ip.to_string();
    let keyed = |prefix: &str, map: Option<&BTreeMap<String, String>>| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    match path {
        "metadata.name" => pod.metadata.name.clone(),
        "metadata.namespace" => pod.metadata.namespace.clone(),
        "metadata.uid" => pod.metadata.uid.clone(),
        "spec.nodeName" => Some(context.node.to_owned()),
        "spec.serviceAccountName" => pod.spec.as_ref()?.service_account_name.clone(),
        // Pods of the sim run on their node's address (host network).
        "status.hostIP" | "status.hostIPs" | "status.podIP" | "status.podIPs" => Some(ip),
        _ => keyed("metadata.labels['", pod.metadata.labels.as_ref())
            .or_else(|| keyed("metadata.annotations['", pod.metadata.annotations.as_ref())),
    }
}

/// Kubelet's `$(VAR)` expansion: a reference to a defined variable is replaced, `$$` is a `$`,
/// anything else stays as written.
pub fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some((_, value)) = env.iter().rev().find(|(n, _)| *n == inner[..end])
        {
            out.push_str(value);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "apps", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"hostNetwork": true, "serviceAccountName": "web", "containers": [{
                "name": "web",
                "env": [
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "LISTEN", "value": "$(POD_IP):8080 $$(POD_IP) $(UNSET)"},
                    {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "none", "key": "k", "optional": true}}}
                ]
            }]}
        }))
        .unwrap()
    }

    fn context<'a>(pod: &'a Pod, sources: &'a Sources) -> Context<'a> {
        Context {
            pod,
            node: "sim-0",
            ip: "198.18.0.7".parse().unwrap(),
            api_host: "127.0.0.1",
            api_port: 6443,
            sources,
        }
    }

    #[test]
    fn fields_services_and_expansion_as_kubelet() {
        let pod = pod();
        let sources = Sources::default();
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let env: BTreeMap<_, _> = environment(&context(&pod, &sources), container)
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(env["POD_IP"], "198.18.0.7");
        assert_eq!(env["NS"], "apps");
        assert_eq!(env["APP"], "web");
        assert_eq!(env["HOSTNAME"], "sim-0");
        assert_eq!(env["KUBERNETES_SERVICE_HOST"], "127.0.0.1");
        assert_eq!(env["KUBERNETES_SERVICE_PORT"], "6443");
        assert_eq!(env["LISTEN"], "198.18.0.7:8080 $(POD_IP) $(UNSET)");
        assert!(!env.contains_key("OPT"));
    }

    #[test]
    fn a_missing_reference_names_the_variable_and_the_fix() {
        let mut pod = pod();
        let container = &mut pod.spec.as_mut().unwrap().containers[0];
        container.env = Some(vec![
            serde_json::from_value(
                json!({"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}),
            )
            .unwrap(),
        ]);
        let sources = Sources::default();
        let container = pod.spec.as_ref().unwrap().containers[0].clone();
        let err = environment(&context(&pod, &sources), &container).unwrap_err();
        assert!(
            err.to_string()
                .contains("TOKEN: key k of Secret s not found")
        );
    }
}
