//! What a request is answered from: the cluster context (and whether it is complete), the
//! exemptions, and the metrics that record the answers.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;

use ippool_cluster::view::ClusterView;
use ippool_ipam::capacity::capacity;
use ippool_ipam::snapshot::Snapshot;
use ippool_ipam::usage::block_uses;
use ippool_rules::context::ClusterContext;
use k8s_openapi::api::authentication::v1::UserInfo;

use crate::metrics::{Metrics, PoolRoom};

/// The service account Calico's API server writes `crd.projectcalico.org/v1` objects as, for
/// every `projectcalico.org/v3` request it serves. Exempting it would exempt all v3 writes. Its
/// ServiceAccount is `calico-apiserver` in namespace `calico-apiserver` (Calico v3.31.0's
/// `manifests/apiserver.yaml`, the one `kubectl-ippool/tests/cluster/calico_apiserver.rs` runs).
pub const CALICO_API_SERVER_USER: &str = "system:serviceaccount:calico-apiserver:calico-apiserver";

/// Where verdicts get their view of the cluster.
pub trait ContextSource: Send + Sync {
    /// True once the pools and blocks are completely listed.
    fn has_synced(&self) -> bool;
    /// The current context; before sync its pools and blocks are `None`.
    fn context(&self) -> Arc<ClusterContext>;
    /// Pools and blocks held, for metrics.
    fn counts(&self) -> (usize, usize);
    /// IPAMConfig's maxBlocksPerHost (0: no limit), for metrics.
    fn max_blocks_per_host(&self) -> u64;
}

impl ContextSource for ClusterView {
    fn has_synced(&self) -> bool {
        ClusterView::has_synced(self)
    }
    fn context(&self) -> Arc<ClusterContext> {
        ClusterView::context(self)
    }
    fn counts(&self) -> (usize, usize) {
        ClusterView::counts(self)
    }
    fn max_blocks_per_host(&self) -> u64 {
        ClusterView::max_blocks_per_host(self)
    }
}

/// A context that does not change, for tests, fuzzing and load generation without a cluster.
#[derive(Debug, Clone)]
pub struct FixedContext {
    context: Arc<ClusterContext>,
    synced: bool,
}

impl FixedContext {
    /// A synced source serving `context`.
    pub fn synced(context: ClusterContext) -> Self {
        FixedContext {
            context: Arc::new(context),
            synced: true,
        }
    }

    /// A source whose watches have not listed yet: pools and blocks are withheld.
    pub fn not_synced(mut context: ClusterContext) -> Self {
        context.pools = None;
        context.blocks = None;
        FixedContext {
            context: Arc::new(context),
            synced: false,
        }
    }
}

impl ContextSource for FixedContext {
    fn has_synced(&self) -> bool {
        self.synced
    }
    fn context(&self) -> Arc<ClusterContext> {
        Arc::clone(&self.context)
    }
    fn counts(&self) -> (usize, usize) {
        (
            self.context.pools.as_ref().map_or(0, Vec::len),
            self.context.blocks.as_ref().map_or(0, Vec::len),
        )
    }
    fn max_blocks_per_host(&self) -> u64 {
        0
    }
}

/// One `--exempt` value: a user name, or `group:NAME`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exemption {
    User(String),
    Group(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "--exempt {0:?}: give a user name (e.g. system:serviceaccount:tigera-operator:tigera-operator) or group:NAME"
)]
pub struct ExemptionError(String);

impl FromStr for Exemption {
    type Err = ExemptionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let exemption = match s.strip_prefix("group:") {
            Some(group) => Exemption::Group(group.to_owned()),
            None => Exemption::User(s.to_owned()),
        };
        match &exemption {
            Exemption::User(name) | Exemption::Group(name) if name.trim().is_empty() => {
                Err(ExemptionError(s.to_owned()))
            }
            _ => Ok(exemption),
        }
    }
}

impl std::fmt::Display for Exemption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exemption::User(user) => write!(f, "user {user}"),
            Exemption::Group(group) => write!(f, "group {group}"),
        }
    }
}

/// Users and groups whose requests are allowed whatever the rules find (the findings become
/// warnings). Empty unless configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exemptions {
    users: BTreeSet<String>,
    groups: BTreeSet<String>,
}

impl Exemptions {
    pub fn new(list: impl IntoIterator<Item = Exemption>) -> Self {
        let mut out = Exemptions::default();
        for exemption in list {
            match exemption {
                Exemption::User(user) => out.users.insert(user),
                Exemption::Group(group) => out.groups.insert(group),
            };
        }
        out
    }

    /// The exemption that covers the requester, if any.
    pub fn matching(&self, user: &UserInfo) -> Option<Exemption> {
        if let Some(name) = user.username.as_deref()
            && self.users.contains(name)
        {
            return Some(Exemption::User(name.to_owned()));
        }
        user.groups
            .iter()
            .flatten()
            .find(|g| self.groups.contains(g.as_str()))
            .map(|g| Exemption::Group(g.clone()))
    }

