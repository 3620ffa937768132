//! A pod's volumes on the node, as kubelet materialises them: one folder per volume under the
//! pod's folder (`secret`, `configMap`, `downwardAPI`, `projected` — its service-account token
//! obtained by TokenRequest bound to the pod —, `emptyDir`; `hostPath` is the host's folder),
//! later bind-mounted at each container's mountPaths.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapProjection, DownwardAPIProjection, KeyToPath, SecretProjection, ServiceAccount,
    Volume, VolumeProjection,
};
use kube::Client;
use kube::api::{Api, PostParams};
use thiserror::Error;

use super::env::{Context, field_value};

#[derive(Debug, Error)]
pub enum VolumeError {
    #[error("volume {volume}: {what} not found (create it or mark the source optional)")]
    Missing { volume: String, what: String },
    #[error(
        "volume {volume}: {kind} volumes are not supported by calico-sim (use secret, configMap, downwardAPI, projected, emptyDir or hostPath)"
    )]
    Unsupported { volume: String, kind: String },
    #[error("volume {volume}: downward API field {field} is not one calico-sim resolves")]
    Field { volume: String, field: String },
    #[error("volume {volume}: requesting a token for service account {account}: {source}")]
    Token {
        volume: String,
        account: String,
        #[source]
        source: kube::Error,
    },
    #[error("volume {volume}: writing {path}: {source}")]
    Write {
        volume: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Kubelet's default for a projected token without `expirationSeconds`.
const DEFAULT_TOKEN_SECONDS: i64 = 3600;

/// Writes every volume of the pod under `dir` (`<dir>/<volume name>`); returns when the tokens
/// written need refreshing (80 % of the shortest lifetime, as kubelet refreshes), if any.
pub async fn materialise(
    client: &Client,
    context: &Context<'_>,
    dir: &Path,
) -> Result<Option<Duration>, VolumeError> {
    let mut refresh: Option<Duration> = None;
    let spec = context.pod.spec.as_ref();
    for volume in spec.and_then(|s| s.volumes.as_ref()).into_iter().flatten() {
        let root = dir.join(&volume.name);
        let write = |path: &str, data: &[u8]| write_file(&volume.name, &root, path, data);
        if volume.host_path.is_some() {
            continue;
        } else if volume.empty_dir.is_some() {
            fs::create_dir_all(&root).map_err(|source| VolumeError::Write {
                volume: volume.name.clone(),
                path: root.clone(),
                source,
            })?;
        } else if let Some(sources) = projections(volume) {
            fs::create_dir_all(&root).map_err(|source| VolumeError::Write {
                volume: volume.name.clone(),
                path: root.clone(),
                source,
            })?;
            for source in &sources {
                if let Some(token) = &source.service_account_token {
                    let seconds = token.expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS);
                    let text =
                        request_token(client, context, volume, token.audience.clone(), seconds)
                            .await?;
                    write(&token.path, text.as_bytes())?;
                    let due = Duration::from_secs(u64::try_from(seconds).unwrap_or(0) * 4 / 5);
                    refresh = Some(refresh.map_or(due, |r| r.min(due)));
                }
                if let Some(secret) = &source.secret {
                    let data = keyed(
                        &volume.name,
                        format!("Secret {}", secret.name),
                        context.sources.secret_data(&secret.name),
                        secret.items.as_deref(),
                        secret.optional.unwrap_or(false),
                    )?;
                    write_all(&volume.name, &root, &data)?;
                }
                if let Some(map) = &source.config_map {
                    let data = keyed(
                        &volume.name,
                        format!("ConfigMap {}", map.name),
                        context.sources.config_map_data(&map.name),
                        map.items.as_deref(),
                        map.optional.unwrap_or(false),
                    )?;
                    write_all(&volume.name, &root, &data)?;
                }
                if let Some(downward) = &source.downward_api {
                    for item in downward.items.iter().flatten() {
                        write(
                            &item.path,
                            downward_field(volume, context, item.field_ref.as_ref())?.as_bytes(),
                        )?;
                    }
                }
            }
        } else {
            let kind = serde_json::to_value(volume)
                .ok()
                .and_then(|v| v.as_object()?.keys().find(|k| *k != "name").cloned())
                .unwrap_or_else(|| "unknown".to_owned());
            return Err(VolumeError::Unsupported {
                volume: volume.name.clone(),
                kind,
            });
        }
    }
    Ok(refresh)
}

