//! The safety signals kept as each event is folded: injections and adverse
//! events counted per group over a rolling window, a signal raised or
//! cleared when a group's counts cross the criteria, recounted when a
//! correction moves an event.

use prolo_schemas::{
    Envelope, InjectionGiven, Payload,
    names::{name, solution_label},
};
use uuid::Uuid;

use super::{Folder, Notification, cached, ms};
use crate::{
    rules::{
        self as policy,
        disproportionality::Table,
        signals::{
            DIMENSIONS, Dimension, GroupCount, Signal, SignalState, SignalStep, SignalTransition,
            day_of,
        },
    },
    store::{StoreError, keys},
};

impl Folder<'_> {
    /// The groups an injection counts in, with the clinic's baseline first,
    /// then from the most specific to the broadest: signals are evaluated
    /// in this order, and a broader group whose events a more specific
    /// signal holds is explained by it (a contaminated multi-dose vial, not
    /// its whole lot; a lot, not the practitioners who used it).
    pub(super) fn groups_of(p: &InjectionGiven) -> Vec<(Dimension, String)> {
        let mut groups = vec![(Dimension::Clinic, "all".to_owned())];
        for c in &p.solution.components {
            if let Some(prolo_schemas::Vial {
                kind: prolo_schemas::VialKind::MultiDose,
                opened_at: Some(opened),
            }) = &c.vial
            {
                groups.push((
                    Dimension::Vial,
                    format!("{} opened {}", c.lot, opened.date_naive()),
                ));
            }
        }
        if let Some(prep) = &p.preparation {
            groups.push((
                Dimension::Preparation,
                format!("{} on {}", prep.prepared_by, prep.prepared_at.date_naive()),
            ));
        }
        for c in &p.solution.components {
            groups.push((Dimension::Lot, c.lot.to_string()));
        }
        for c in &p.solution.components {
            groups.push((Dimension::Solution, solution_label(c)));
        }
        groups.push((Dimension::Site, p.site.site_key.as_str().to_owned()));
        groups.push((Dimension::Practitioner, p.practitioner_id.to_string()));
        groups.push((Dimension::Guidance, name(&p.guidance)));
        groups.dedup();
        debug_assert!(groups.iter().skip(1).all(|(d, _)| DIMENSIONS.contains(d)));
        groups
    }

    fn group(
        &mut self,
        clinic: &str,
        dimension: Dimension,
        group: &str,
    ) -> Result<&mut GroupCount, StoreError> {
        let key = keys::key(
            keys::GROUP,
            &[
                clinic.as_bytes(),
                dimension.as_str().as_bytes(),
                group.as_bytes(),
            ],
        );
        let entry = cached(&mut self.groups, self.store, key.clone(), || {
            Some(GroupCount::default())
        })?;
        match entry {
            Some(count) => Ok(count),
            None => Err(StoreError::Codec {
                key: String::from_utf8_lossy(&key).into_owned(),
                message: "group count missing".into(),
            }),
        }
    }

    /// The first day of the signals' rolling window, by the stream's clock at `e`.
    fn window_from(&self, e: &Envelope) -> i64 {
        self.settings
            .signal_criteria
            .window_from(day_of(ms(e.recorded_at)))
    }

    pub(super) fn count_injection(
        &mut self,
        e: &Envelope,
        p: &InjectionGiven,
    ) -> Result<(), StoreError> {
        let (day, from) = (day_of(ms(e.occurred_at)), self.window_from(e));
        for (dimension, group) in Self::groups_of(p) {
            self.group(e.clinic_id.as_str(), dimension, &group)?
                .add_injection(day, 1, from);
        }
        Ok(())
    }

    /// Counts an adverse event of `kind` in the groups of the injection it
    /// follows, and raises a signal for any group in which that kind now
    /// stands out against the rest of the clinic.
    pub(super) fn count_adverse_event(
        &mut self,
        seq: u64,
        e: &Envelope,
        linked: Option<Uuid>,
    ) -> Result<(), StoreError> {
        let Payload::AdverseEventReported(report) = &e.payload else {
            return Ok(());
        };
        let kind = name(&report.kind);
        let clinic = e.clinic_id.as_str();
        let injections = self.patient_injections(e)?;
        let window = chrono::Duration::days(self.settings.attribution_window_days);
        let Some(policy::Attribution {
            injection,
            groups,
            inferred,
            day,
        }) = policy::attributed_injection(
            &injections,
            linked,
            ms(report.onset_at),
            window.num_milliseconds(),
        )
        else {
            // It names an injection of another patient or none in the
            // window: no group to count it in.
            return Ok(());
        };
        let counted = crate::model::Counted {
            kind: kind.clone(),
            groups: groups.clone(),
            injection,
            inferred,
            day,
        };
        let from = self.window_from(e);
        self.add_adverse_count(clinic, e.event_id, &counted, 1, from)?;
        let key = keys::by_uuid(keys::ADVERSE_EVENT, &e.event_id);
        if let Some(state) = cached(&mut self.adverse, self.store, key, || None)? {
            state.counted = Some(counted);
        }
        if self.settings.expected_kinds.contains(&kind) {
            return Ok(());
        }
        // Judged over the rolling window: the counts as they stand with
        // this event, the steps decided by the rules, each recorded.
        let whole = self.group(clinic, Dimension::Clinic, "all")?.clone();
        let mut active = Vec::new();
        for group in self.active_signals(clinic, &kind)? {
            let count = self.group(clinic, group.0, &group.1)?.clone();
            active.push((group, count));
        }
        let mut candidates = Vec::new();
        for group in groups.into_iter().skip(1) {
            let count = self.group(clinic, group.0, &group.1)?.clone();
            candidates.push((group, count));
        }
        let steps = policy::signals::signal_steps(
            &kind,
            &self.settings.signal_criteria,
            from,
            &whole,
            &active,
            &candidates,
        );
        for step in steps {
            match step {
                SignalStep::Raise { group, table } => {
                    self.raise_signal(seq, e, (group.0, &group.1), &kind, table)?;
                }
                SignalStep::Clear {
                    group,
                    table,
                    reason,
                } => {
                    let at = (group.0, group.1.as_str());
                    self.clear_signal(seq, e, (clinic, at), &kind, table, reason)?;
                }
            }
        }
        Ok(())
    }
}