    /// Whether requests Calico's API server makes on behalf of v3 clients are exempt (worth a
    /// loud warning at start-up: every projectcalico.org/v3 write would skip the rules).
    pub fn covers_calico_api_server(&self) -> bool {
        self.users.contains(CALICO_API_SERVER_USER)
            || self
                .groups
                .contains("system:serviceaccounts:calico-apiserver")
            || self.groups.contains("system:serviceaccounts")
            || self.groups.contains("system:authenticated")
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty()
    }
}

/// Everything a request handler reads.
pub struct AppState {
    pub view: Arc<dyn ContextSource>,
    pub exemptions: Exemptions,
    pub metrics: Arc<Metrics>,
    /// Set when the process was asked to stop: it still answers reviews, but reports itself
    /// not ready, so that it leaves the Service's endpoints before it stops listening.
    draining: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("synced", &self.view.has_synced())
            .field("exemptions", &self.exemptions)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(view: Arc<dyn ContextSource>, exemptions: Exemptions) -> Self {
        AppState {
            view,
            exemptions,
            metrics: Arc::new(Metrics::new()),
            draining: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Why `/readyz` fails now, if it does.
    pub fn not_ready(&self) -> Option<&'static str> {
        if self.draining.load(std::sync::atomic::Ordering::Relaxed) {
            Some("not ready: shutting down (reviews are answered until the shutdown delay ends)")
        } else if !self.view.has_synced() {
            Some("not ready: the IP pool and IPAM block watches have not finished listing")
        } else {
            None
        }
    }

    /// From now on /readyz answers 503; reviews are still answered.
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Brings the cache gauges and the pools' room up to date (called when metrics are scraped).
    pub fn refresh_view_metrics(&self) {
        let (pools, blocks) = self.view.counts();
        let synced = self.view.has_synced();
        self.metrics.set_view(synced, pools, blocks);
        if !synced {
            return;
        }
        let context = self.view.context();
        let snapshot = Snapshot {
            pools: context.pools.clone().unwrap_or_default(),
            blocks: context.blocks.clone().unwrap_or_default(),
            ..Snapshot::default()
        };
        // The view holds no pods: it counts no leaks (calico-kube-controllers exports its GC candidates).
        let limit = self.view.max_blocks_per_host();
        let room: Vec<PoolRoom> = capacity(&snapshot, &[], limit, None)
            .into_iter()
            .map(|p| PoolRoom {
                nodes_at_block_limit: p.nodes.iter().filter(|n| n.at_block_limit).count() as i64,
                pool: p.pool,
                blocks_claimable: i64::try_from(p.blocks_claimable).unwrap_or(i64::MAX),
                addresses_stranded: i64::try_from(p.addresses_stranded).unwrap_or(i64::MAX),
            })
            .collect();
        let uses = block_uses(&snapshot);
        let mismatch = uses.iter().filter(|u| u.size_mismatch()).count();
        let without_pool = uses.iter().filter(|u| u.pool.is_none()).count();
        self.metrics.set_room(&room, mismatch, without_pool);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            username: Some(name.to_owned()),
            groups: Some(groups.iter().map(|g| g.to_string()).collect()),
            ..UserInfo::default()
        }
    }

    #[test]
    fn exemptions_match_users_and_groups() {
        let exemptions = Exemptions::new([
            "system:serviceaccount:tigera-operator:tigera-operator"
                .parse()
                .unwrap(),
            "group:gitops-admins".parse().unwrap(),
        ]);
        assert_eq!(
            exemptions.matching(&user(
                "system:serviceaccount:tigera-operator:tigera-operator",
                &[]
            )),
            Some(Exemption::User(
                "system:serviceaccount:tigera-operator:tigera-operator".to_owned()
            ))
        );
        assert_eq!(
            exemptions.matching(&user("alice", &["system:authenticated", "gitops-admins"])),
            Some(Exemption::Group("gitops-admins".to_owned()))
        );
        assert_eq!(
            exemptions.matching(&user("bob", &["system:authenticated"])),
            None
        );
        assert_eq!(exemptions.matching(&UserInfo::default()), None);
    }

    #[test]
    fn calico_api_server_is_not_exempt_by_default() {
        assert!(!Exemptions::default().covers_calico_api_server());
        assert_eq!(
            Exemptions::default()
                .matching(&user(CALICO_API_SERVER_USER, &["system:serviceaccounts"])),
            None
        );
        let wide = Exemptions::new(["group:system:serviceaccounts".parse().unwrap()]);
        assert!(wide.covers_calico_api_server());
        let exact = Exemptions::new([CALICO_API_SERVER_USER.parse().unwrap()]);
        assert!(exact.covers_calico_api_server());
        assert_eq!(
            CALICO_API_SERVER_USER,
            "system:serviceaccount:calico-apiserver:calico-apiserver"
        );
    }

    #[test]
    fn empty_exemptions_are_refused() {
        assert!("".parse::<Exemption>().is_err());
        assert!("group:".parse::<Exemption>().is_err());
        let err = "group: ".parse::<Exemption>().unwrap_err();
        assert!(err.to_string().contains("group:NAME"));
    }
}