/// The sources of a volume made of keyed files: a `secret`, `configMap` or `downwardAPI` volume is
/// a `projected` one of a single source (their `defaultMode`s aside, which the sim does not apply).
fn projections(volume: &Volume) -> Option<Vec<VolumeProjection>> {
    if let Some(secret) = &volume.secret {
        return Some(vec![VolumeProjection {
            secret: Some(SecretProjection {
                name: secret.secret_name.clone().unwrap_or_default(),
                items: secret.items.clone(),
                optional: secret.optional,
            }),
            ..VolumeProjection::default()
        }]);
    }
    if let Some(map) = &volume.config_map {
        return Some(vec![VolumeProjection {
            config_map: Some(ConfigMapProjection {
                name: map.name.clone(),
                items: map.items.clone(),
                optional: map.optional,
            }),
            ..VolumeProjection::default()
        }]);
    }
    if let Some(downward) = &volume.downward_api {
        return Some(vec![VolumeProjection {
            downward_api: Some(DownwardAPIProjection {
                items: downward.items.clone(),
            }),
            ..VolumeProjection::default()
        }]);
    }
    let projected = volume.projected.as_ref()?;
    Some(projected.sources.clone().unwrap_or_default())
}

/// Where a volume's content is on the host: its folder under `dir`, or the hostPath.
pub fn host_folder(volume: &Volume, dir: &Path) -> PathBuf {
    match &volume.host_path {
        Some(host) => PathBuf::from(&host.path),
        None => dir.join(&volume.name),
    }
}

fn downward_field(
    volume: &Volume,
    context: &Context<'_>,
    field: Option<&k8s_openapi::api::core::v1::ObjectFieldSelector>,
) -> Result<String, VolumeError> {
    let path = field.map(|f| f.field_path.as_str()).unwrap_or_default();
    field_value(context, path).ok_or_else(|| VolumeError::Field {
        volume: volume.name.clone(),
        field: path.to_owned(),
    })
}

/// A token for the pod's service account, bound to the pod (it stops working when the pod goes).
async fn request_token(
    client: &Client,
    context: &Context<'_>,
    volume: &Volume,
    audience: Option<String>,
    seconds: i64,
) -> Result<String, VolumeError> {
    let pod = context.pod;
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".to_owned());
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.into_iter().collect(),
            expiration_seconds: Some(seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..TokenRequest::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let answer = api
        .create_token_request(&account, &PostParams::default(), &request)
        .await
        .map_err(|source| VolumeError::Token {
            volume: volume.name.clone(),
            account: account.clone(),
            source,
        })?;
    Ok(answer.status.map(|s| s.token).unwrap_or_default())
}

/// The files of a Secret or ConfigMap volume: every key, or the `items` chosen.
fn keyed(
    volume: &str,
    what: String,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&[KeyToPath]>,
    optional: bool,
) -> Result<BTreeMap<String, Vec<u8>>, VolumeError> {
    let Some(data) = data else {
        return if optional {
            Ok(BTreeMap::new())
        } else {
            Err(VolumeError::Missing {
                volume: volume.to_owned(),
                what,
            })
        };
    };
    let Some(items) = items else {
        return Ok(data);
    };
    items
        .iter()
        .map(|item| match data.get(&item.key) {
            Some(value) => Ok((item.path.clone(), value.clone())),
            None => Err(VolumeError::Missing {
                volume: volume.to_owned(),
                what: format!("key {} of {what}", item.key),
            }),
        })
        .collect()
}

fn write_all(
    volume: &str,
    root: &Path,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<(), VolumeError> {
    fs::create_dir_all(root).map_err(|source| VolumeError::Write {
        volume: volume.to_owned(),
        path: root.to_owned(),
        source,
    })?;
    for (path, data) in files {
        write_file(volume, root, path, data)?;
    }
    Ok(())
}

/// Writes a file whole (renamed into place), so that a process reading a refreshed token never
/// sees half of it.
fn write_file(volume: &str, root: &Path, path: &str, data: &[u8]) -> Result<(), VolumeError> {
    let target = root.join(path);
    let fresh = PathBuf::from(format!("{}.sim-new", target.display()));
    let result = target
        .parent()
        .map_or(Ok(()), fs::create_dir_all)
        .and_then(|()| fs::write(&fresh, data))
        .and_then(|()| fs::rename(&fresh, &target));
    result.map_err(|source| VolumeError::Write {
        volume: volume.to_owned(),
        path: target,
        source,
    })
}
