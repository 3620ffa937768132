//! Least privilege: the webhook's ServiceAccount may read pools, blocks and the IPAM configuration
//! cluster-wide, and two named ConfigMaps in kube-system, nothing else.

use ippool_cluster::discovery::{KUBE_PROXY_CONFIG, KUBE_SYSTEM, KUBEADM_CONFIG};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

use crate::NAME;
use crate::objects::{meta, strings};

pub(crate) fn service_account(ns: &str) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(NAME, Some(ns)),
        // The webhook uses its token for the watches; nothing else in the pod needs one.
        automount_service_account_token: Some(true),
        ..ServiceAccount::default()
    }
}

/// Read-only access to exactly what the verdicts depend on.
pub(crate) fn cluster_role() -> ClusterRole {
    ClusterRole {
        metadata: meta(NAME, None),
        rules: Some(vec![
            PolicyRule {
                api_groups: Some(strings(&["crd.projectcalico.org"])),
                resources: Some(strings(&["ippools", "ipamblocks", "ipamconfigs"])),
                verbs: strings(&["get", "list", "watch"]),
                ..PolicyRule::default()
            },
            PolicyRule {
                api_groups: Some(strings(&["projectcalico.org"])),
                resources: Some(strings(&["ippools"])),
                verbs: strings(&["get", "list", "watch"]),
                ..PolicyRule::default()
            },
        ]),
        ..ClusterRole::default()
    }
}

fn subject(ns: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".to_owned(),
        name: NAME.to_owned(),
        namespace: Some(ns.to_owned()),
        ..Subject::default()
    }
}

pub(crate) fn cluster_role_binding(ns: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(NAME, None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: NAME.to_owned(),
        },
        subjects: Some(vec![subject(ns)]),
    }
}

/// CIDR discovery reads two ConfigMaps in kube-system, by name, and nothing else there.
pub(crate) fn discovery_role() -> Role {
    Role {
        metadata: meta(&format!("{NAME}-cidr-discovery"), Some(KUBE_SYSTEM)),
        rules: Some(vec![PolicyRule {
            api_groups: Some(strings(&[""])),
            resources: Some(strings(&["configmaps"])),
            resource_names: Some(strings(&[KUBEADM_CONFIG, KUBE_PROXY_CONFIG])),
            verbs: strings(&["get"]),
            ..PolicyRule::default()
        }]),
    }
}

pub(crate) fn discovery_role_binding(ns: &str) -> RoleBinding {
    RoleBinding {
        metadata: meta(&format!("{NAME}-cidr-discovery"), Some(KUBE_SYSTEM)),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "Role".to_owned(),
            name: format!("{NAME}-cidr-discovery"),
        },
        subjects: Some(vec![subject(ns)]),
    }
}
