//! The safety signals' state machine as a pure function of counts: which
//! groups an adverse event raises a signal in, and which signals it clears
//! (no longer meeting the criteria, or explained by a more specific group's
//! signal). The fold loads the counts, asks, and records each step
//! ([`crate::fold`]); the rules are tested here without sled or NATS.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::{
    disproportionality::{Criteria, Table},
    explained_by_signalled,
    findings::{DIMENSIONS, Dimension, GroupCount},
};

/// A group of the clinic: what it groups by, and its name (a lot number).
pub type Group = (Dimension, String);

/// One step of the state machine.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalStep {
    /// Raise (or raise again) the signal of the kind in the group.
    Raise {
        /// The group.
        group: Group,
        /// Its table over the window, against the rest of the clinic.
        table: Table,
    },
    /// Clear the group's signal, saying why.
    Clear {
        /// The group.
        group: Group,
        /// Its table over the window, against the rest of the clinic.
        table: Table,
        /// No longer meets the criteria, or explained by which signal.
        reason: String,
    },
}

/// What an adverse event of `kind` decides. `candidates`: the groups of the
/// injection it is counted after, from the most specific to the broadest
/// (the clinic's baseline left out), each with its counts as they stand
/// with this event; `active`: the clinic's active signals of that kind,
/// each with its group's counts; `whole`: the clinic's baseline counts;
/// `from`: the first day of the rolling window.
///
/// A group whose events an active signal holds is explained by it, not a
/// signal, when that signal is of a more specific dimension (a vial before
/// its lot, a lot before the practitioners who used it), or of the same one
/// with more events, or as many and a stronger disproportion (IC025): of
/// two lots given to the same patients, the one that holds the cluster
/// more tightly. A signal raised clears the active signals it explains.
pub fn signal_steps(
    kind: &str,
    criteria: &Criteria,
    from: i64,
    whole: &GroupCount,
    active: &[(Group, GroupCount)],
    candidates: &[(Group, GroupCount)],
) -> Vec<SignalStep> {
    let rank = |dimension: Dimension| DIMENSIONS.iter().position(|d| *d == dimension);
    let explains = |(by, by_strength): (Dimension, (usize, f64)),
                    (of, of_strength): (Dimension, (usize, f64))| {
        rank(by) < rank(of) || (rank(by) == rank(of) && by_strength >= of_strength)
    };
    let strength = |events: &[Uuid], table: &Table| (events.len(), table.measures().ic025);
    let window = |count: &GroupCount| {
        (
            count.recent_events(kind, from),
            count.in_window_against_rest(whole, kind, from),
        )
    };
    // Which groups are signalled as this event is judged: as the counts
    // say, then as the steps taken so far change it.
    let mut signalled: BTreeSet<&Group> = candidates
        .iter()
        .chain(active)
        .filter(|(_, count)| count.signalled.contains(kind))
        .map(|(group, _)| group)
        .collect();
    let counts: BTreeMap<&Group, &GroupCount> = active.iter().map(|(g, c)| (g, c)).collect();
    let mut standing: Vec<(Group, Vec<Uuid>, (usize, f64))> = active
        .iter()
        .map(|(group, count)| {
            let (events, table) = window(count);
            let strength = strength(&events, &table);
            (group.clone(), events, strength)
        })
        .collect();
    let mut steps = Vec::new();
    for (group, count) in candidates {
        let (events, table) = window(count);
        if signalled.contains(group) {
            if !table.signals(criteria) {
                signalled.remove(group);
                standing.retain(|(g, ..)| g != group);
                steps.push(SignalStep::Clear {
                    group: group.clone(),
                    table,
                    reason: "no longer meets the criteria".to_owned(),
                });
            }
            continue;
        }
        let this = (group.0, strength(&events, &table));
        let explaining: Vec<Vec<Uuid>> = standing
            .iter()
            .filter(|((d, _), _, by)| explains((*d, *by), this))
            .map(|(_, events, _)| events.clone())
            .collect();
        if !table.signals(criteria)
            || explained_by_signalled(&events, &explaining, criteria.events_min)
        {
            continue;
        }
        signalled.insert(group);
        steps.push(SignalStep::Raise {
            group: group.clone(),
            table,
        });
        // Active signals of the same or a broader dimension whose events
        // this one explains clear.
        let explained: Vec<Group> = standing
            .iter()
            .filter(|((d, _), other, of)| {
                explains(this, (*d, *of))
                    && explained_by_signalled(
                        other,
                        std::slice::from_ref(&events),
                        criteria.events_min,
                    )
            })
            .map(|(at, ..)| at.clone())
            .collect();
        for other in explained {
            let Some(&other_count) = counts.get(&other) else {
                continue;
            };
            let (_, other_table) = window(other_count);
            signalled.remove(&other);
            standing.retain(|(g, ..)| *g != other);
            steps.push(SignalStep::Clear {
                reason: format!("explained by the signal of {} {}", group.0, group.1),
                group: other,
                table: other_table,
            });
        }
        standing.push((group.clone(), events, this.1));
    }
    steps
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const DAY: i64 = 20_000;

    /// A group's counts: `injections` on `DAY`, and one `kind` event on
    /// `DAY` for each id in `events`.
    fn count(injections: u64, events: &[Uuid], kind: &str) -> GroupCount {
        let mut count = GroupCount::default();
        for _ in 0..injections {
            count.add_injection(DAY, 1, DAY);
        }
        for id in events {
            count.add_event(kind, *id, DAY, 1, DAY);
        }
        count
    }

    fn ids(n: usize) -> Vec<Uuid> {
        (0..n).map(|i| Uuid::from_u128(i as u128 + 1)).collect()
    }

    fn lot(name: &str) -> Group {
        (Dimension::Lot, name.to_owned())
    }

    fn criteria() -> Criteria {
        super::super::findings::FindingSettings::default().signal_criteria
    }

    /// A clinic of 1,000 injections with `cluster` infections, all after
    /// lot A's 50 injections.
    fn clinic(cluster: &[Uuid]) -> (GroupCount, GroupCount) {
        (
            count(1_000, cluster, "infection"),
            count(50, cluster, "infection"),
        )
    }

    #[test]
    fn a_cluster_in_one_lot_raises_its_signal() {
        let cluster = ids(5);
        let (whole, a) = clinic(&cluster);
        let steps = signal_steps("infection", &criteria(), DAY, &whole, &[], &[(lot("A"), a)]);
        assert!(
            matches!(&steps[..], [SignalStep::Raise { group, .. }] if *group == lot("A")),
            "{steps:?}"
        );
    }

    #[test]
    fn one_event_raises_nothing() {
        let one = ids(1);
        let (whole, a) = clinic(&one);
        let steps = signal_steps("infection", &criteria(), DAY, &whole, &[], &[(lot("A"), a)]);
        assert!(steps.is_empty(), "{steps:?}");
    }

    #[test]
    fn a_signal_no_longer_met_clears() {
        // Lot A is signalled, but its events are now as common as the clinic's.
        let events = ids(3);
        let whole = count(60, &events, "infection");
        let mut a = count(50, &events, "infection");
        a.signalled.insert("infection".to_owned());
        let steps = signal_steps(
            "infection",
            &criteria(),
            DAY,
            &whole,
            &[(lot("A"), a.clone())],
            &[(lot("A"), a)],
        );
        assert!(
            matches!(&steps[..], [SignalStep::Clear { group, reason, .. }]
                if *group == lot("A") && reason == "no longer meets the criteria"),
            "{steps:?}"
        );
    }

    #[test]
    fn the_practitioner_of_a_signalled_lot_is_explained_by_it() {
        let cluster = ids(5);
        let (whole, mut a) = clinic(&cluster);
        a.signalled.insert("infection".to_owned());
        // The practitioner gave lot A's injections and a few others.
        let practitioner = count(60, &cluster, "infection");
        let steps = signal_steps(
            "infection",
            &criteria(),
            DAY,
            &whole,
            &[(lot("A"), a.clone())],
            &[
                (lot("A"), a),
                (
                    (Dimension::Practitioner, "dr-hale".to_owned()),
                    practitioner,
                ),
            ],
        );
        assert!(steps.is_empty(), "{steps:?}");
    }

    #[test]
    fn a_more_specific_signal_clears_the_broader_one_it_explains() {
        let cluster = ids(5);
        let (whole, mut a) = clinic(&cluster);
        a.signalled.insert("infection".to_owned());
        // A vial of lot A holds the whole cluster in fewer injections.
        let vial = (Dimension::Vial, "A opened 2026-10-01".to_owned());
        let steps = signal_steps(
            "infection",
            &criteria(),
            DAY,
            &whole,
            &[(lot("A"), a.clone())],
            &[
                (vial.clone(), count(10, &cluster, "infection")),
                (lot("A"), a),
            ],
        );
        match &steps[..] {
            [
                SignalStep::Raise { group: raised, .. },
                SignalStep::Clear {
                    group: cleared,
                    reason,
                    ..
                },
            ] => {
                assert_eq!(raised, &vial);
                assert_eq!(cleared, &lot("A"));
                assert_eq!(
                    reason,
                    "explained by the signal of vial A opened 2026-10-01"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