impl Folder<'_> {
    /// Adds (`sign` 1) or takes away (-1) an adverse event counted as
    /// `counted`; the window starts on day `from`.
    fn add_adverse_count(
        &mut self,
        clinic: &str,
        event: Uuid,
        counted: &crate::model::Counted,
        sign: i8,
        from: i64,
    ) -> Result<(), StoreError> {
        for (dimension, group) in &counted.groups {
            self.group(clinic, *dimension, group)?.add_event(
                &counted.kind,
                event,
                counted.day,
                sign,
                from,
            );
        }
        Ok(())
    }

    /// Moves an injection's counts from the groups it was counted in
    /// (`before`) to `after` (`None`: entered in error), and the adverse
    /// events that name it with it.
    /// `injection` is the injection and the day it was given.
    pub(super) fn recount_injection(
        &mut self,
        e: &Envelope,
        (injection, day): (Uuid, i64),
        before: &[(Dimension, String)],
        after: Option<Vec<(Dimension, String)>>,
        adverse_events: &[Uuid],
    ) -> Result<(), StoreError> {
        let clinic = e.clinic_id.as_str();
        let from = self.window_from(e);
        for (dimension, group) in before {
            self.group(clinic, *dimension, group)?
                .add_injection(day, -1, from);
        }
        for (dimension, group) in after.iter().flatten() {
            self.group(clinic, *dimension, group)?
                .add_injection(day, 1, from);
        }
        for id in adverse_events {
            let key = keys::by_uuid(keys::ADVERSE_EVENT, id);
            let Some(state) = cached(&mut self.adverse, self.store, key, || None)? else {
                continue;
            };
            let Some(counted) = state.counted.clone() else {
                continue;
            };
            if counted.injection != injection {
                continue;
            }
            let moved = after.clone().map(|groups| crate::model::Counted {
                groups,
                ..counted.clone()
            });
            self.recount_adverse_event(e, *id, &counted, moved)?;
        }
        Ok(())
    }

    /// Moves an adverse event's counts from `before` to `after` (`None`:
    /// counted nowhere: entered in error, or its injection was).
    pub(super) fn recount_adverse_event(
        &mut self,
        e: &Envelope,
        adverse_event: Uuid,
        before: &crate::model::Counted,
        after: Option<crate::model::Counted>,
    ) -> Result<(), StoreError> {
        let (clinic, from) = (e.clinic_id.as_str(), self.window_from(e));
        self.add_adverse_count(clinic, adverse_event, before, -1, from)?;
        if let Some(after) = &after {
            self.add_adverse_count(clinic, adverse_event, after, 1, from)?;
        }
        let key = keys::by_uuid(keys::ADVERSE_EVENT, &adverse_event);
        if let Some(state) = cached(&mut self.adverse, self.store, key, || None)? {
            state.counted = after;
        }
        Ok(())
    }

    /// The signal record of (`dimension`, `group`) for `kind`, loaded once per batch.
    fn signal_record(
        &mut self,
        clinic: &str,
        (dimension, group): (Dimension, &str),
        kind: &str,
    ) -> Result<Option<&mut Signal>, StoreError> {
        let key = keys::signal(clinic, dimension.as_str(), group, kind);
        cached(&mut self.signals_raised, self.store, key, || None)
    }

    /// Raises (or raises again) the signal of `kind` in a group.
    fn raise_signal(
        &mut self,
        seq: u64,
        e: &Envelope,
        (dimension, group): (Dimension, &str),
        kind: &str,
        table: Table,
    ) -> Result<(), StoreError> {
        let clinic = e.clinic_id.as_str();
        self.group(clinic, dimension, group)?
            .signalled
            .insert(kind.to_owned());
        let transition = SignalTransition {
            state: SignalState::Raised,
            by: e.event_id,
            seq,
            reason: "meets the criteria".into(),
            table,
        };
        let signal = match self.signal_record(clinic, (dimension, group), kind)? {
            Some(signal) => {
                signal.table = table;
                signal.measures = table.measures();
                signal.raised_by = e.event_id;
                signal.raised_seq = seq;
                signal.active = true;
                signal.transitions.push(transition);
                signal.clone()
            }
            None => {
                let signal = Signal {
                    clinic_id: clinic.to_owned(),
                    dimension,
                    group: group.to_owned(),
                    kind: kind.to_owned(),
                    table,
                    measures: table.measures(),
                    raised_by: e.event_id,
                    raised_seq: seq,
                    active: true,
                    transitions: vec![transition],
                };
                self.signals_raised.insert(
                    keys::signal(clinic, dimension.as_str(), group, kind),
                    signal.clone(),
                );
                signal
            }
        };
        self.notifications.push(Notification {
            subject: format!("prolo.signal.{clinic}.raised"),
            payload: serde_json::to_vec(&signal).unwrap_or_default(),
        });
        Ok(())
    }

    /// Clears the active signal of `kind` in a clinic's group, saying why.
    fn clear_signal(
        &mut self,
        seq: u64,
        e: &Envelope,
        (clinic, (dimension, group)): (&str, (Dimension, &str)),
        kind: &str,
        table: Table,
        reason: String,
    ) -> Result<(), StoreError> {
        self.group(clinic, dimension, group)?.signalled.remove(kind);
        let Some(signal) = self.signal_record(clinic, (dimension, group), kind)? else {
            return Ok(());
        };
        signal.active = false;
        signal.table = table;
        signal.measures = table.measures();
        signal.transitions.push(SignalTransition {
            state: SignalState::Cleared,
            by: e.event_id,
            seq,
            reason,
            table,
        });
        let signal = signal.clone();
        self.notifications.push(Notification {
            subject: format!("prolo.signal.{clinic}.cleared"),
            payload: serde_json::to_vec(&signal).unwrap_or_default(),
        });
        Ok(())
    }

    /// Moves the signals' rolling window to the stream's clock at `e`: on
    /// the first event of a new day, every active signal (of any clinic)
    /// is judged over the new window and cleared if it no longer meets the
    /// criteria there.
    pub(super) fn move_window(&mut self, seq: u64, e: &Envelope) -> Result<(), StoreError> {
        let today = day_of(ms(e.recorded_at));
        if self.signal_day.is_some_and(|day| day >= today) {
            return Ok(());
        }
        self.signal_day = Some(today);
        let criteria = self.settings.signal_criteria;
        let from = criteria.window_from(today);
        let mut active = std::collections::BTreeMap::new();
        for signal in self.store.signals_all()? {
            let key = keys::signal(
                &signal.clinic_id,
                signal.dimension.as_str(),
                &signal.group,
                &signal.kind,
            );
            active.insert(key, signal);
        }
        for (key, signal) in &self.signals_raised {
            active.insert(key.clone(), signal.clone());
        }
        for signal in active.into_values().filter(|s| s.active) {
            let clinic = signal.clinic_id.as_str();
            let whole = self.group(clinic, Dimension::Clinic, "all")?.clone();
            let table = self
                .group(clinic, signal.dimension, &signal.group)?
                .in_window_against_rest(&whole, &signal.kind, from);
            if !table.signals(&criteria) {
                let reason = format!(
                    "no longer meets the criteria in the {}-day window",
                    criteria.window_days
                );
                let group = (signal.dimension, signal.group.as_str());
                self.clear_signal(seq, e, (clinic, group), &signal.kind, table, reason)?;
            }
        }
        Ok(())
    }

    /// The (dimension, group) of every active signal of `kind` in a clinic,
    /// as this batch left them.
    fn active_signals(
        &self,
        clinic: &str,
        kind: &str,
    ) -> Result<Vec<(Dimension, String)>, StoreError> {
        let mut active = std::collections::BTreeMap::new();
        for signal in self.store.signals_raised(clinic)? {
            if signal.kind == kind {
                active.insert((signal.dimension, signal.group.clone()), signal.active);
            }
        }
        for signal in self.signals_raised.values() {
            if signal.clinic_id == clinic && signal.kind == kind {
                active.insert((signal.dimension, signal.group.clone()), signal.active);
            }
        }
        Ok(active
            .into_iter()
            .filter(|(_, is_active)| *is_active)
            .map(|(group, _)| group)
            .collect())
    }
}
