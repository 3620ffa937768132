//! One migration's steps in order, each recorded where the migration's progress lives, and
//! what the steps share: the clients, the scope's APIs and the watches.

use ipnet::IpNet;
use ippool_rules::cidr;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher;

use super::{Executor, MigrateError};
use crate::client::CalicoClient;
use crate::migration::events::Event;
use crate::migration::fault;
use crate::migration::mirror::Mirror;
use crate::migration::record::lock::Held;
use crate::migration::record::{Job, MigrateRecord, Record};
use crate::migration::step::Step;
use ippool_ipam::plan::Plan;

/// Where a migration's progress lives in the record: the record itself, or the migration a
/// resize is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    Migrate,
    InResize,
}

impl Slot {
    pub(super) fn get(self, record: &Record) -> Option<&MigrateRecord> {
        match (self, &record.job) {
            (Slot::Migrate, Job::Migrate(m)) => Some(m),
            (Slot::InResize, Job::Resize(r)) => r.migration.as_ref(),
            _ => None,
        }
    }

    fn get_mut(self, record: &mut Record) -> Option<&mut MigrateRecord> {
        match (self, &mut record.job) {
            (Slot::Migrate, Job::Migrate(m)) => Some(m),
            (Slot::InResize, Job::Resize(r)) => r.migration.as_mut(),
            _ => None,
        }
    }
}

/// One migration's steps, with where its progress is recorded.
pub(super) struct Migration<'a> {
    pub(super) exec: &'a Executor,
    pub(super) held: &'a Held,
    pub(super) slot: Slot,
    /// Prefix of fault points and step names in events (`to-temp/`, `back/` in a resize).
    pub(super) prefix: &'a str,
    pub(super) state: MigrateRecord,
    pub(super) plan: Option<&'a Plan>,
}

pub(super) fn parse_net(text: &str) -> Result<IpNet, MigrateError> {
    cidr::parse_lenient(text)
        .map(|n| cidr::canonical(&n))
        .map_err(|e| {
            MigrateError::Watch(format!("the record holds an unreadable CIDR {text:?}: {e}"))
        })
}

impl Migration<'_> {
    pub(super) fn calico(&self) -> CalicoClient {
        CalicoClient::new(self.exec.client.clone(), self.exec.apis)
    }

    pub(super) fn emit(&self, event: Event) {
        self.exec.progress.emit(event);
    }

    pub(super) fn plan(&self, step: Step) -> Result<&Plan, MigrateError> {
        // Steps up to moving workloads only run when prepare() planned (it plans unless they
        // are done).
        self.plan.ok_or_else(|| {
            MigrateError::Watch(format!("step {step} needs a plan, and none was made"))
        })
    }

    pub(super) async fn run(mut self) -> Result<(), MigrateError> {
        for step in Step::ALL {
            let name = format!("{}{step}", self.prefix);
            if self.state.is_done(step) {
                self.emit(Event::StepDone {
                    step: name,
                    skipped: true,
                });
                continue;
            }
            fault::at(&name);
            let kept =
                self.state.keep_old_pool && matches!(step, Step::ReleaseOld | Step::DeleteOld);
            if !kept {
                self.emit(Event::StepStarted { step: name.clone() });
                let (exec, held) = (self.exec, self.held);
                exec.ride_out(held, &name, async || match step {
                    Step::CreateNew => self.create_new().await,
                    Step::DisableOld => self.disable_old().await,
                    Step::MoveWorkloads => self.move_workloads().await,
                    Step::Verify => self.verify().await,
                    Step::ReleaseOld => self.release_old().await,
                    Step::DeleteOld => self.delete_old().await,
                })
                .await?;
            }
            let slot = self.slot;
            let updated = self
                .held
                .update(|record| {
                    if let Some(m) = slot.get_mut(record)
                        && !m.done.contains(&step)
                    {
                        m.done.push(step);
                    }
                })
                .await?;
            if let Some(m) = slot.get(&updated) {
                self.state = m.clone();
            }
            if !kept {
                self.emit(Event::StepDone {
                    step: name,
                    skipped: false,
                });
            }
        }
        Ok(())
    }

    pub(super) fn pods_api(&self) -> Api<Pod> {
        match &self.state.namespace {
            Some(ns) => Api::namespaced(self.exec.client.clone(), ns),
            None => Api::all(self.exec.client.clone()),
        }
    }

    pub(super) fn workload_api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match &self.state.namespace {
            Some(ns) => Api::namespaced(self.exec.client.clone(), ns),
            None => Api::all(self.exec.client.clone()),
        }
    }

    pub(super) fn config() -> watcher::Config {
        watcher::Config::default().page_size(500)
    }

    pub(super) async fn synced<K: kube::Resource>(
        &self,
        mirror: &Mirror<K>,
    ) -> Result<(), MigrateError> {
        mirror
            .synced(self.exec.options.timeout)
            .await
            .map_err(MigrateError::Watch)
    }
}
