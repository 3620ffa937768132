//! A watch-fed copy of one kind of object, indexed by keys the executor waits on. Waiting is done
//! by watching: a waiter subscribes to one key (a workload, a controller, a budget) and is woken
//! only when an object under that key changes, so that many concurrent waits over thousands of
//! pods stay cheap.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt as _;
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::time::Instant;

/// The key every object is also filed under.
pub const ALL: &str = "*";

/// Computes the keys an object is filed under (besides [`ALL`]).
pub type Keys<K> = fn(&K) -> Vec<String>;

struct State<K> {
    objects: HashMap<String, Arc<K>>,
    /// key → uids of the objects filed under it.
    index: HashMap<String, HashSet<String>>,
    /// uid → the keys it is filed under (to unfile it on change or delete).
    filed: HashMap<String, Vec<String>>,
    /// key → a channel bumped whenever an object under the key changes.
    signals: HashMap<String, watch::Sender<u64>>,
    synced: bool,
    last_error: Option<String>,
    /// Objects of a relist in progress (`Init` … `InitDone`).
    relist: Option<Vec<K>>,
}

pub struct Mirror<K> {
    state: Arc<RwLock<State<K>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    what: String,
}

impl<K> Drop for Mirror<K> {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

fn uid_of<K: Resource>(object: &K) -> String {
    let meta = object.meta();
    meta.uid.clone().unwrap_or_else(|| {
        format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or(""),
            meta.name.as_deref().unwrap_or("")
        )
    })
}

impl<K> State<K>
where
    K: Resource,
{
    fn signal(&mut self, key: &str) {
        if let Some(tx) = self.signals.get(key) {
            tx.send_modify(|v| *v += 1);
        }
    }

    fn unfile(&mut self, uid: &str) -> Vec<String> {
        let keys = self.filed.remove(uid).unwrap_or_default();
        for key in &keys {
            if let Some(set) = self.index.get_mut(key) {
                set.remove(uid);
                if set.is_empty() {
                    self.index.remove(key);
                }
            }
        }
        self.objects.remove(uid);
        keys
    }

    fn apply(&mut self, object: K, keys: Keys<K>) {
        let uid = uid_of(&object);
        let mut touched = self.unfile(&uid);
        let mut new_keys = keys(&object);
        new_keys.push(ALL.to_owned());
        for key in &new_keys {
            self.index
                .entry(key.clone())
                .or_default()
                .insert(uid.clone());
        }
        touched.extend(new_keys.iter().cloned());
        self.filed.insert(uid.clone(), new_keys);
        self.objects.insert(uid, Arc::new(object));
        touched.sort();
        touched.dedup();
        for key in touched {
            self.signal(&key);
        }
    }

    fn delete(&mut self, object: &K) {
        let mut touched = self.unfile(&uid_of(object));
        touched.push(ALL.to_owned());
        touched.sort();
        touched.dedup();
        for key in touched {
            self.signal(&key);
        }
    }

    fn replace_all(&mut self, objects: Vec<K>, keys: Keys<K>) {
        let uids: Vec<String> = self.objects.keys().cloned().collect();
        for uid in uids {
            self.unfile(&uid);
        }
        for object in objects {
            self.apply(object, keys);
        }
        self.synced = true;
        let all: Vec<String> = self.signals.keys().cloned().collect();
        for key in all {
            self.signal(&key);
        }
    }
}

impl<K> Mirror<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Starts watching `api` (with `config`), filing every object under `keys(object)`.
    pub fn start(api: Api<K>, config: watcher::Config, keys: Keys<K>, what: &str) -> Mirror<K> {
        let state = Arc::new(RwLock::new(State {
            objects: HashMap::new(),
            index: HashMap::new(),
            filed: HashMap::new(),
            signals: HashMap::new(),
            synced: false,
            last_error: None,
            relist: None,
        }));
        let feed = state.clone();
        let task = tokio::spawn(async move {
            let stream = watcher::watcher(api, config)
                .default_backoff()
                .modify(|o: &mut K| o.meta_mut().managed_fields = None);
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                let mut state = feed.write().unwrap_or_else(|e| e.into_inner());
                match event {
                    Ok(Event::Apply(o)) => state.apply(o, keys),
                    Ok(Event::Delete(o)) => state.delete(&o),
                    Ok(Event::Init) => state.relist = Some(Vec::new()),
                    Ok(Event::InitApply(o)) => state.relist.get_or_insert_with(Vec::new).push(o),
                    Ok(Event::InitDone) => {
                        let objects = state.relist.take().unwrap_or_default();
                        state.replace_all(objects, keys);
                        state.last_error = None;
                    }
                    Err(e) => {
                        state.last_error = Some(e.to_string());
                        state.signal(ALL);
                    }
                }
            }
        });
        Mirror {
            state,
            task: Mutex::new(Some(task)),
            what: what.to_owned(),
        }
    }
}

