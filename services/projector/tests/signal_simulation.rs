//! The safety signal on realistic clinics: 50 clinics simulated from fixed
//! seeds and folded through the real fold into a real sled database. Each
//! has a realistic background (pain flares after 3% of injections,
//! infections after 0.1%) and one planted cluster: 4 infections after
//! injections of one dextrose lot. The lot must be signalled in at least
//! 90% of the clinics, with at most 0.2 false signals per clinic. The table
//! is printed (`cargo test -p prolo-projector --test signal_simulation --
//! --nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use chrono::{DateTime, Duration, Utc};
use prolo_projector::{
    Store,
    findings::FindingSettings,
    project::{StreamMessage, fold_batch},
};
use prolo_schemas::{
    AdverseEventKind, Envelope, Guidance, InfectionSign, Laterality, Payload, Site, SiteKey,
};
use uuid::Uuid;

const CLINICS: u64 = 50;
const PATIENTS: u64 = 150;
const FLARE_RATE: f64 = 0.03;
const INFECTION_RATE: f64 = 0.001;
const PLANTED: usize = 4;
const BAD_LOT: &str = "DX-BAD";

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

fn example(event_type: &str) -> Envelope {
    let path = format!(
        "{}/../../schemas/examples/{event_type}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    Envelope::from_json(&std::fs::read(path).unwrap()).unwrap()
}

/// One simulated clinic's events: patients in series of 3–6 sessions, 1–3
/// sites a session, a dextrose lot per patient that sometimes changes
/// mid-series, a lidocaine lot, one of four practitioners; flares and
/// infections at their background rates; the planted infections.
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
    let lots = [
        "DX-101", "DX-114", "DX-122", "DX-130", "DX-141", "DX-150", "DX-162", BAD_LOT,
    ];
    let start: DateTime<Utc> = "2025-01-06T09:00:00Z".parse().unwrap();
    let mut events = Vec::new();
    let mut bad_lot_injections = Vec::new();
    let adverse = |events: &mut Vec<Envelope>, injection: &Envelope, kind: AdverseEventKind| {
        let mut e = report.clone();
        e.event_id = Uuid::now_v7();
        e.clinic_id = clinic.clone();
        e.patient_id = injection.patient_id.clone();
        e.occurred_at = injection.occurred_at + Duration::days(3);
        e.recorded_at = e.occurred_at;
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
        let mut lot = lots[dice.below(lots.len() as u64) as usize];
        let lidocaine = ["LID-1", "LID-2", "LID-3"][dice.below(3) as usize];
        let concentration = [12.5, 15.0, 20.0, 25.0][dice.below(4) as usize];
        let day0 = start + Duration::days(dice.below(300) as i64);
        let sessions = 3 + dice.below(4);
        let (site, sided) = sites[dice.below(sites.len() as u64) as usize];
        for session in 1..=sessions {
            if dice.chance(0.15) {
                lot = lots[dice.below(lots.len() as u64) as usize];
            }
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
                    p.solution.components[0].lot = lot.parse().unwrap();
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
                if lot == BAD_LOT {
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
    events
}

#[tokio::test]
async fn a_small_infection_cluster_is_found_in_realistic_clinics_without_false_alarms() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("sim.sled"), 64 << 20).unwrap();
    let settings = FindingSettings::default();
    let mut seq = 0;
    let (mut found, mut false_signals, mut injections, mut adverse) = (0, 0, 0, 0);
    let mut still_active = 0;
    println!("| clinic | injections | adverse events | planted lot signalled | false signals |");
    println!("|---|---|---|---|---|");
    for n in 0..CLINICS {
        let events = clinic(n);
        let messages: Vec<StreamMessage> = events
            .iter()
            .map(|e| {
                seq += 1;
                StreamMessage {
                    seq,
                    subject: e.subject().unwrap().to_string(),
                    payload: e.to_json().into(),
                    stored_at: e.recorded_at,
                }
            })
            .collect();
        for batch in messages.chunks(1000) {
            fold_batch(&store, batch, &settings).await.unwrap();
        }
        let clinic_id = format!("sim-{n:02}");
        let signals = store.signals_raised(&clinic_id).unwrap();
        let planted = signals.iter().any(|s| {
            s.dimension == "lot" && s.group == BAD_LOT && s.kind == "infection" && s.active
        });
        still_active += signals
            .iter()
            .filter(|s| {
                s.active && !(s.dimension == "lot" && s.group == BAD_LOT && s.kind == "infection")
            })
            .count();
        let wrong: Vec<String> = signals
            .iter()
            .filter(|s| !(s.dimension == "lot" && s.group == BAD_LOT && s.kind == "infection"))
            .map(|s| {
                let t = s.table;
                format!(
                    "{} {} {}: {}/{} against {}/{}{}",
                    s.dimension,
                    s.group,
                    s.kind,
                    t.group_events,
                    t.group_injections,
                    t.rest_events,
                    t.rest_injections,
                    if s.active { "" } else { ", cleared" }
                )
            })
            .collect();
        let clinic_injections = events
            .iter()
            .filter(|e| matches!(e.payload, Payload::InjectionGiven(_)))
            .count();
        injections += clinic_injections;
        adverse += events.len() - clinic_injections;
        found += usize::from(planted);
        false_signals += wrong.len();
        println!(
            "| {clinic_id} | {clinic_injections} | {} | {} | {} |",
            events.len() - clinic_injections,
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
        "{CLINICS} clinics, {injections} injections, {adverse} adverse events: planted lot signalled (and active at the end) in {:.0}% of clinics, {false_per_clinic:.2} false signals raised per clinic, {:.2} still active at the end",
        detection * 100.0,
        still_active as f64 / CLINICS as f64
    );
    assert_eq!(store.applied_seq().unwrap(), seq);
    assert_eq!(
        store.quarantined().unwrap(),
        0,
        "every simulated event is valid"
    );
    assert!(detection >= 0.9, "detection {detection}");
    assert!(
        false_per_clinic <= 0.2,
        "false signals per clinic {false_per_clinic}"
    );
}
