//! The safety signal on realistic clinics: 50 clinics simulated from fixed
//! seeds and folded, in the order a stream would hold them, through the
//! real fold into a real sled database. Each has a realistic background
//! (pain flares after 3% of injections, infections after 0.1%), dextrose
//! lots used one after another (each for about two months, so a patient's
//! lot changes within a series), and one planted cluster: 4 infections
//! after injections of one lot. The lot must be signalled (over the 90-day
//! rolling window) in at least 90% of the clinics, with at most 0.2 false
//! signals per clinic, and its signal must clear once the window has moved
//! past the lot. The table is printed (`cargo test -p prolo-projector
//! --test it signal_simulation:: -- --nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common::fold_stored;
use chrono::{DateTime, Duration, Utc};
use prolo_projector::{Store, rules::findings::FindingSettings};
use prolo_schemas::{
    AdverseEventKind, Envelope, Guidance, InfectionSign, Laterality, Payload, Site, SiteKey,
};
use uuid::Uuid;

const CLINICS: u64 = 50;
const PATIENTS: u64 = 240;
const FLARE_RATE: f64 = 0.03;
const INFECTION_RATE: f64 = 0.001;
const PLANTED: usize = 4;
const BAD_LOT: &str = "DX-BAD";
/// A new dextrose lot is opened every `LOT_DAYS`; each is used for
/// `LOT_USE_DAYS` (stock overlaps).
const LOT_DAYS: i64 = 45;
const LOT_USE_DAYS: i64 = 60;

/// A small deterministic generator (xorshift), one per clinic.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1_000_000.0 < p
    }
}

use prolo_tests::example_envelope as example;

