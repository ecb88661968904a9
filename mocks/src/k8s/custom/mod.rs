//! Custom resources: what each established CustomResourceDefinition serves, per simulator.
//!
//! A CRD write turns its spec into a [`ResourceDef`] (leaked once per change of what it
//! serves, so resource ids stay `Copy` like the built-in ones) and records it in the cluster's
//! [`Customs`]; lookups, discovery, tables and validation then treat it like a built-in kind.

pub(crate) mod columns;
mod definition;
mod schema;

use std::collections::BTreeMap;

use serde_json::Value;

use super::resources::{ResId, ResourceDef, ServedVersion};

pub(crate) use definition::{accepted_status, check, parse};
pub(crate) use schema::admit;

/// An `additionalPrinterColumns` entry.
#[derive(Debug)]
pub(crate) struct PrinterColumn {
    pub name: String,
    pub kind: String,
    pub format: String,
    pub json_path: String,
    pub priority: i64,
}

/// What a CRD adds to a [`ResourceDef`]: schemas and printer columns per version.
#[derive(Debug)]
pub(crate) struct CustomSpec {
    /// `openAPIV3Schema` by version (absent: anything goes).
    pub schemas: BTreeMap<String, Value>,
    pub columns: BTreeMap<String, Vec<PrinterColumn>>,
}

/// The custom resources one simulator serves, by CRD name.
#[derive(Debug, Default)]
pub(crate) struct Customs {
    by_crd: BTreeMap<String, ResId>,
    /// Set while a terminating CRD's objects are being deleted (no re-entrant cleanup).
    cleaning: bool,
}

impl Customs {
    /// Serves `def` for the CRD `crd`, replacing what it served before.
    pub(crate) fn register(&mut self, crd: &str, def: ResourceDef) -> ResId {
        let id = ResId::Custom(Box::leak(Box::new(def)));
        self.by_crd.insert(crd.to_string(), id);
        id
    }

    /// Stops serving what `crd` defined; the id, to delete its objects.
    pub(crate) fn unregister(&mut self, crd: &str) -> Option<ResId> {
        self.by_crd.remove(crd)
    }

    /// The id now serving `crd`.
    pub(crate) fn get(&self, crd: &str) -> Option<ResId> {
        self.by_crd.get(crd).copied()
    }

