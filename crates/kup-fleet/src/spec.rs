//! The fleet spec: members and the strategy that orders their upgrades (stages of groups),
//! as written in YAML or JSON (camelCase, CRD-friendly), and its validation into a [`Fleet`].
//!
//! ```yaml
//! members:
//!   - name: dev-1
//!     labels: { env: dev }
//!     provider: eks
//!     region: us-west-2
//!     cluster: dev-1
//! strategy:
//!   stages:
//!     - name: dev
//!       groups: [{ name: all-dev, selector: { matchLabels: { env: dev } } }]
//!       maxConcurrency: "25%"
//!       soak: 2h
//!     - name: prod
//!       approval: true
//!       errorBudget: { maxFailed: 1 }
//!       groups: [{ name: eu, clusters: [prod-eu-1, prod-eu-2] }]
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result, SpecProblem};

/// The longest soak a stage may have (GKE rollout sequencing's limit).
pub const MAX_SOAK: Duration = Duration::from_secs(30 * 24 * 3600);

/// A fleet: its member clusters and the order they are upgraded in.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetSpec {
    /// The clusters.
    pub members: Vec<Member>,
    /// Stages of groups, in order.
    #[serde(default)]
    pub strategy: Strategy,
}

/// One member cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// Its name, unique in the fleet.
    pub name: String,
    /// Labels group selectors match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// How to reach it: the keys of a kup.yaml cluster entry (provider, kubeconfig, context,
    /// region, cluster, endpoint_url ...), interpreted by a [`crate::Connector`].
    #[serde(flatten)]
    pub connection: BTreeMap<String, serde_json::Value>,
}

/// The order of the upgrades.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Strategy {
    /// Stages, run one after the other.
    pub stages: Vec<Stage>,
}

/// A stage: groups of clusters upgraded together, at most `maxConcurrency` at once.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    /// Its name, unique in the strategy (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Its groups.
    pub groups: Vec<Group>,
    /// How many of the stage's clusters upgrade at once: `"3"` or `"25%"` of the stage's
    /// clusters (rounded down, at least 1). Default `"1"`.
    #[serde(default)]
    pub max_concurrency: Concurrency,
    /// How long to wait after the stage completed before the next starts: `"30m"`, `"2h"`,
    /// `"7d"` (units s, m, h, d; at most 30d).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<SpecDuration>,
    /// Whether a person must approve before the stage starts.
    #[serde(default)]
    pub approval: bool,
    /// How many failed clusters the stage tolerates before the fleet run halts (default:
    /// none).
    #[serde(default)]
    pub error_budget: ErrorBudget,
}

/// How many failures a stage tolerates. Exceeding either limit halts the fleet run; with
/// neither set, any failure halts it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBudget {
    /// Halt when more than this many clusters of the stage failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed: Option<u32>,
    /// Halt when more than this percentage (0-100) of the stage's clusters failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed_percent: Option<u32>,
}

impl ErrorBudget {
    /// Whether `failed` failures out of `total` clusters exceed the budget.
    pub fn exceeded(&self, failed: usize, total: usize) -> bool {
        if self.max_failed.is_none() && self.max_failed_percent.is_none() {
            return failed > 0;
        }
        let over_count = self.max_failed.is_some_and(|n| failed > n as usize);
        let over_percent = self
            .max_failed_percent
            .is_some_and(|p| failed * 100 > p as usize * total);
        over_count || over_percent
    }

    /// The budget in words (`at most 1 failed cluster`, `none`).
    pub fn describe(&self) -> String {
        match (self.max_failed, self.max_failed_percent) {
            (None, None) => "no failures allowed".into(),
            (Some(n), None) => format!("at most {n} failed"),
            (None, Some(p)) => format!("at most {p}% failed"),
            (Some(n), Some(p)) => format!("at most {n} and at most {p}% failed"),
        }
    }
}

/// A group: clusters listed by name and/or chosen by a label selector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// Its name, unique in its stage.
    pub name: String,
    /// Members by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<String>,
    /// Members by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// A Kubernetes-style label selector; every part must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must have these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Expressions that must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One selector expression.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// The label.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    #[schemars(extend("enum" = ["In", "NotIn", "Exists", "DoesNotExist"]))]
    pub operator: String,
    /// The values (`In`/`NotIn`: at least one; `Exists`/`DoesNotExist`: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A selector operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// The label's value is one of the values.
    In,
    /// The label is absent or its value is none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl Operator {
    /// Parses `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "In" => Self::In,
            "NotIn" => Self::NotIn,
            "Exists" => Self::Exists,
            "DoesNotExist" => Self::DoesNotExist,
            _ => return None,
        })
    }
}

