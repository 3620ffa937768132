//! The Secrets and ConfigMaps a pod refers to (env, envFrom, volumes), read from the API once
//! before its containers start, as kubelet reads them for the pod.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::{Api, Client};

/// The pod's Secrets and ConfigMaps by name; a missing one is absent.
#[derive(Debug, Default)]
pub struct Sources {
    secrets: HashMap<String, BTreeMap<String, Vec<u8>>>,
    config_maps: HashMap<String, BTreeMap<String, Vec<u8>>>,
}

impl Sources {
    /// Reads every Secret and ConfigMap the pod names from its namespace.
    pub async fn read(client: &Client, pod: &Pod) -> Result<Sources, kube::Error> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let (secret_names, config_map_names) = referenced(pod);
        let mut sources = Sources::default();
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        for name in secret_names {
            if let Some(secret) = secrets.get_opt(&name).await? {
                let data = secret.data.unwrap_or_default().into_iter();
                sources
                    .secrets
                    .insert(name, data.map(|(k, v)| (k, v.0)).collect());
            }
        }
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        for name in config_map_names {
            if let Some(map) = config_maps.get_opt(&name).await? {
                let text = map.data.unwrap_or_default().into_iter();
                let binary = map.binary_data.unwrap_or_default().into_iter();
                let data = text
                    .map(|(k, v)| (k, v.into_bytes()))
                    .chain(binary.map(|(k, v)| (k, v.0)))
                    .collect();
                sources.config_maps.insert(name, data);
            }
        }
        Ok(sources)
    }

    pub fn secret_data(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        self.secrets.get(name).cloned()
    }

    pub fn config_map_data(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        self.config_maps.get(name).cloned()
    }

    pub fn secret_key(&self, name: &str, key: &str) -> Option<Vec<u8>> {
        self.secrets.get(name)?.get(key).cloned()
    }

    pub fn config_map_key(&self, name: &str, key: &str) -> Option<Vec<u8>> {
        self.config_maps.get(name)?.get(key).cloned()
    }
}

/// Names of the Secrets and of the ConfigMaps the pod refers to.
fn referenced(pod: &Pod) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut secrets = BTreeSet::new();
    let mut config_maps = BTreeSet::new();
    let Some(spec) = pod.spec.as_ref() else {
        return (secrets, config_maps);
    };
    for container in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        for from in container.env_from.iter().flatten() {
            secrets.extend(from.secret_ref.as_ref().map(|r| r.name.clone()));
            config_maps.extend(from.config_map_ref.as_ref().map(|r| r.name.clone()));
        }
        for from in container
            .env
            .iter()
            .flatten()
            .filter_map(|e| e.value_from.as_ref())
        {
            secrets.extend(from.secret_key_ref.as_ref().map(|r| r.name.clone()));
            config_maps.extend(from.config_map_key_ref.as_ref().map(|r| r.name.clone()));
        }
    }
    for volume in spec.volumes.iter().flatten() {
        secrets.extend(volume.secret.as_ref().and_then(|s| s.secret_name.clone()));
        config_maps.extend(volume.config_map.as_ref().map(|c| c.name.clone()));
        for source in volume
            .projected
            .as_ref()
            .and_then(|p| p.sources.as_ref())
            .into_iter()
            .flatten()
        {
            secrets.extend(source.secret.as_ref().map(|s| s.name.clone()));
            config_maps.extend(source.config_map.as_ref().map(|c| c.name.clone()));
        }
    }
    (secrets, config_maps)
}
