//! Waiting for the cluster to reach a state, driven by watches (never by sleeping and re-reading),
//! bounded by a timeout whose error says what was awaited and what was last seen.

use std::{collections::BTreeMap, fmt::Debug, pin::pin, time::Duration};

use futures::{FutureExt as _, StreamExt};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{
        WatchStreamExt,
        wait::Condition,
        watcher::{self, Event, watch_object, watcher},
    },
};
use serde::{Serialize, de::DeserializeOwned};

use crate::HarnessError;

/// Waits until the object `name` satisfies `cond` (which sees `None` while it does not exist).
/// Returns the object as it was when the condition held (`None` when it held for an absent object,
/// e.g. with `conditions::is_deleted`).
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    cond: impl Condition<K>,
    timeout: Duration,
) -> Result<Option<K>, HarnessError>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug + Send + 'static,
{
    let mut last = None;
    let mut last_error = None;
    let watch = async {
        let mut events = pin!(watch_object(api.clone(), name).default_backoff());
        while let Some(event) = events.next().await {
            match event {
                Ok(obj) if cond.matches_object(obj.as_ref()) => return obj,
                Ok(obj) => last = Some(obj),
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        unreachable!("a watcher stream restarts itself and never ends")
    };
    // A statement of its own, so that the watch (borrowing what we report) is gone before the match.
    let outcome = tokio::time::timeout(timeout, watch).await;
    match outcome {
        Ok(obj) => Ok(obj),
        Err(_) => Err(HarnessError::Timeout {
            what: format!("{}/{name} to meet the condition", api.resource_url()),
            timeout,
            last: match (last, last_error) {
                (_, Some(e)) => format!("; the watch failed: {e}"),
                (Some(Some(obj)), None) => format!("; last seen:\n{}", summary(&obj)),
                (Some(None), None) => "; it does not exist".to_owned(),
                (None, None) => String::new(),
            },
        }),
    }
}

/// Waits until `done` holds for the complete set of objects that `api` and `config` select, and
/// returns that set (ordered by namespace and name). The set is only judged once the initial list
/// has arrived, so an empty set is never mistaken for a finished one. `what` names the awaited state
/// in a timeout error.
pub async fn wait_for_all<K>(
    api: &Api<K>,
    config: watcher::Config,
    what: &str,
    done: impl Fn(&[K]) -> bool,
    timeout: Duration,
) -> Result<Vec<K>, HarnessError>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut current: BTreeMap<(String, String), K> = BTreeMap::new();
    let mut last_error = None;
    let watch = async {
        let mut events = pin!(watcher(api.clone(), config).default_backoff());
        let mut relisting: Option<BTreeMap<(String, String), K>> = None;
        while let Some(event) = events.next().await {
            apply(event, &mut current, &mut relisting, &mut last_error);
            // A burst of events is judged once, after its last event: judging copies the whole set,
            // which at thousands of objects would otherwise cost more than the cluster under test.
            while let Some(Some(event)) = events.next().now_or_never() {
                apply(event, &mut current, &mut relisting, &mut last_error);
            }
            // The watcher opens with Init, so nothing is judged before the first complete list.
            if relisting.is_none() {
                let objects: Vec<K> = current.values().cloned().collect();
                if done(&objects) {
                    return objects;
                }
            }
        }
        unreachable!("a watcher stream restarts itself and never ends")
    };
    // A statement of its own, so that the watch (borrowing what we report) is gone before the match.
    let outcome = tokio::time::timeout(timeout, watch).await;
    match outcome {
        Ok(objects) => Ok(objects),
        Err(_) => {
            let names: Vec<String> = current
                .keys()
                .map(|(ns, name)| qualified(ns, name))
                .collect();
            let shown = names
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            let more = names.len().saturating_sub(20);
            Err(HarnessError::Timeout {
                what: what.to_owned(),
                timeout,
                last: format!(
                    "; last seen {} objects: [{shown}{}]{}",
                    names.len(),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    },
                    last_error
                        .map(|e| format!("; the watch last failed: {e}"))
                        .unwrap_or_default()
                ),
            })
        }
    }
}

/// Folds one watch event into the current set (or the relist in progress).
fn apply<K: Resource>(
    event: Result<Event<K>, watcher::Error>,
    current: &mut BTreeMap<(String, String), K>,
    relisting: &mut Option<BTreeMap<(String, String), K>>,
    last_error: &mut Option<String>,
) {
    match event {
        Ok(Event::Init) => *relisting = Some(BTreeMap::new()),
        Ok(Event::InitApply(obj)) => {
            relisting
                .get_or_insert_with(BTreeMap::new)
                .insert(key(&obj), obj);
        }
        Ok(Event::InitDone) => *current = relisting.take().unwrap_or_default(),
        Ok(Event::Apply(obj)) => {
            current.insert(key(&obj), obj);
        }
        Ok(Event::Delete(obj)) => {
            current.remove(&key(&obj));
        }
        Err(e) => *last_error = Some(e.to_string()),
    }
}

fn key<K: Resource>(obj: &K) -> (String, String) {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

fn qualified(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}/{name}")
    }
}

/// The object as pretty JSON, cut short: enough to see why a condition did not hold.
fn summary<K: Serialize>(obj: &K) -> String {
    let text =
        serde_json::to_string_pretty(obj).unwrap_or_else(|e| format!("(not serializable: {e})"));
    match text.char_indices().nth(3000) {
        Some((cut, _)) => format!("{}\n…", &text[..cut]),
        None => text,
    }
}
