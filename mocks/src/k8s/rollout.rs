//! A Deployment's rolling update, as the upstream controller computes it
//! (`pkg/controller/deployment/rolling.go`): the new ReplicaSet grows while the total stays
//! within `replicas + maxSurge`, old ones shrink while at least `replicas - maxUnavailable`
//! pods stay available. Pure arithmetic over replica counts, so every step can be checked.

use serde_json::Value;

use super::objects;

/// A ReplicaSet's counts as the rollout sees them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// `spec.replicas`.
    pub(crate) spec: i64,
    /// `status.availableReplicas`.
    pub(crate) available: i64,
    /// `status.replicas`: its pods not yet gone, available or not.
    pub(crate) pods: i64,
}

/// How a Deployment replaces its pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// `RollingUpdate` with the surge and unavailability resolved against `replicas`.
    Rolling {
        /// Pods allowed above `replicas`.
        surge: i64,
        /// Pods allowed below `replicas`.
        unavailable: i64,
    },
    /// `Recreate`: every old pod goes before a new one starts.
    Recreate,
}

impl Strategy {
    /// Reads `spec.strategy` of a Deployment for `want` replicas. Defaults are 25%/25%; the
    /// surge rounds up, the unavailability down, and both zero means one unavailable (as
    /// upstream's `ResolveFenceposts`).
    pub(crate) fn of(deployment: &Value, want: i64) -> Self {
        if deployment
            .pointer("/spec/strategy/type")
            .and_then(Value::as_str)
            == Some("Recreate")
        {
            return Self::Recreate;
        }
        let field = |name: &str, round_up: bool| {
            let default = Value::String("25%".into());
            let v = deployment
                .pointer(&format!("/spec/strategy/rollingUpdate/{name}"))
                .unwrap_or(&default);
            objects::scaled_value(v, want, round_up).unwrap_or(0).max(0)
        };
        let surge = field("maxSurge", true);
        let mut unavailable = field("maxUnavailable", false).min(want);
        if surge == 0 && unavailable == 0 {
            unavailable = 1;
        }
        Self::Rolling { surge, unavailable }
    }
}