impl LabelSelector {
    /// Whether `labels` match (call on a validated selector; unknown operators never match).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| {
                let value = labels.get(&e.key);
                match Operator::parse(&e.operator) {
                    Some(Operator::In) => value.is_some_and(|v| e.values.contains(v)),
                    Some(Operator::NotIn) => !value.is_some_and(|v| e.values.contains(v)),
                    Some(Operator::Exists) => value.is_some(),
                    Some(Operator::DoesNotExist) => value.is_none(),
                    None => false,
                }
            })
    }
}

/// A stage's concurrency as written: `"3"` or `"25%"` (a bare YAML number is read too).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(transparent)]
#[serde(transparent)]
pub struct Concurrency(pub String);

impl Default for Concurrency {
    fn default() -> Self {
        Self("1".into())
    }
}

impl<'de> Deserialize<'de> for Concurrency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u64),
        }
        Ok(Self(match Raw::deserialize(d)? {
            Raw::Text(s) => s,
            Raw::Number(n) => n.to_string(),
        }))
    }
}

/// A parsed concurrency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConcurrencyLimit {
    /// At most this many clusters.
    Count(u32),
    /// At most this percentage of the stage's clusters (rounded down, at least 1).
    Percent(u32),
}

impl ConcurrencyLimit {
    /// How many of `total` clusters may run at once (at least 1).
    pub fn resolve(self, total: usize) -> usize {
        match self {
            Self::Count(n) => n as usize,
            Self::Percent(p) => total * p as usize / 100,
        }
        .max(1)
    }
}

impl Concurrency {
    /// Parses `"3"` (at least 1) or `"25%"` (1-100).
    pub fn parse(&self) -> Result<ConcurrencyLimit, String> {
        let s = self.0.trim();
        let accepted = "accepted: a whole number of clusters of at least 1 (\"3\") or a percentage \
                        of the stage's clusters from 1% to 100% (\"25%\")";
        if let Some(p) = s.strip_suffix('%') {
            match p.trim().parse::<u32>() {
                Ok(p) if (1..=100).contains(&p) => Ok(ConcurrencyLimit::Percent(p)),
                _ => Err(format!(
                    "{:?} is not a valid percentage; {accepted}",
                    self.0
                )),
            }
        } else {
            match s.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(ConcurrencyLimit::Count(n)),
                _ => Err(format!(
                    "{:?} is not a valid concurrency; {accepted}",
                    self.0
                )),
            }
        }
    }
}

/// A duration as written: a sequence of numbers with units `s`, `m`, `h`, `d` (`"90s"`,
/// `"1h30m"`, `"7d"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transparent)]
#[serde(transparent)]
pub struct SpecDuration(pub String);

impl SpecDuration {
    /// Parses the duration.
    pub fn parse(&self) -> Result<Duration, String> {
        parse_duration(&self.0)
    }
}

impl fmt::Display for SpecDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses `"30m"`, `"2h"`, `"7d"`, `"1h30m"` (units s, m, h, d).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{text:?} is not a duration; accepted: numbers with units s, m, h, d such as \"90s\", \
             \"30m\", \"2h\", \"1h30m\", \"7d\""
        )
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// A validated fleet: every member placed in exactly one group of one stage.
#[derive(Clone, Debug, PartialEq)]
pub struct Fleet {
    /// The spec it came from.
    pub spec: FleetSpec,
    /// The stages, in order.
    pub stages: Vec<FleetStage>,
}

/// A validated stage.
#[derive(Clone, Debug, PartialEq)]
pub struct FleetStage {
    /// Its name.
    pub name: String,
    /// Its clusters in upgrade order (group order, then the order a group lists or the
    /// members' order for selected ones), each with its group.
    pub clusters: Vec<(String, String)>,
    /// How many run at once.
    pub max_concurrency: usize,
    /// The wait after it completes.
    pub soak: Option<Duration>,
    /// Whether it needs approval before it starts.
    pub approval: bool,
    /// Its failure budget.
    pub error_budget: ErrorBudget,
}

