//! Generic object storage: every object is kept as compact JSON bytes plus the few facts that
//! selectors, indexes and controllers read often, under one global resourceVersion counter, with
//! a bounded change history that feeds watches.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::broadcast;

use super::resources::{ResId, builtin_ids, ids};

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects. Sorting by this key
/// gives upstream's list order (by namespace, then name) and stable pagination.
pub(crate) type ObjKey = (String, String);

/// The controller owner reference of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnerRef {
    pub kind: String,
    pub name: String,
    pub uid: String,
}

/// Pod facts read on hot paths (field selectors, PDB math, scheduling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodFacts {
    pub node: String,
    pub phase: String,
    pub ready: bool,
}

/// What is indexed about every object.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub rv: u64,
    pub labels: Vec<(String, String)>,
    pub deleting: bool,
    pub controller: Option<OwnerRef>,
    pub pod: Option<PodFacts>,
}

/// One stored object.
#[derive(Debug)]
pub(crate) struct Stored {
    /// The object, serialised in its storage version.
    pub json: Bytes,
    pub meta: Meta,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

impl Stored {
    pub(crate) fn new(res: ResId, v: &Value, rv: u64) -> Stored {
        let md = &v["metadata"];
        let labels = md
            .get("labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let controller = md
            .get("ownerReferences")
            .and_then(Value::as_array)
            .and_then(|refs| {
                refs.iter()
                    .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
                    .map(|r| OwnerRef {
                        kind: str_at(r, &["kind"]).unwrap_or_default().to_string(),
                        name: str_at(r, &["name"]).unwrap_or_default().to_string(),
                        uid: str_at(r, &["uid"]).unwrap_or_default().to_string(),
                    })
            });
        let pod = (res == ids::PODS).then(|| PodFacts {
            node: str_at(v, &["spec", "nodeName"])
                .unwrap_or_default()
                .to_string(),
            phase: str_at(v, &["status", "phase"])
                .unwrap_or_default()
                .to_string(),
            ready: super::objects::condition_true(v, "Ready"),
        });
        let meta = Meta {
            namespace: str_at(md, &["namespace"]).unwrap_or_default().to_string(),
            name: str_at(md, &["name"]).unwrap_or_default().to_string(),
            uid: str_at(md, &["uid"]).unwrap_or_default().to_string(),
            rv,
            labels,
            deleting: md.get("deletionTimestamp").is_some_and(|d| !d.is_null()),
            controller,
            pod,
        };
        // Serialising a Value cannot fail (all keys are strings).
        let json = Bytes::from(serde_json::to_vec(v).unwrap_or_default());
        Stored { json, meta }
    }

    /// The object as JSON.
    pub(crate) fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    pub(crate) fn key(&self) -> ObjKey {
        (self.meta.namespace.clone(), self.meta.name.clone())
    }
}

/// The kind of a change, as watch events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One change, kept in the history and broadcast to watches.
#[derive(Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub res: ResId,
    pub kind: ChangeType,
    pub obj: Arc<Stored>,
    /// The object before a modification (for selector transitions).
    pub prev: Option<Arc<Stored>>,
}

/// All objects, indexes and the change history.
pub(crate) struct Store {
    tables: BTreeMap<ResId, BTreeMap<ObjKey, Arc<Stored>>>,
    pods_by_node: HashMap<String, BTreeSet<ObjKey>>,
    pods_by_owner: HashMap<String, BTreeSet<ObjKey>>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
    history_cap: usize,
    /// Watches may start from any resourceVersion >= this.
    oldest_rv: u64,
    tx: broadcast::Sender<Arc<Change>>,
}

impl Store {
    pub(crate) fn new(history_cap: usize) -> Store {
        let (tx, _) = broadcast::channel(16_384);
        Store {
            tables: builtin_ids().map(|r| (r, BTreeMap::new())).collect(),
            pods_by_node: HashMap::new(),
            pods_by_owner: HashMap::new(),
            rv: 1,
            history: VecDeque::new(),
            history_cap: history_cap.max(1),
            oldest_rv: 1,
            tx,
        }
    }

    /// The current (latest) resourceVersion.
    pub(crate) fn rv(&self) -> u64 {
        self.rv
    }

    pub(crate) fn oldest_rv(&self) -> u64 {
        self.oldest_rv
    }

    pub(crate) fn get(&self, res: ResId, ns: &str, name: &str) -> Option<&Arc<Stored>> {
        self.table(res).get(&(ns.to_string(), name.to_string()))
    }

