//! Safety signals: the counts of each group of injections (a lot, a vial,
//! a practitioner, …) and the adverse events after them, the signals
//! raised and cleared, and the state machine that decides them as a pure
//! function of counts: which groups an adverse event raises a signal in,
//! and which signals it clears (no longer meeting the criteria, or
//! explained by a more specific group's signal). The fold loads the
//! counts, asks, and records each step ([`crate::fold`]); the rules are
//! tested here without sled or NATS.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use serde::{Deserialize, Serialize};

use super::disproportionality::{Criteria, Measures, Table};

/// Counts of one group for the signal rates: its injections and the
/// adverse events after them, by kind, so that expected pain flares do not
/// hide infections; all-time, and day by day over the rolling window.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GroupCount {
    /// Injections in the group.
    pub injections: u64,
    /// Adverse events after them, all kinds.
    pub adverse_events: u64,
    /// Adverse events after them, by kind (`infection`, `pain_flare`, …).
    pub by_kind: BTreeMap<String, u64>,
    /// The kinds a signal is active for.
    pub signalled: std::collections::BTreeSet<String>,
    /// The latest adverse events of each kind (at most
    /// [`EVENTS_KEPT_PER_KIND`]) with the day of the injection they
    /// follow, to tell whether another group's signal already explains
    /// this group's events.
    pub recent: BTreeMap<String, Vec<(Uuid, i64)>>,
    /// The same counts by the day of the injection (days since 1970-01-01,
    /// UTC), for the days of the rolling window only: older days are
    /// dropped as the stream's clock moves on.
    pub days: BTreeMap<i64, DayCount>,
}

/// One day of a group: the injections given that day and the adverse
/// events that followed them, by kind.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DayCount {
    /// Injections given that day.
    pub injections: u64,
    /// Adverse events after them, by kind.
    pub by_kind: BTreeMap<String, u64>,
}

/// How many event ids a group keeps per kind: enough for a cluster of rare
/// events; a kind with more is not explained away by a handful.
pub const EVENTS_KEPT_PER_KIND: usize = 64;

const DAY_MS: i64 = 86_400_000;

/// The day (since 1970-01-01, UTC) of a time in milliseconds.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// Adds `sign` (±1) to a count, never below zero.
fn bump(count: &mut u64, sign: i8) {
    if sign > 0 {
        *count += 1;
    } else {
        *count = count.saturating_sub(1);
    }
}

impl GroupCount {
    /// Counts (`sign` 1) or takes away (-1) an injection given on `day`.
    /// Days before `window_from` are not kept.
    pub fn add_injection(&mut self, day: i64, sign: i8, window_from: i64) {
        bump(&mut self.injections, sign);
        if day >= window_from {
            bump(&mut self.days.entry(day).or_default().injections, sign);
        }
        self.days = self.days.split_off(&window_from);
    }

    /// Counts (`sign` 1) or takes away (-1) adverse event `event` of `kind`
    /// after an injection given on `day`.
    pub fn add_event(&mut self, kind: &str, event: Uuid, day: i64, sign: i8, window_from: i64) {
        bump(&mut self.adverse_events, sign);
        bump(self.by_kind.entry(kind.to_owned()).or_default(), sign);
        if day >= window_from {
            let today = self.days.entry(day).or_default();
            bump(today.by_kind.entry(kind.to_owned()).or_default(), sign);
        }
        self.days = self.days.split_off(&window_from);
        let recent = self.recent.entry(kind.to_owned()).or_default();
        if sign > 0 {
            recent.push((event, day));
            if recent.len() > EVENTS_KEPT_PER_KIND {
                recent.remove(0);
            }
        } else {
            recent.retain(|(id, _)| *id != event);
        }
    }

    /// The group's counts over the window from `from_day` on: its
    /// injections of those days and the adverse events after them.
    pub fn window(&self, from_day: i64) -> GroupCount {
        let mut window = GroupCount {
            signalled: self.signalled.clone(),
            ..GroupCount::default()
        };
        for day in self.days.range(from_day..).map(|(_, d)| d) {
            window.injections += day.injections;
            for (kind, n) in &day.by_kind {
                window.adverse_events += n;
                *window.by_kind.entry(kind.clone()).or_default() += n;
            }
        }
        window
    }