impl Fleet {
    /// The member named `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.spec.members.iter().find(|m| m.name == name)
    }

    /// The stage and group of cluster `name`.
    pub fn placement(&self, name: &str) -> Option<(&str, &str)> {
        self.stages.iter().find_map(|s| {
            s.clusters
                .iter()
                .find(|(c, _)| c == name)
                .map(|(_, g)| (s.name.as_str(), g.as_str()))
        })
    }

    /// The stage named `name`.
    pub fn stage(&self, name: &str) -> Option<&FleetStage> {
        self.stages.iter().find(|s| s.name == name)
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

const NAME_RULE: &str = "accepted: 1-63 letters, digits, '-', '_' or '.', not starting with '.'";

impl FleetSpec {
    /// Parses a spec from YAML or JSON text with `parse` (the caller's deserialiser), then
    /// validates it. A convenience for JSON: [`FleetSpec::from_json`].
    pub fn from_json(text: &str) -> Result<Fleet> {
        let spec: FleetSpec =
            serde_json::from_str(text).map_err(|e| Error::spec("(document)", e.to_string()))?;
        spec.validate()
    }

    /// Checks everything before anything runs: unique names, every named cluster exists,
    /// every member in exactly one group, concurrency, soak and budgets well formed. Every
    /// problem found is reported, each with its field path.
    pub fn validate(&self) -> Result<Fleet> {
        let mut problems = Vec::new();
        let mut problem = |path: String, message: String| {
            problems.push(SpecProblem { path, message });
        };

        if self.members.is_empty() {
            problem(
                "members".into(),
                "empty; list at least one member cluster".into(),
            );
        }
        let mut names = BTreeSet::new();
        for (i, m) in self.members.iter().enumerate() {
            if !valid_name(&m.name) {
                problem(
                    format!("members[{i}].name"),
                    format!("{:?} is not a valid cluster name; {NAME_RULE}", m.name),
                );
            } else if !names.insert(m.name.as_str()) {
                problem(
                    format!("members[{i}].name"),
                    format!("{:?} is listed twice; member names must be unique", m.name),
                );
            }
        }

        if self.strategy.stages.is_empty() {
            problem(
                "strategy.stages".into(),
                "empty; give at least one stage".into(),
            );
        }
        // Where each member landed: the group paths that claim it.
        let mut claims: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let mut stages = Vec::new();
        let mut stage_names = BTreeSet::new();
        for (si, stage) in self.strategy.stages.iter().enumerate() {
            let sp = format!("strategy.stages[{si}]");
            if !valid_name(&stage.name) {
                problem(
                    format!("{sp}.name"),
                    format!("{:?} is not a valid stage name; {NAME_RULE}", stage.name),
                );
            } else if !stage_names.insert(stage.name.as_str()) {
                problem(
                    format!("{sp}.name"),
                    format!("{:?} is used twice; stage names must be unique", stage.name),
                );
            }
            if stage.groups.is_empty() {
                problem(
                    format!("{sp}.groups"),
                    "empty; give the stage at least one group".into(),
                );
            }
            let limit = stage.max_concurrency.parse().unwrap_or_else(|e| {
                problem(format!("{sp}.maxConcurrency"), e);
                ConcurrencyLimit::Count(1)
            });
            let soak = match &stage.soak {
                None => None,
                Some(d) => match d.parse() {
                    Ok(d) if d > MAX_SOAK => {
                        problem(
                            format!("{sp}.soak"),
                            format!("{:?} is longer than the 30d a soak may last", d),
                        );
                        None
                    }
                    Ok(d) => Some(d),
                    Err(e) => {
                        problem(format!("{sp}.soak"), e);
                        None
                    }
                },
            };
            if let Some(p) = stage.error_budget.max_failed_percent
                && p > 100
            {
                problem(
                    format!("{sp}.errorBudget.maxFailedPercent"),
                    format!("{p} is not a percentage; accepted: 0 to 100"),
                );
            }
            let mut clusters: Vec<(String, String)> = Vec::new();
            let mut group_names = BTreeSet::new();
            for (gi, group) in stage.groups.iter().enumerate() {
                let gp = format!("{sp}.groups[{gi}]");
                if !valid_name(&group.name) {
                    problem(
                        format!("{gp}.name"),
                        format!("{:?} is not a valid group name; {NAME_RULE}", group.name),
                    );
                } else if !group_names.insert(group.name.as_str()) {
                    problem(
                        format!("{gp}.name"),
                        format!(
                            "{:?} is used twice in stage {:?}; group names must be unique in a stage",
                            group.name, stage.name
                        ),
                    );
                }
                let mut members: Vec<&str> = Vec::new();
                for (ci, c) in group.clusters.iter().enumerate() {
                    if !names.contains(c.as_str()) {
                        problem(
                            format!("{gp}.clusters[{ci}]"),
                            format!(
                                "{c:?} is not a member; accepted: one of {}",
                                names.iter().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        );
                    } else if members.contains(&c.as_str()) {
                        problem(
                            format!("{gp}.clusters[{ci}]"),
                            format!("{c:?} is listed twice in this group"),
                        );
                    } else {
                        members.push(c);
                    }
                }
                if let Some(sel) = &group.selector {
                    let selp = format!("{gp}.selector");
                    let mut sound = true;
                    for (ei, e) in sel.match_expressions.iter().enumerate() {
                        let ep = format!("{selp}.matchExpressions[{ei}]");
                        if e.key.is_empty() {
                            sound = false;
                            problem(format!("{ep}.key"), "empty; name a label".into());
                        }
                        match Operator::parse(&e.operator) {
                            None => {
                                sound = false;
                                problem(
                                    format!("{ep}.operator"),
                                    format!(
                                        "{:?} is not an operator; accepted: In, NotIn, Exists, \
                                         DoesNotExist",
                                        e.operator
                                    ),
                                );
                            }
                            Some(Operator::In | Operator::NotIn) if e.values.is_empty() => {
                                sound = false;
                                problem(
                                    format!("{ep}.values"),
                                    format!("empty; {} needs at least one value", e.operator),
                                );
                            }
                            Some(Operator::Exists | Operator::DoesNotExist)
                                if !e.values.is_empty() =>
                            {
                                sound = false;
                                problem(
                                    format!("{ep}.values"),
                                    format!("must be empty for {}", e.operator),
                                );
                            }
                            Some(_) => {}
                        }
                    }
                    if sel.match_labels.is_empty() && sel.match_expressions.is_empty() {
                        sound = false;
                        problem(
                            selp.clone(),
                            "empty; an empty selector would select every member, give \
                             matchLabels or matchExpressions"
                                .into(),
                        );
                    }
                    if sound {
                        for m in &self.members {
                            if sel.matches(&m.labels) && !members.contains(&m.name.as_str()) {
                                members.push(&m.name);
                            }
                        }
                    }
                }
                if group.clusters.is_empty() && group.selector.is_none() {
                    problem(
                        gp.clone(),
                        "names no cluster; give clusters, a selector, or both".into(),
                    );
                } else if members.is_empty() {
                    problem(
                        gp.clone(),
                        "matches no member; a group must name or select at least one".into(),
                    );
                }
                for m in members {
                    claims.entry(m).or_default().push(gp.clone());
                    clusters.push((m.to_string(), group.name.clone()));
                }
            }
            let total = clusters.len();
            stages.push(FleetStage {
                name: stage.name.clone(),
                max_concurrency: limit.resolve(total),
                clusters,
                soak,
                approval: stage.approval,
                error_budget: stage.error_budget.clone(),
            });
        }
        for (m, paths) in &claims {
            if paths.len() > 1 {
                problem(
                    "strategy".into(),
                    format!(
                        "member {m:?} is in more than one group ({}); each member must be in \
                         exactly one",
                        paths.join(", ")
                    ),
                );
            }
        }
        if !self.strategy.stages.is_empty() {
            let missing: Vec<&str> = names
                .iter()
                .filter(|n| !claims.contains_key(*n))
                .copied()
                .collect();
            if !missing.is_empty() {
                problem(
                    "strategy".into(),
                    format!(
                        "members in no group: {}; every member must be in exactly one group, \
                         or the fleet run would skip it",
                        missing.join(", ")
                    ),
                );
            }
        }
        if problems.is_empty() {
            Ok(Fleet {
                spec: self.clone(),
                stages,
            })
        } else {
            Err(Error::InvalidSpec(problems))
        }
    }
}