/// The `spec.replicas` the new ReplicaSet and each old one (in the order given, oldest first)
/// get in this round of the rollout towards `want`.
pub(crate) fn step(want: i64, strategy: Strategy, new: Counts, old: &[Counts]) -> (i64, Vec<i64>) {
    let old_total: i64 = old.iter().map(|o| o.spec).sum();
    match strategy {
        Strategy::Recreate => {
            // Old pods first; the new ReplicaSet starts once none is left running.
            if old_total > 0 || old.iter().any(|o| o.pods > 0) {
                (0, vec![0; old.len()])
            } else {
                (want, vec![0; old.len()])
            }
        }
        Strategy::Rolling { surge, unavailable } => {
            let mut new_spec = new.spec;
            if new_spec > want {
                new_spec = want;
            } else if new_spec < want {
                let room = (want + surge) - (new_spec + old_total);
                new_spec += room.clamp(0, want - new_spec);
            }
            let mut specs: Vec<i64> = old.iter().map(|o| o.spec).collect();
            if old_total > 0 {
                let min_available = want - unavailable;
                let all = new_spec + old_total;
                let new_unavailable = (new_spec - new.available).max(0);
                let mut budget = all - min_available - new_unavailable;
                // Unhealthy old pods go first: removing them costs no availability.
                for (spec, o) in specs.iter_mut().zip(old) {
                    if budget <= 0 {
                        break;
                    }
                    let unhealthy = (*spec - o.available).max(0).min(budget);
                    *spec -= unhealthy;
                    budget -= unhealthy;
                }
                // Then available ones, as far as availability allows.
                let available: i64 = new.available.min(new_spec)
                    + specs
                        .iter()
                        .zip(old)
                        .map(|(s, o)| o.available.min(*s))
                        .sum::<i64>();
                let mut excess = (available - min_available).max(0);
                for spec in specs.iter_mut() {
                    if excess == 0 {
                        break;
                    }
                    let cut = (*spec).min(excess);
                    *spec -= cut;
                    excess -= cut;
                }
            }
            (new_spec, specs)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn c(spec: i64, available: i64) -> Counts {
        Counts {
            spec,
            available,
            pods: available,
        }
    }

    /// Runs a rollout to its end with pods becoming available one round after they are
    /// asked for, and checks the bounds at every round.
    fn roll(want: i64, strategy: Strategy, start_old: i64) {
        let (surge, unavailable) = match strategy {
            Strategy::Rolling { surge, unavailable } => (surge, unavailable),
            Strategy::Recreate => (0, want),
        };
        let mut new = c(0, 0);
        let mut old = vec![c(start_old, start_old)];
        for round in 1..100 {
            let (n, o) = step(want, strategy, new, &old);
            assert!(
                n + o.iter().sum::<i64>() <= want + surge,
                "round {round}: {n} new + {o:?} old exceeds {want} + {surge}"
            );
            // Scaling down takes effect at once; scaling up is available a round later.
            let avail: i64 = new.available.min(n)
                + o.iter()
                    .zip(&old)
                    .map(|(s, p)| p.available.min(*s))
                    .sum::<i64>();
            assert!(
                avail >= want - unavailable,
                "round {round}: {avail} available, below {want} - {unavailable}"
            );
            let old_next: Vec<Counts> = o
                .iter()
                .zip(&old)
                .map(|(s, p)| c(*s, p.available.min(*s)))
                .collect();
            new = c(n, new.spec.min(n));
            old = old_next;
            if new.spec == want && new.available == want && old.iter().all(|o| o.spec == 0) {
                return;
            }
        }
        panic!("the rollout never finished: new {new:?}, old {old:?}");
    }

    #[test]
    fn fenceposts_resolve_like_upstream() {
        let d =
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}});
        assert_eq!(
            Strategy::of(&d, 4),
            Strategy::Rolling {
                surge: 1,
                unavailable: 0
            }
        );
        // Defaults: 25% of 10 is 3 up (surge) and 2 down (unavailable).
        assert_eq!(
            Strategy::of(&json!({"spec": {}}), 10),
            Strategy::Rolling {
                surge: 3,
                unavailable: 2
            }
        );
        let zero = json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": "0%", "maxUnavailable": 0}}}});
        assert_eq!(
            Strategy::of(&zero, 3),
            Strategy::Rolling {
                surge: 0,
                unavailable: 1
            }
        );
        let recreate = json!({"spec": {"strategy": {"type": "Recreate"}}});
        assert_eq!(Strategy::of(&recreate, 3), Strategy::Recreate);
    }

    #[test]
    fn a_surge_of_one_adds_one_pod_at_a_time() {
        let s = Strategy::Rolling {
            surge: 1,
            unavailable: 0,
        };
        // Four old pods, surge one: the new set starts at one, no old pod goes yet.
        assert_eq!(step(4, s, c(0, 0), &[c(4, 4)]), (1, vec![4]));
        // Once it is available, one old pod goes, and the next new one can start.
        assert_eq!(step(4, s, c(1, 1), &[c(4, 4)]), (1, vec![3]));
        assert_eq!(step(4, s, c(1, 1), &[c(3, 3)]), (2, vec![3]));
        roll(4, s, 4);
    }

    #[test]
    fn unavailability_lets_old_pods_go_before_new_ones_are_ready() {
        let s = Strategy::Rolling {
            surge: 0,
            unavailable: 2,
        };
        assert_eq!(step(4, s, c(0, 0), &[c(4, 4)]), (0, vec![2]));
        assert_eq!(step(4, s, c(0, 0), &[c(2, 2)]), (2, vec![2]));
        roll(4, s, 4);
        roll(10, Strategy::of(&json!({"spec": {}}), 10), 10);
    }

    #[test]
    fn unhealthy_old_pods_go_first_and_scale_changes_apply() {
        let s = Strategy::Rolling {
            surge: 1,
            unavailable: 0,
        };
        // Two of the old pods are not available: one goes although availability is already
        // short, because removing it costs none.
        let one_each = Strategy::Rolling {
            surge: 1,
            unavailable: 1,
        };
        assert_eq!(step(4, one_each, c(0, 0), &[c(4, 2)]), (1, vec![3]));
        // No rollout: the set just follows `replicas`.
        assert_eq!(step(6, s, c(4, 4), &[]), (6, vec![]));
        assert_eq!(step(3, s, c(4, 4), &[]), (3, vec![]));
    }

    #[test]
    fn recreate_stops_every_old_pod_first() {
        assert_eq!(
            step(3, Strategy::Recreate, c(0, 0), &[c(3, 3)]),
            (0, vec![0])
        );
        assert_eq!(
            step(3, Strategy::Recreate, c(0, 0), &[c(0, 1)]),
            (0, vec![0])
        );
        assert_eq!(
            step(3, Strategy::Recreate, c(0, 0), &[c(0, 0)]),
            (3, vec![0])
        );
    }
}