    /// Every custom resource served.
    pub(crate) fn all(&self) -> impl Iterator<Item = (ResId, &'static ResourceDef)> + '_ {
        self.by_crd
            .values()
            .map(|id| (*id, super::resources::def(*id)))
    }

    /// The custom resource at `group`/`version`/`plural`.
    pub(crate) fn lookup(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<(ResId, &'static ServedVersion)> {
        self.all()
            .find(|(_, d)| d.group == group && d.plural == plural)
            .and_then(|(id, d)| d.version(version).map(|v| (id, v)))
    }

    /// The custom resource of `group` and `kind`.
    pub(crate) fn by_kind(&self, group: &str, kind: &str) -> Option<ResId> {
        self.all()
            .find(|(_, d)| d.group == group && d.kind == kind)
            .map(|(id, _)| id)
    }

    /// A custom resource by any name a user would type (plural, singular, kind or short
    /// name, optionally qualified with its group), case-insensitively.
    pub(crate) fn find(&self, name: &str) -> Option<ResId> {
        let lower = name.to_ascii_lowercase();
        let (base, group) = match lower.split_once('.') {
            Some((b, g)) => (b, Some(g)),
            None => (lower.as_str(), None),
        };
        self.all()
            .find(|(_, d)| {
                group.is_none_or(|g| g == d.group)
                    && (d.plural == base
                        || d.singular == base
                        || d.kind.eq_ignore_ascii_case(base)
                        || d.short_names.contains(&base))
            })
            .map(|(id, _)| id)
    }
}

/// The CustomResourceDefinition resource.
pub(crate) fn crd_resource() -> Option<ResId> {
    super::resources::by_kind("apiextensions.k8s.io", "CustomResourceDefinition")
}

/// The finalizer the apiextensions controller keeps on every CRD until its objects are gone.
pub(crate) const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

impl super::cluster::Cluster {
    /// Follows a CRD write as the apiextensions controllers do: serves what it defines, marks
    /// it accepted and established (with the cleanup finalizer); once it is being deleted,
    /// deletes its objects (their finalizers honoured) and lets it go when none is left.
    pub(crate) fn crd_changed(&mut self, new: Option<&super::store::Stored>, name: &str) {
        let Some(crd) = crd_resource() else {
            return;
        };
        let Some(new) = new else {
            // Gone (also when removed without the cleanup, e.g. a forced finalizer removal).
            if let Some(id) = self.customs.unregister(name) {
                let keys: Vec<_> = self.store.table(id).keys().cloned().collect();
                for (ns, obj) in keys {
                    self.purge(id, &ns, &obj);
                }
            }
            return;
        };
        let v = new.value();
        if new.meta.deleting {
            self.clean_up_crd(crd, name);
            return;
        }
        let Ok(def) = parse(&v) else {
            return;
        };
        let current = self.customs.get(name).map(super::resources::def);
        if current.is_none_or(|c| !same_definition(c, &def)) {
            self.customs.register(name, def);
        }
        let mut with = v.clone();
        with["status"] = accepted_status(&v, &self.now_str());
        let fins = super::cluster::finalizers(&v);
        if !fins.iter().any(|f| f == CLEANUP_FINALIZER) {
            let mut all: Vec<Value> = fins.into_iter().map(Value::String).collect();
            all.push(Value::String(CLEANUP_FINALIZER.into()));
            super::objects::set(&mut with, "metadata.finalizers", Value::Array(all));
        }
        if with != v {
            self.put(crd, with);
        }
    }

    /// `true` while the CRD serving `res` is being deleted: new objects are refused then.
    pub(crate) fn crd_terminating(&self, res: ResId) -> bool {
        let Some(crd) = crd_resource() else {
            return false;
        };
        self.customs
            .by_crd
            .iter()
            .find(|(_, id)| **id == res)
            .is_some_and(|(n, _)| self.get(crd, "", n).is_some_and(|c| c.meta.deleting))
    }

    /// A custom object went away: a terminating CRD may now be done.
    pub(crate) fn custom_deleted(&mut self, res: ResId) {
        if self.customs.cleaning {
            return;
        }
        let Some(crd) = crd_resource() else {
            return;
        };
        let name = self
            .customs
            .by_crd
            .iter()
            .find(|(_, id)| **id == res)
            .map(|(n, _)| n.clone());
        if let Some(name) = name
            && self.get(crd, "", &name).is_some_and(|c| c.meta.deleting)
        {
            self.clean_up_crd(crd, &name);
        }
    }

    fn clean_up_crd(&mut self, crd: ResId, name: &str) {
        let Some(id) = self.customs.get(name) else {
            return;
        };
        self.customs.cleaning = true;
        let keys: Vec<_> = self.store.table(id).keys().cloned().collect();
        for (ns, obj) in keys {
            let deleting = self.get(id, &ns, &obj).is_some_and(|o| o.meta.deleting);
            if !deleting {
                let _ = self.delete(
                    id,
                    &ns,
                    &obj,
                    &super::cluster::DeleteOpts::default(),
                    super::cluster::DeletedVia::Delete,
                );
            }
        }
        self.customs.cleaning = false;
        let Some(cur) = self.get(crd, "", name) else {
            return;
        };
        let mut v = cur.value();
        if self.store.count(id) > 0 {
            let cond = serde_json::json!({"type": "Terminating", "status": "True",
                "reason": "InstanceDeletionInProgress",
                "message": "CustomResource deletion is in progress"});
            if let Some(cs) = v
                .pointer_mut("/status/conditions")
                .and_then(Value::as_array_mut)
                && !cs.iter().any(|c| c["type"] == "Terminating")
            {
                cs.push(cond);
                self.put(crd, v);
            }
            return;
        }
        let left: Vec<Value> = super::cluster::finalizers(&v)
            .into_iter()
            .filter(|f| f != CLEANUP_FINALIZER)
            .map(Value::String)
            .collect();
        if left.is_empty() {
            self.purge(crd, "", name);
        } else {
            super::objects::set(&mut v, "metadata.finalizers", Value::Array(left));
            self.put(crd, v);
        }
    }
}

/// `true` when `a` serves exactly what `b` does (no need to leak a new definition).
fn same_definition(a: &ResourceDef, b: &ResourceDef) -> bool {
    format!("{a:?}") == format!("{b:?}")
}