    pub(crate) fn table(&self, res: ResId) -> &BTreeMap<ObjKey, Arc<Stored>> {
        static EMPTY: BTreeMap<ObjKey, Arc<Stored>> = BTreeMap::new();
        self.tables.get(&res).unwrap_or(&EMPTY)
    }

    fn table_mut(&mut self, res: ResId) -> &mut BTreeMap<ObjKey, Arc<Stored>> {
        self.tables.entry(res).or_default()
    }

    pub(crate) fn count(&self, res: ResId) -> usize {
        self.table(res).len()
    }

    /// Every resource that has a table: the built-in ones and custom ones written so far.
    pub(crate) fn resources(&self) -> Vec<ResId> {
        self.tables.keys().copied().collect()
    }

    /// Objects of `res` in namespace `ns` (all namespaces when `None`), in key order.
    pub(crate) fn list<'a>(
        &'a self,
        res: ResId,
        ns: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = &'a Arc<Stored>> + 'a> {
        match ns {
            None => Box::new(self.table(res).values()),
            Some(ns) => Box::new(
                self.table(res)
                    .range((ns.to_string(), String::new())..)
                    .take_while(move |((n, _), _)| n == ns)
                    .map(|(_, v)| v),
            ),
        }
    }

    /// Keys of pods bound to `node`.
    pub(crate) fn pods_on_node(&self, node: &str) -> Vec<ObjKey> {
        self.pods_by_node
            .get(node)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Number of pods bound to `node`.
    pub(crate) fn pod_count_on_node(&self, node: &str) -> usize {
        self.pods_by_node.get(node).map_or(0, BTreeSet::len)
    }

    /// Keys of pods whose controller has `uid`.
    pub(crate) fn pods_owned_by(&self, uid: &str) -> Vec<ObjKey> {
        self.pods_by_owner
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn index(&mut self, res: ResId, s: &Stored, add: bool) {
        if res != ids::PODS {
            return;
        }
        let key = s.key();
        let node = s
            .meta
            .pod
            .as_ref()
            .map(|p| p.node.clone())
            .unwrap_or_default();
        let owner = s.meta.controller.as_ref().map(|c| c.uid.clone());
        if add {
            if !node.is_empty() {
                self.pods_by_node
                    .entry(node)
                    .or_default()
                    .insert(key.clone());
            }
            if let Some(o) = owner {
                self.pods_by_owner.entry(o).or_default().insert(key);
            }
        } else {
            if let Some(set) = self.pods_by_node.get_mut(&node) {
                set.remove(&key);
                if set.is_empty() {
                    self.pods_by_node.remove(&node);
                }
            }
            if let Some(o) = owner
                && let Some(set) = self.pods_by_owner.get_mut(&o)
            {
                set.remove(&key);
                if set.is_empty() {
                    self.pods_by_owner.remove(&o);
                }
            }
        }
    }

    /// Inserts an object without recording a change (initial scenario load).
    pub(crate) fn load(&mut self, res: ResId, mut v: Value) -> Arc<Stored> {
        self.rv += 1;
        let rv = self.rv;
        set_rv(&mut v, rv);
        let s = Arc::new(Stored::new(res, &v, rv));
        self.index(res, &s, true);
        if let Some(old) = self.table_mut(res).insert(s.key(), s.clone()) {
            self.index(res, &old, false);
        }
        self.oldest_rv = self.rv;
        s
    }

    /// Creates or replaces an object, assigning the next resourceVersion.
    pub(crate) fn write(&mut self, res: ResId, mut v: Value) -> Arc<Stored> {
        self.rv += 1;
        let rv = self.rv;
        set_rv(&mut v, rv);
        let s = Arc::new(Stored::new(res, &v, rv));
        let prev = self.table_mut(res).insert(s.key(), s.clone());
        if let Some(old) = &prev {
            self.index(res, old, false);
        }
        self.index(res, &s, true);
        let kind = if prev.is_some() {
            ChangeType::Modified
        } else {
            ChangeType::Added
        };
        self.record(Change {
            rv,
            res,
            kind,
            obj: s.clone(),
            prev,
        });
        s
    }

    /// Removes an object; the DELETED event carries it at the deletion's resourceVersion.
    pub(crate) fn remove(&mut self, res: ResId, ns: &str, name: &str) -> Option<Arc<Stored>> {
        let old = self
            .table_mut(res)
            .remove(&(ns.to_string(), name.to_string()))?;
        self.index(res, &old, false);
        self.rv += 1;
        let rv = self.rv;
        let mut v = old.value();
        set_rv(&mut v, rv);
        let gone = Arc::new(Stored::new(res, &v, rv));
        self.record(Change {
            rv,
            res,
            kind: ChangeType::Deleted,
            obj: gone.clone(),
            prev: Some(old),
        });
        Some(gone)
    }

    fn record(&mut self, c: Change) {
        let c = Arc::new(c);
        // Nobody listening is fine.
        let _ = self.tx.send(c.clone());
        self.history.push_back(c);
        while self.history.len() > self.history_cap {
            if let Some(front) = self.history.pop_front() {
                self.oldest_rv = front.rv;
            }
        }
    }

    /// Drops the change history, as an etcd compaction does: watches from older
    /// resourceVersions then get 410 Gone.
    pub(crate) fn compact(&mut self) {
        self.history.clear();
        self.oldest_rv = self.rv;
    }

    /// A receiver for future changes.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// The objects of `res` (in namespace `ns`, all when `None`) as they were at `rv`: the
    /// current ones with every later change undone. `Err(oldest)` when the history no longer
    /// reaches back to `rv`.
    pub(crate) fn snapshot(
        &self,
        res: ResId,
        ns: Option<&str>,
        rv: u64,
    ) -> Result<BTreeMap<ObjKey, Arc<Stored>>, u64> {
        let later = self.changes_since(rv)?;
        let mut objects: BTreeMap<ObjKey, Arc<Stored>> =
            self.list(res, ns).map(|o| (o.key(), o.clone())).collect();
        let in_scope = |o: &Stored| ns.is_none_or(|n| o.meta.namespace == n);
        for change in later
            .iter()
            .rev()
            .filter(|c| c.res == res && in_scope(&c.obj))
        {
            let key = change.obj.key();
            match change.kind {
                ChangeType::Added => {
                    objects.remove(&key);
                }
                ChangeType::Modified => match &change.prev {
                    Some(prev) => {
                        objects.insert(key, prev.clone());
                    }
                    None => {
                        objects.remove(&key);
                    }
                },
                ChangeType::Deleted => {
                    objects.insert(key, change.prev.clone().unwrap_or(change.obj.clone()));
                }
            }
        }
        Ok(objects)
    }

    /// Changes after `rv`, or `Err(oldest)` when `rv` is older than the retained history.
    pub(crate) fn changes_since(&self, rv: u64) -> Result<Vec<Arc<Change>>, u64> {
        if rv < self.oldest_rv {
            return Err(self.oldest_rv + 1);
        }
        Ok(self.history.iter().filter(|c| c.rv > rv).cloned().collect())
    }
}

fn set_rv(v: &mut Value, rv: u64) {
    if let Some(md) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        md.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: &str) -> Value {
        json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":name,"namespace":"ns","uid":name,
            "labels":{"app":"web"},
            "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"rs-uid","controller":true}]},
            "spec":{"nodeName":node},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}})
    }

    #[test]
    fn write_index_history_and_compaction() {
        let mut s = Store::new(3);
        let a = s.write(ids::PODS, pod("a", "n1"));
        assert_eq!(a.meta.rv, 2);
        assert!(a.meta.pod.as_ref().unwrap().ready);
        assert_eq!(a.meta.controller.as_ref().unwrap().uid, "rs-uid");
        s.write(ids::PODS, pod("b", "n1"));
        assert_eq!(s.pods_on_node("n1").len(), 2);
        s.write(ids::PODS, pod("b", "n2"));
        assert_eq!(s.pods_on_node("n1").len(), 1);
        assert_eq!(s.pods_owned_by("rs-uid").len(), 2);
        let gone = s.remove(ids::PODS, "ns", "a").unwrap();
        assert_eq!(gone.value()["metadata"]["resourceVersion"], "5");
        assert!(s.changes_since(1).is_err(), "history holds only 3 changes");
        assert_eq!(s.changes_since(3).unwrap().len(), 2);
        // At rv 3 there were a and b, both on n1; after it b moved and a went.
        let at3 = s.snapshot(ids::PODS, Some("ns"), 3).unwrap();
        assert_eq!(at3.len(), 2);
        assert_eq!(at3[&("ns".to_string(), "b".to_string())].meta.rv, 3);
        assert_eq!(at3[&("ns".to_string(), "a".to_string())].meta.rv, 2);
        assert!(s.snapshot(ids::PODS, None, 1).is_err());
        s.compact();
        assert!(s.changes_since(4).is_err());
        assert!(s.changes_since(5).unwrap().is_empty());
        assert_eq!(s.list(ids::PODS, Some("ns")).count(), 1);
    }
}