    /// The adverse events of `kind` it keeps after injections given from
    /// day `from` on, oldest first.
    pub fn recent_events(&self, kind: &str, from: i64) -> Vec<Uuid> {
        self.recent
            .get(kind)
            .map(|events| {
                let kept = events.iter().filter(|(_, day)| *day >= from);
                kept.map(|(id, _)| *id).collect()
            })
            .unwrap_or_default()
    }

    /// The 2×2 table a signal is judged on: this group's injections given
    /// in the window from day `from` and the events of `kind` after them,
    /// against the rest of `clinic` over all its history (the rest never
    /// includes the group: the two are disjoint). The window says whether
    /// a cluster is current; the longer history estimates the background
    /// (a 90-day window of a small clinic holds too few background events
    /// for χ² to tell four infections from chance).
    pub fn in_window_against_rest(&self, clinic: &GroupCount, kind: &str, from: i64) -> Table {
        let window = self.window(from);
        Table {
            group_events: window.events(kind),
            group_injections: window.injections,
            ..self.against_rest(clinic, kind)
        }
    }

    /// Adverse events (all kinds) per 1,000 injections.
    pub fn rate(&self) -> f64 {
        crate::rules::disproportionality::per_1000(self.adverse_events, self.injections)
    }

    /// 95% Wilson score interval of the rate, per 1,000 injections.
    pub fn interval(&self) -> (f64, f64) {
        crate::rules::disproportionality::wilson_per_1000(self.adverse_events, self.injections)
    }

    /// Events of `kind`.
    pub fn events(&self, kind: &str) -> u64 {
        self.by_kind.get(kind).copied().unwrap_or(0)
    }

    /// The 2×2 table of `kind`: this group against the rest of `clinic`
    /// (whose counts include this group's).
    pub fn against_rest(&self, clinic: &GroupCount, kind: &str) -> Table {
        Table {
            group_events: self.events(kind),
            group_injections: self.injections,
            rest_events: clinic.events(kind).saturating_sub(self.events(kind)),
            rest_injections: clinic.injections.saturating_sub(self.injections),
        }
    }
}

/// The dimensions adverse-event rates are grouped by. `vial` (a multi-dose
/// vial: its lot and the day it was opened) and `preparation` (who drew up
/// the syringes, and the day) count only injections that record them: they
/// tell a contamination inside the clinic from a bad manufacturer's lot.
pub const DIMENSIONS: &[Dimension] = &[
    Dimension::Vial,
    Dimension::Preparation,
    Dimension::Lot,
    Dimension::Solution,
    Dimension::Site,
    Dimension::Practitioner,
    Dimension::Guidance,
];

/// What injections are grouped by for their adverse-event rates; `clinic`
/// is the baseline (every injection of the clinic, group `all`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// The whole clinic: the baseline.
    Clinic,
    /// A multi-dose vial: its lot and the day it was opened.
    Vial,
    /// Who drew up the syringes, and the day.
    Preparation,
    /// A solution component's lot.
    Lot,
    /// The solution (agents and concentrations).
    Solution,
    /// The site injected.
    Site,
    /// The practitioner who injected.
    Practitioner,
    /// The guidance mode.
    Guidance,
}

impl Dimension {
    /// Its name, as the signal keys, the JSON answers and the console use it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Dimension::Clinic => "clinic",
            Dimension::Vial => "vial",
            Dimension::Preparation => "preparation",
            Dimension::Lot => "lot",
            Dimension::Solution => "solution",
            Dimension::Site => "site",
            Dimension::Practitioner => "practitioner",
            Dimension::Guidance => "guidance",
        }
    }

    /// The dimension of that name (as a signal key holds it).
    pub fn named(name: &str) -> Option<Dimension> {
        [Dimension::Clinic]
            .iter()
            .chain(DIMENSIONS)
            .copied()
            .find(|d| d.as_str() == name)
    }
}

