//! Which node pool a node belongs to, from `NodePool::node_selector` or `NodePool::nodes`.

use std::collections::BTreeMap;

use kup_core::NodePool;

use super::selector::SelectorString;
use crate::error::Result;

/// Matches nodes to pools; the first pool that claims a node wins.
#[derive(Clone, Debug, Default)]
pub(crate) struct PoolMatcher {
    pools: Vec<(String, Option<SelectorString>, Vec<String>)>,
}

impl PoolMatcher {
    /// Parses every pool's selector (an error names the pool's field).
    pub(crate) fn new<'a>(pools: impl IntoIterator<Item = &'a NodePool>) -> Result<Self> {
        let mut out = Vec::new();
        for pool in pools {
            let selector = pool
                .node_selector
                .as_deref()
                .map(|s| SelectorString::parse(&format!("pools[{}].node_selector", pool.name), s))
                .transpose()?;
            out.push((pool.name.clone(), selector, pool.nodes.clone()));
        }
        Ok(Self { pools: out })
    }

    /// True when no pool is known.
    pub(crate) fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }

    /// The pool of the node named `name` with `labels`.
    pub(crate) fn pool_of(&self, name: &str, labels: &BTreeMap<String, String>) -> Option<&str> {
        self.pools.iter().find_map(|(pool, selector, nodes)| {
            let claimed = nodes.iter().any(|n| n == name)
                || selector.as_ref().is_some_and(|s| s.matches(labels));
            claimed.then_some(pool.as_str())
        })
    }
}