impl<K> Mirror<K>
where
    K: Resource,
{
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State<K>> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// What is mirrored, for messages ("pods").
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The objects filed under `key`.
    pub fn get(&self, key: &str) -> Vec<Arc<K>> {
        let state = self.read();
        state
            .index
            .get(key)
            .map(|uids| {
                uids.iter()
                    .filter_map(|uid| state.objects.get(uid).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn all(&self) -> Vec<Arc<K>> {
        self.read().objects.values().cloned().collect()
    }

    /// The watch's last error, when it is failing.
    pub fn last_error(&self) -> Option<String> {
        self.read().last_error.clone()
    }

    /// A channel bumped whenever an object under `key` changes.
    pub fn subscribe(&self, key: &str) -> watch::Receiver<u64> {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state
            .signals
            .entry(key.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Waits until the first complete list has arrived.
    pub async fn synced(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        self.wait(ALL, deadline, |m| m.read().synced.then_some(()))
            .await
            .ok_or_else(|| {
                format!(
                    "the watch of {} did not list them within {}s{}",
                    self.what,
                    timeout.as_secs(),
                    self.last_error()
                        .map_or_else(String::new, |e| format!(" (last error: {e})"))
                )
            })
    }

    /// Calls `check` now and after every change under `key`, until it answers or `deadline`
    /// passes (`None`).
    pub async fn wait<T>(
        &self,
        key: &str,
        deadline: Instant,
        mut check: impl FnMut(&Self) -> Option<T>,
    ) -> Option<T> {
        let mut changes = self.subscribe(key);
        loop {
            changes.borrow_and_update();
            if let Some(answer) = check(self) {
                return Some(answer);
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                () = tokio::time::sleep_until(deadline) => return check(self),
            }
        }
    }

    /// Like [`Mirror::wait`], but also returns (with `None` from `check`'s point of view) after
    /// `at_most`, for callers that retry something on their own schedule.
    pub async fn wait_at_most<T>(
        &self,
        key: &str,
        at_most: Duration,
        check: impl FnMut(&Self) -> Option<T>,
    ) -> Option<T> {
        self.wait(key, Instant::now() + at_most, check).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn pod(uid: &str, app: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": uid, "namespace": "ns", "uid": uid, "labels": {"app": app}}
        }))
        .unwrap()
    }

    fn by_app(p: &Pod) -> Vec<String> {
        vec![format!(
            "app:{}",
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app"))
                .cloned()
                .unwrap_or_default()
        )]
    }

    #[test]
    fn objects_move_between_keys_and_leave_on_delete() {
        let mut state: State<Pod> = State {
            objects: HashMap::new(),
            index: HashMap::new(),
            filed: HashMap::new(),
            signals: HashMap::new(),
            synced: false,
            last_error: None,
            relist: None,
        };
        let (tx, mut rx) = watch::channel(0);
        state.signals.insert("app:b".into(), tx);
        state.replace_all(vec![pod("1", "a"), pod("2", "a")], by_app);
        assert!(state.synced);
        assert_eq!(state.index["app:a"].len(), 2);
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        state.apply(pod("2", "b"), by_app);
        assert_eq!(state.index["app:a"].len(), 1);
        assert_eq!(state.index["app:b"].len(), 1);
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        state.delete(&pod("2", "b"));
        assert!(!state.index.contains_key("app:b"));
        assert!(rx.has_changed().unwrap());
        assert_eq!(state.index[ALL].len(), 1);
        assert_eq!(state.objects.len(), 1);
    }
}