impl std::fmt::Display for Dimension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A raised signal, published and kept: one adverse-event kind standing out
/// in one group against the rest of the clinic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Signal {
    /// Clinic.
    pub clinic_id: String,
    /// What it groups by: `lot`, `solution`, `site`, `practitioner`, …
    pub dimension: Dimension,
    /// The group, e.g. the lot number.
    pub group: String,
    /// The adverse-event kind, e.g. `infection`.
    pub kind: String,
    /// The 2×2 table when raised.
    pub table: Table,
    /// Its measures then (PRR with its interval and χ², IC and IC025).
    pub measures: Measures,
    /// The adverse event whose folding raised it (last raised).
    pub raised_by: Uuid,
    /// Its sequence.
    pub raised_seq: u64,
    /// Raised and not cleared since.
    pub active: bool,
    /// Every time it was raised or cleared, in order.
    pub transitions: Vec<SignalTransition>,
}

/// A signal raised or cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SignalTransition {
    /// Raised or cleared.
    pub state: SignalState,
    /// The adverse event whose folding did it.
    pub by: Uuid,
    /// Its sequence.
    pub seq: u64,
    /// Why (for a clearing: no longer meets the criteria, or explained by
    /// another group's signal).
    pub reason: String,
    /// The table then.
    pub table: Table,
}

/// What a signal's transition did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignalState {
    /// The group's counts met the criteria.
    Raised,
    /// They no longer do, or another group's signal explains its events.
    Cleared,
}

impl SignalState {
    /// `raised` or `cleared`, as published and answered.
    pub const fn as_str(self) -> &'static str {
        match self {
            SignalState::Raised => "raised",
            SignalState::Cleared => "cleared",
        }
    }
}

impl std::fmt::Display for SignalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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

/// Whether a group's events of a kind (`events`) are explained by groups
/// already signalled for it (`signalled`, each with its events): fewer than
/// `events_min` of them lie outside every such group. The practitioner and
/// the site of a contaminated lot's patients share its infections; they are
/// not signals of their own.
pub fn explained_by_signalled(events: &[Uuid], signalled: &[Vec<Uuid>], events_min: u64) -> bool {
    if signalled.is_empty() {
        return false;
    }
    let unexplained = events
        .iter()
        .filter(|id| !signalled.iter().any(|s| s.contains(id)))
        .count();
    (unexplained as u64) < events_min
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

    #[test]
    fn wilson_interval_brackets_the_rate() {
        let g = GroupCount {
            injections: 200,
            adverse_events: 10,
            ..GroupCount::default()
        };
        let (lo, hi) = g.interval();
        assert!((g.rate() - 50.0).abs() < 1e-9);
        assert!(lo < 50.0 && 50.0 < hi, "{lo} {hi}");
        assert!(
            (lo - 27.4).abs() < 1.0 && (hi - 89.7).abs() < 1.0,
            "{lo} {hi}"
        );
    }

    #[test]
    fn a_group_is_compared_with_the_rest_of_the_clinic_kind_by_kind() {
        let counts = |injections, infections, flares| GroupCount {
            injections,
            adverse_events: infections + flares,
            by_kind: [
                ("infection".to_owned(), infections),
                ("pain_flare".to_owned(), flares),
            ]
            .into(),
            ..GroupCount::default()
        };
        let clinic = counts(2000, 6, 60);
        let lot = counts(250, 4, 7);
        let infections = lot.against_rest(&clinic, "infection");
        assert_eq!(
            infections,
            Table {
                group_events: 4,
                group_injections: 250,
                rest_events: 2,
                rest_injections: 1750
            }
        );
        let criteria = Criteria::default();
        assert!(infections.signals(&criteria));
        // Pooled with the flares, the same lot would not stand out.
        assert!(!lot.against_rest(&clinic, "pain_flare").signals(&criteria));
        assert_eq!(lot.against_rest(&clinic, "nerve_injury").group_events, 0);
    }
}