/// One simulated clinic's events, in stream order: patients in series of
/// 3–6 sessions, 1–3 sites a session, the dextrose lot in use that day (a
/// patient keeps theirs while it lasts), a lidocaine lot, one of four
/// practitioners; flares and infections at their background rates; the
/// planted infections.
fn clinic(n: u64) -> Vec<Envelope> {
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15 ^ (n + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let clinic: prolo_schemas::ClinicId = format!("sim-{n:02}").parse().unwrap();
    let template = example("injection.given");
    let report = example("adverse_event.reported");
    let sites = [
        (SiteKey::KNEE_MCL, true),
        (SiteKey::KNEE_IA, true),
        (SiteKey::PES_ANSERINUS, true),
        (SiteKey::SI_POSTERIOR_LIG, true),
        (SiteKey::ILIOLUMBAR_LIG, true),
        (SiteKey::SHOULDER_SUPRASPINATUS, true),
        (SiteKey::LAT_EPICONDYLE, true),
        (SiteKey::PLANTAR_FASCIA, true),
        (SiteKey::ACHILLES_TENDON, true),
        (SiteKey::LUMBAR_INTERSPINOUS_LIG, false),
    ];
    let bad = 2 + dice.below(6) as i64;
    let lot_name = |k: i64| {
        if k == bad {
            BAD_LOT.to_owned()
        } else {
            format!("DX-{}", 100 + k)
        }
    };
    let in_use = |k: i64, day: i64| (LOT_DAYS * k..LOT_DAYS * k + LOT_USE_DAYS).contains(&day);
    let start: DateTime<Utc> = "2025-01-06T09:00:00Z".parse().unwrap();
    let mut events = Vec::new();
    let mut bad_lot_injections = Vec::new();
    let adverse = |events: &mut Vec<Envelope>, injection: &Envelope, kind: AdverseEventKind| {
        let mut e = report.clone();
        e.event_id = Uuid::now_v7();
        e.clinic_id = clinic.clone();
        e.patient_id = injection.patient_id.clone();
        e.occurred_at = injection.occurred_at + Duration::days(3);
        e.recorded_at = e.occurred_at + Duration::hours(2);
        if let Payload::AdverseEventReported(p) = &mut e.payload {
            p.kind = kind;
            p.onset_at = injection.occurred_at + Duration::days(2);
            p.aware_at = Some(e.occurred_at);
            p.grade = 1;
            p.linked_injection.as_mut().unwrap().event_id = injection.event_id;
            p.linked_injection.as_mut().unwrap().occurred_at = injection.occurred_at;
            if kind != AdverseEventKind::Infection {
                p.infection = None;
            } else if let Some(i) = &mut p.infection {
                i.signs = vec![InfectionSign::Erythema, InfectionSign::Warmth];
            }
        }
        events.push(e);
    };
    for patient in 0..PATIENTS {
        let patient_id: prolo_schemas::PatientId = format!("P-{patient:04}").parse().unwrap();
        let practitioner: prolo_schemas::PractitionerId =
            format!("dr-{}", dice.below(4)).parse().unwrap();
        let mut lot: Option<i64> = None;
        let lidocaine = ["LID-1", "LID-2", "LID-3"][dice.below(3) as usize];
        let concentration = [12.5, 15.0, 20.0, 25.0][dice.below(4) as usize];
        // A clinic in its steady state: series began up to half a year
        // before the bad lot's earliest use (day 90).
        let first_day = dice.below(480) as i64 - 180;
        let day0 = start + Duration::days(first_day);
        let sessions = 3 + dice.below(4);
        let (site, sided) = sites[dice.below(sites.len() as u64) as usize];
        for session in 1..=sessions {
            let day = first_day + 28 * (session as i64 - 1);
            if !lot.is_some_and(|k| in_use(k, day)) {
                let newest = day.div_euclid(LOT_DAYS);
                lot = Some(if in_use(newest - 1, day) && dice.chance(0.5) {
                    newest - 1
                } else {
                    newest
                });
            }
            let lot = lot.unwrap_or_default();
            let at = day0 + Duration::days(28 * (session as i64 - 1));
            for point in 0..(1 + dice.below(3)) {
                let mut e = template.clone();
                e.event_id = Uuid::now_v7();
                e.clinic_id = clinic.clone();
                e.patient_id = Some(patient_id.clone());
                e.occurred_at = at + Duration::minutes(point as i64 * 5);
                e.recorded_at = e.occurred_at + Duration::minutes(30);
                e.causation_id = None;
                if let Payload::InjectionGiven(p) = &mut e.payload {
                    p.site = Site::listed(site, sided.then_some(Laterality::Left));
                    p.solution.components[0].lot = lot_name(lot).parse().unwrap();
                    p.solution.components[0].concentration_pct = Some(concentration);
                    p.solution.components[1].lot = lidocaine.parse().unwrap();
                    p.session_number = session as u8;
                    p.practitioner_id = practitioner.clone();
                    p.guidance = if site == SiteKey::LUMBAR_INTERSPINOUS_LIG {
                        Guidance::Fluoroscopy
                    } else if dice.chance(0.5) {
                        Guidance::Ultrasound
                    } else {
                        Guidance::Palpation
                    };
                    p.treatment_plan_event_id = None;
                    p.preparation = None;
                    for component in &mut p.solution.components {
                        component.vial = None;
                    }
                }
                if lot == bad {
                    bad_lot_injections.push(events.len());
                }
                events.push(e.clone());
                if dice.chance(FLARE_RATE) {
                    adverse(&mut events, &e, AdverseEventKind::PainFlare);
                }
                if dice.chance(INFECTION_RATE) {
                    adverse(&mut events, &e, AdverseEventKind::Infection);
                }
            }
        }
    }
    // The planted cluster: infections after four injections of the bad lot.
    let mut planted = 0;
    while planted < PLANTED && !bad_lot_injections.is_empty() {
        let i = bad_lot_injections.remove(dice.below(bad_lot_injections.len() as u64) as usize);
        let injection = events[i].clone();
        adverse(&mut events, &injection, AdverseEventKind::Infection);
        planted += 1;
    }
    // The stream's order: by the time each was recorded.
    events.sort_by_key(|e| e.recorded_at);
    // The clinic goes on: an examination four months after the last event
    // moves the stream's clock (and the window) past every lot.
    let mut later = example("examination.done");
    later.event_id = Uuid::now_v7();
    later.clinic_id = clinic.clone();
    later.occurred_at = events.last().unwrap().recorded_at + Duration::days(120);
    later.recorded_at = later.occurred_at;
    events.push(later);
    events
}

#[tokio::test]
async fn a_small_infection_cluster_is_found_in_realistic_clinics_without_false_alarms() {
    let dir = tempfile::tempdir().unwrap();
    let settings = FindingSettings::default();
    let (mut found, mut false_signals, mut injections, mut adverse) = (0, 0, 0, 0);
    let (mut still_active, mut cleared) = (0, 0);
    println!("| clinic | injections | adverse events | planted lot signalled | false signals |");
    println!("|---|---|---|---|---|");
    for n in 0..CLINICS {
        // Each clinic is its own stream (its own clock) and database.
        let store = Store::open(&dir.path().join(format!("sim-{n}.sled")), 16 << 20).unwrap();
        let events = clinic(n);
        let seq = fold_stored(&store, &settings, 0, &events, 1000).await;
        assert_eq!(store.applied_seq().unwrap(), seq);
        assert_eq!(
            store.quarantined().unwrap(),
            0,
            "every simulated event is valid"
        );
        let clinic_id = format!("sim-{n:02}");
        let signals = store.signals_raised(&clinic_id).unwrap();
        let planted_signal = signals
            .iter()
            .find(|s| s.dimension.as_str() == "lot" && s.group == BAD_LOT && s.kind == "infection");
        let planted = planted_signal.is_some();
        // Four months after the last event, the window has moved past the
        // lot: its signal is cleared.
        cleared += usize::from(planted_signal.is_some_and(|s| !s.active));
        still_active += signals
            .iter()
            .filter(|s| {
                s.active
                    && !(s.dimension.as_str() == "lot"
                        && s.group == BAD_LOT
                        && s.kind == "infection")
            })
            .count();
        let wrong: Vec<String> = signals
            .iter()
            .filter(|s| {
                !(s.dimension.as_str() == "lot" && s.group == BAD_LOT && s.kind == "infection")
            })
            .map(|s| {
                let steps: Vec<String> = s
                    .transitions
                    .iter()
                    .map(|t| {
                        let n = t.table;
                        format!(
                            "{} at {}/{} against {}/{} ({})",
                            t.state,
                            n.group_events,
                            n.group_injections,
                            n.rest_events,
                            n.rest_injections,
                            t.reason
                        )
                    })
                    .collect();
                format!(
                    "{} {} {}: {}",
                    s.dimension,
                    s.group,
                    s.kind,
                    steps.join(", ")
                )
            })
            .collect();
        let clinic_injections = events
            .iter()
            .filter(|e| matches!(e.payload, Payload::InjectionGiven(_)))
            .count();
        let clinic_adverse = events
            .iter()
            .filter(|e| matches!(e.payload, Payload::AdverseEventReported(_)))
            .count();
        injections += clinic_injections;
        adverse += clinic_adverse;
        found += usize::from(planted);
        false_signals += wrong.len();
        println!(
            "| {clinic_id} | {clinic_injections} | {clinic_adverse} | {} | {} |",
            if planted { "yes" } else { "no" },
            if wrong.is_empty() {
                "0".to_owned()
            } else {
                format!("{} ({})", wrong.len(), wrong.join("; "))
            }
        );
    }
    let detection = found as f64 / CLINICS as f64;
    let false_per_clinic = false_signals as f64 / CLINICS as f64;
    println!();
    println!(
        "{CLINICS} clinics, {injections} injections, {adverse} adverse events: planted lot signalled in {:.0}% of clinics (cleared at the end in {cleared}), {false_per_clinic:.2} false signals raised per clinic, {:.2} still active at the end",
        detection * 100.0,
        still_active as f64 / CLINICS as f64
    );
    assert!(detection >= 0.9, "detection {detection}");
    assert_eq!(
        (cleared, still_active),
        (found, 0),
        "every signal clears once the window moves past its events"
    );
    assert!(
        false_per_clinic <= 0.2,
        "false signals per clinic {false_per_clinic}"
    );
}
