//! `prolo-audit demo`: seeds a realistic clinic through the recording
//! services, then prints queries to try.
//!
//! Several practitioners (one whose credential lapses, one without a
//! fluoroscopy credential), a few hundred patients through the whole
//! process (screening, examination, baseline imaging, consent, candidacy,
//! plan, a series of sessions with one or two sites each, repeat imaging,
//! outcomes, adjunct therapy), dextrose lots used one after another so that
//! lots change within a series, a recalled lidocaine lot, pain flares after
//! ~7% of injections and infections after ~0.2%, a planted cluster of five
//! infections on one lot, one serious allergic reaction, a misplaced
//! injection, a consent withdrawal and a correction. The last three days are
//! recorded as they happen; the older history as a declared back-fill.

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Duration, Utc};
use clap::Args;
use prolo_recorder::command_for;
use prolo_schemas::EventType;
use serde_json::{Value, json};
use uuid::Uuid;

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Patients to seed.
    #[arg(long, default_value_t = 300)]
    pub(crate) patients: usize,
    /// Clinic id (default `riverside`); with `up --edge`, the clinic the edge records for.
    #[arg(long)]
    pub(crate) clinic: Option<String>,
    /// The token the demo records with: an integration's that may record
    /// for the clinicians it names (`up --demo` mints its own).
    #[arg(long = "demo-token", env = "PROLO_DEMO_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
}

impl DemoArgs {
    /// The clinic seeded.
    pub fn clinic(&self) -> &str {
        self.clinic.as_deref().unwrap_or("riverside")
    }
}

/// A progress bar on stdout while the demo seeds, drawn only on a terminal
/// (a pipe or a file gets the documented lines and nothing else).
struct Progress {
    on_terminal: bool,
}

impl Progress {
    fn on_terminal() -> Self {
        use std::io::IsTerminal;
        Self {
            on_terminal: std::io::stdout().is_terminal(),
        }
    }

    /// Redraws the bar: `done` of `total` patients, `events` recorded.
    fn show(&self, done: usize, total: usize, events: usize) {
        use std::io::Write;
        if !self.on_terminal || total == 0 {
            return;
        }
        const WIDTH: usize = 30;
        let filled = done * WIDTH / total;
        print!(
            "\r  [{}{}] {done}/{total} patients, {events} events",
            "#".repeat(filled),
            " ".repeat(WIDTH - filled)
        );
        let _ = std::io::stdout().flush();
    }

    /// Ends the bar's line.
    fn done(&self) {
        if self.on_terminal {
            println!();
        }
    }
}

/// What the demo recorded that the example queries point at.
pub struct Seeded {
    /// Events recorded.
    pub events: usize,
    /// A patient with the whole process.
    pub patient: String,
    /// The lot with the infection cluster.
    pub cluster_lot: String,
    /// One infection report of the cluster.
    pub infection: Uuid,
    /// The misplaced-injection report.
    pub misplaced: Uuid,
}

/// A tiny deterministic generator, so that every demo is the same clinic.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Records the demo clinic as a clinic would: what happened in the last
/// three days through the single commands, close to its clinical time; the
/// older history as a declared back-fill through the batch command (events
/// `source: batch`, which late documentation does not judge), 1,000 per
/// request. Back-filled events carry idempotency keys, so their ids are
/// known before they are sent and a re-run stores nothing twice.
struct Recorder<'a> {
    client: &'a async_nats::Client,
    /// Sent with every command as `Authorization: Bearer`.
    token: Option<&'a str>,
    /// Signs each live signature's own token, with a fresh sign-in, for
    /// its signer (a signature is the signer's own act).
    signer: Option<&'a prolo_recorder::identity::dev::Provider>,
    clinic: String,
    events: usize,
    /// Events before this are back-filled.
    live_from: DateTime<Utc>,
    /// Back-fill requests not sent yet.
    batch: Vec<Value>,
    /// Where each event was stored, once known.
    stored: std::collections::HashMap<Uuid, u64>,
    /// Signatures waiting for their injection to be stored: (injection, at, patient, signer).
    to_sign: Vec<(Uuid, DateTime<Utc>, String, String)>,
    /// The stream, once opened to read what a signature signs.
    stream: Option<async_nats::jetstream::stream::Stream>,
    /// This run, in the keys (a second demo is a second clinic history).
    run: Uuid,
    keys: u64,
}

impl Recorder<'_> {
    async fn record(
        &mut self,
        event_type: EventType,
        patient: Option<&str>,
        at: DateTime<Utc>,
        actor: (&str, &str),
        payload: Value,
    ) -> Result<Uuid> {
        let Some((_, command)) = command_for(event_type) else {
            bail!("no command for {event_type}")
        };
        let occurred_at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut request = json!({
            "clinic_id": self.clinic,
            "occurred_at": occurred_at,
            "actor": {"id": actor.0, "role": actor.1},
            "payload": payload,
        });
        if let Some(patient) = patient {
            request["patient_id"] = patient.into();
            request["correlation_id"] = format!("demo-{patient}").into();
        }
        self.events += 1;
        if at < self.live_from {
            self.keys += 1;
            let key = format!("demo-{}-{}", self.run, self.keys);
            request["idempotency_key"] = key.clone().into();
            let clinic: prolo_schemas::ClinicId = self.clinic.parse()?;
            let occurred: DateTime<Utc> = occurred_at.parse()?;
            let event_id =
                prolo_recorder::request::derived_event_id(&clinic, event_type, &key, occurred);
            self.batch
                .push(json!({"command": command.verb, "request": request}));
            if self.batch.len() >= prolo_bus::batch::MAX_BATCH {
                self.flush().await?;
            }
            return Ok(event_id);
        }
        // Live: the history it may refer to is stored first.
        self.flush().await?;
        let body = serde_json::to_vec(&request)?;
        let subject = command.subject(&self.clinic);
        let own = match (event_type, self.signer) {
            (EventType::RecordSigned, Some(provider)) => Some(provider.mint(
                actor.0,
                prolo_schemas::ActorRole::Practitioner,
                std::time::Duration::from_secs(600),
            )?),
            _ => None,
        };
        let token = own.as_deref().or(self.token);
        let reply = client_request(self.client, subject, token, body).await?;
        if reply.headers.is_some() {
            bail!(
                "{event_type} refused: {}",
                String::from_utf8_lossy(&reply.payload)
            );
        }
        let recorded: prolo_bus::Recorded =
            serde_json::from_slice(&reply.payload).context("reading the reply")?;
        self.stored.insert(recorded.event_id, recorded.stream_seq);
        Ok(recorded.event_id)
    }

    /// Sends the back-fill waiting, then the signatures its injections
    /// were waiting for.
    async fn flush(&mut self) -> Result<()> {
        while !self.batch.is_empty() {
            let events = std::mem::take(&mut self.batch);
            let body = serde_json::to_vec(&json!({ "events": events }))?;
            let subject = prolo_recorder::commands::batch_subject(&self.clinic);
            let reply = client_request(self.client, subject, self.token, body).await?;
            let answer: prolo_recorder::batch::BatchReply = serde_json::from_slice(&reply.payload)
                .with_context(|| {
                    format!(
                        "the batch was refused: {}",
                        String::from_utf8_lossy(&reply.payload)
                    )
                })?;
            for result in answer.results {
                match (result.recorded, result.error) {
                    (Some(recorded), _) => {
                        self.stored.insert(recorded.event_id, recorded.stream_seq);
                    }
                    (None, Some(error)) => bail!("back-filled event refused: {}", error.message),
                    (None, None) => bail!("the batch answered nothing for an event"),
                }
            }
            Box::pin(self.sign_stored()).await?;
        }
        Ok(())
    }

    /// The practitioner signs an injection (authorship), once it is stored.
    async fn sign(
        &mut self,
        injection: Uuid,
        patient: &str,
        at: DateTime<Utc>,
        signer: &str,
    ) -> Result<()> {
        self.to_sign
            .push((injection, at, patient.to_owned(), signer.to_owned()));
        self.sign_stored().await
    }

    /// Records the signatures whose injection is stored (with its hash);
    /// the others keep waiting for their back-fill to be sent.
    async fn sign_stored(&mut self) -> Result<()> {
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.to_sign)
            .into_iter()
            .partition(|(injection, ..)| self.stored.contains_key(injection));
        self.to_sign = waiting;
        for (injection, at, patient, signer) in ready {
            // A live signature needs its signer's own token: without a way
            // to get one (an integration's token only), it is left out.
            if at >= self.live_from && self.token.is_some() && self.signer.is_none() {
                continue;
            }
            let Some(hash) = self.stored_sha256(injection).await else {
                continue;
            };
            let payload = json!({
                "target": {"event_id": injection, "event_type": "injection.given"},
                "signer_id": signer, "signer_name": signer_name(&signer), "meaning": "authorship",
                "signed_event_sha256": hash,
            });
            Box::pin(self.record(
                EventType::RecordSigned,
                Some(&patient),
                at,
                (&signer, "practitioner"),
                payload,
            ))
            .await?;
        }
        Ok(())
    }

    /// The hash a signature names of a stored event; `None` when the demo
    /// may not read the stream.
    async fn stored_sha256(&mut self, event: Uuid) -> Option<String> {
        let seq = *self.stored.get(&event)?;
        let message = self.stream.as_ref()?.get_raw_message(seq).await.ok()?;
        Some(prolo_schemas::RecordSigned::sha256_of(&message.payload))
    }
}

async fn client_request(
    client: &async_nats::Client,
    subject: String,
    token: Option<&str>,
    body: Vec<u8>,
) -> Result<async_nats::Message> {
    let headers = prolo_recorder::identity::bearer_headers(token);
    // The services may still be starting: retry "no responders" for a while.
    for _ in 0..50 {
        let sent =
            client.request_with_headers(subject.clone(), headers.clone(), body.clone().into());
        match sent.await {
            Ok(reply) => return Ok(reply),
            Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => return Err(anyhow::anyhow!("request to {subject}: {e}")),
        }
    }
    bail!("no recording service answers {subject}: is `prolo-audit up` running?")
}

const PRACTITIONERS: &[&str] = &["dr-hale", "dr-okafor", "dr-lindqvist", "dr-moreau"];
const SITES: &[(&str, Option<&str>)] = &[
    ("KNEE_MCL", Some("left")),
    ("KNEE_IA", Some("right")),
    ("PES_ANSERINUS", Some("left")),
    ("SI_POSTERIOR_LIG", Some("right")),
    ("SHOULDER_SUPRASPINATUS", Some("right")),
    ("LAT_EPICONDYLE", Some("left")),
    ("LUMBAR_INTERSPINOUS_LIG", None),
];
/// Dextrose lots in the order the clinic opened them: lot k is in use from
/// day `LOT_DAYS`·k of the demo's history for `LOT_USE_DAYS` (stock
/// overlaps), and a patient keeps theirs while it lasts, so lots change
/// within a series. The fourth carries the planted infection cluster, inside
/// the signals' 90-day window.
const DEXTROSE_LOTS: &[&str] = &[
    "DX50-2026-101",
    "DX50-2026-105",
    "DX50-2026-109",
    CLUSTER_LOT,
    "DX50-2026-118",
    "DX50-2026-122",
];
const CLUSTER_LOT: &str = "DX50-2026-114";
const LOT_DAYS: i64 = 25;
const LOT_USE_DAYS: i64 = 35;
/// Infections planted after injections of the cluster lot (4–6 in a real one).
const PLANTED_INFECTIONS: usize = 5;
/// Lidocaine lots; `RECALLED_LIDOCAINE` is recalled on day `RECALL_DAY`, and
/// `LIDOCAINE_AFTER_RECALL` replaces it.
const LIDOCAINE_LOTS: &[&str] = &["LID1-88A", RECALLED_LIDOCAINE];
const RECALLED_LIDOCAINE: &str = "LID1-91C";
const LIDOCAINE_AFTER_RECALL: &str = "LID1-95D";
const RECALL_DAY: i64 = 100;
/// Background rates per 1,000 injections: pain flares (5–10% in trials)
/// and infections (0.1–0.3%).
const FLARES_PER_1000: u64 = 70;
const INFECTIONS_PER_1000: u64 = 2;

/// A second site injected in the same session, near the first.
fn companion(key: &str) -> Option<&'static str> {
    match key {
        "KNEE_MCL" | "KNEE_IA" => Some("PES_ANSERINUS"),
        "PES_ANSERINUS" => Some("KNEE_MCL"),
        "SI_POSTERIOR_LIG" => Some("ILIOLUMBAR_LIG"),
        "SHOULDER_SUPRASPINATUS" => Some("SHOULDER_INFRASPINATUS"),
        _ => None,
    }
}

/// The dextrose lot in use on `day` of the demo's history, keeping `kept`
/// while it lasts; of two in use, the newer half the time.
fn dextrose_lot(kept: Option<usize>, day: i64, dice: &mut Dice) -> usize {
    let in_use = |k: usize| {
        let from = LOT_DAYS * k as i64;
        (from..from + LOT_USE_DAYS).contains(&day)
    };
    match kept {
        Some(k) if in_use(k) => k,
        _ => {
            let newest = ((day / LOT_DAYS).max(0) as usize).min(DEXTROSE_LOTS.len() - 1);
            if newest > 0 && in_use(newest - 1) && dice.below(2) == 0 {
                newest - 1
            } else {
                newest
            }
        }
    }
}

/// A plausible score on `instrument` after `improvement` steps (0: baseline).
fn outcome_score(instrument: &str, improvement: u64) -> f64 {
    let step = improvement as f64;
    match instrument {
        "koos" => 45.0 + 10.0 * step,              // 100 best
        "odi" | "quick_dash" => 44.0 - 8.0 * step, // 0 best
        _ => 7.0 - 1.5 * step,                     // pain NRS
    }
}

/// A practitioner's printed name, for signatures.
fn signer_name(practitioner: &str) -> String {
    let surname = practitioner.trim_start_matches("dr-");
    let mut chars = surname.chars();
    let capital: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    format!("Dr. {capital}{}", chars.as_str())
}

fn site(key: &str, laterality: Option<&str>) -> Value {
    match laterality {
        Some(l) => json!({"site_key": key, "laterality": l}),
        None => json!({"site_key": key}),
    }
}

/// Seeds the clinic through the recording services at `nats_url`.
pub async fn seed(
    client: &async_nats::Client,
    args: &DemoArgs,
    token: Option<&str>,
    signer: Option<&prolo_recorder::identity::dev::Provider>,
    stream: Option<async_nats::jetstream::stream::Stream>,
) -> Result<Seeded> {
    let mut r = Recorder {
        client,
        token,
        signer,
        clinic: args.clinic().to_owned(),
        events: 0,
        live_from: Utc::now() - Duration::days(3),
        batch: Vec::new(),
        stored: std::collections::HashMap::new(),
        to_sign: Vec::new(),
        stream,
        run: Uuid::now_v7(),
        keys: 0,
    };
    let mut dice = Dice(0x5eed_0fc1_141c);
    // The procedure around each injection (screening, time-out, observation,
    // outcomes, signatures) draws from its own dice, so that the clinic's
    // patients, lots and adverse events stay those of earlier demos.
    let mut care = Dice(0x0b5e_7ca7_10f5);
    let start = Utc::now() - Duration::days(150);
    // Credentials are recorded by the credentialing office (compliance).
    let admin = ("credentialing-office", "compliance");

    // Practitioners: dr-moreau's credential lapsed at the end of August.
    for p in PRACTITIONERS {
        let until = if *p == "dr-moreau" {
            "2026-08-31"
        } else {
            "2028-12-31"
        };
        r.record(EventType::PractitionerCredentialed, None, start - Duration::days(30), admin, json!({
            "practitioner_id": p, "credential": "reconstructive_therapy", "issuer": "Hackett Hemwall Patterson Foundation",
            "valid_from": "2024-01-01", "valid_until": until,
        })).await?;
        // Guided injections need their own credential; dr-moreau never
        // trained in fluoroscopy (a finding when he uses it).
        let mut guidance = vec!["ultrasound_guidance"];
        if *p != "dr-moreau" {
            guidance.push("fluoroscopy_guidance");
        }
        for credential in guidance {
            r.record(EventType::PractitionerCredentialed, None, start - Duration::days(30), admin, json!({
                "practitioner_id": p, "credential": credential, "issuer": "Musculoskeletal image-guided injection course",
                "valid_from": "2024-01-01", "valid_until": "2028-12-31",
            })).await?;
        }
    }

    // A lidocaine lot is recalled on day RECALL_DAY; no injection uses it after.
    let recall_at = start + Duration::days(RECALL_DAY);
    r.record(
        EventType::LotRecalled,
        None,
        recall_at,
        ("safety-officer", "safety"),
        json!({
            "lot": RECALLED_LIDOCAINE, "agent": "lidocaine",
            "reason": "Manufacturer recall: particulate matter found in retained samples.",
        }),
    )
    .await?;

    let mut first_patient = String::new();
    let mut cluster_infections = Vec::new();
    let mut cluster_injections = 0_usize;
    let mut misplaced = Uuid::nil();
    let mut serious = Uuid::nil();
    let mut withdrawn = false;
    let mut corrected = false;
    // Adverse events after injections draw from their own dice.
    let mut harm = Dice(0x0ad5_e7e1_7a11);
    let progress = Progress::on_terminal();
    for n in 0..args.patients {
        let patient = format!("P-{:04}", 1000 + n);
        if first_patient.is_empty() {
            first_patient = patient.clone();
        }
        let doctor = *dice.pick(PRACTITIONERS);
        let me = (doctor, "practitioner");
        let (key, side) = *dice.pick(SITES);
        // Half the patients have a second site injected in each session.
        let mut sites = vec![(key, side)];
        if let Some(second) = companion(key)
            && dice.below(2) == 0
        {
            sites.push((second, side));
        }
        let scopes: Vec<Value> = sites.iter().map(|(k, l)| site(k, *l)).collect();
        let day0 = start + Duration::days(dice.below(130) as i64) + Duration::hours(9);
        let region = match key {
            k if k.starts_with("KNEE") || k == "PES_ANSERINUS" => "knee_region",
            k if k.starts_with("SHOULDER") => "shoulder_region",
            "LAT_EPICONDYLE" => "elbow_region",
            "LUMBAR_INTERSPINOUS_LIG" => "lumbar_spine",
            _ => "sacroiliac_joint",
        };
        let palpation: Vec<Value> = scopes
            .iter()
            .map(|s| json!({"site": s, "tender": true, "reproduces_pain": true}))
            .collect();
        let exam = r.record(EventType::ExaminationDone, Some(&patient), day0, me, json!({
            "complaint_region": region,
            "palpation_findings": palpation,
            "range_of_motion": [{"region": region, "movement": "flexion", "degrees": 90 + dice.below(40)}],
            "pain_nrs": 4 + dice.below(5),
            "history_summary": "Chronic pain for over a year; physical therapy helped little.",
            "underlying_cause": *dice.pick(&["ligament_laxity", "tendinopathy", "enthesopathy"]),
        })).await?;
        let modality = if key == "LUMBAR_INTERSPINOUS_LIG" || key == "SI_POSTERIOR_LIG" {
            "mri"
        } else {
            "ultrasound"
        };
        r.record(EventType::ImagingRecorded, Some(&patient), day0 + Duration::minutes(30), me, json!({
            "modality": modality, "purpose": "baseline", "region": region, "findings": "Degenerative changes consistent with the complaint.",
            "study_reference": format!("PACS-{}", 50_000 + n),
        })).await?;
        let consent = r.record(EventType::ConsentGiven, Some(&patient), day0 + Duration::minutes(50), me, json!({
            "sites": scopes, "solutions": ["dextrose", "lidocaine"], "series": true,
            "risks_disclosed": ["pain_flare", "allergy_to_anaesthetic", "infection", "nerve_injury", "bleeding", "dural_puncture", "no_effect"],
            "alternatives_discussed": ["no_treatment", "physical_therapy", "steroid_injection"],
            "investigational_status_disclosed": true,
            "valid_from": day0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "valid_until": (day0 + Duration::days(365)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })).await?;
        r.record(EventType::CandidacyAssessed, Some(&patient), day0 + Duration::minutes(55), me, json!({
            "candidate": true, "rationale": "Chronic symptoms with laxity on examination; no contraindication.", "examination_event_id": exam,
        })).await?;
        let sessions = 3 + dice.below(3) as u8;
        let interval = *dice.pick(&[21_i64, 28, 42]);
        let plan = r.record(EventType::TreatmentPlanned, Some(&patient), day0 + Duration::hours(1), me, json!({
            "sessions_planned": sessions, "interval_days": interval, "target_sites": scopes, "solutions": ["dextrose", "lidocaine"],
        })).await?;
        let instrument = match region {
            "knee_region" => "koos",
            "lumbar_spine" | "sacroiliac_joint" => "odi",
            "shoulder_region" | "elbow_region" => "quick_dash",
            _ => "pain_nrs",
        };
        // Not every clinic screens on a form, nor asks for outcomes.
        if care.below(10) != 0 {
            let mut anticoagulants = Vec::new();
            if care.below(6) == 0 {
                anticoagulants.push(json!({"agent": *care.pick(&["aspirin", "apixaban", "clopidogrel"]), "held": false}));
            }
            let allergies = if care.below(12) == 0 {
                json!([{"substance": "latex", "reaction": "urticaria"}])
            } else {
                json!([])
            };
            r.record(EventType::ScreeningDone, Some(&patient), day0 + Duration::minutes(40), me, json!({
                "allergies": allergies, "anticoagulants": anticoagulants, "pregnancy": *care.pick(&["not_applicable", "not_pregnant"]),
                "immunosuppressed": false, "skin_infection_at_site": false, "contraindications": [], "decision": "proceed",
            })).await?;
        }
        let reports_outcomes = care.below(3) != 0;
        if reports_outcomes {
            r.record(EventType::OutcomeReported, Some(&patient), day0 + Duration::minutes(45), me, json!({
                "instrument": instrument, "score": outcome_score(instrument, 0), "weeks_since_series_start": 0, "region": region,
            })).await?;
        }
        let guidance = match key {
            // Now and then a spinal site by palpation alone: a finding.
            "LUMBAR_INTERSPINOUS_LIG" if dice.below(5) == 0 => "palpation",
            "LUMBAR_INTERSPINOUS_LIG" | "SI_POSTERIOR_LIG" => "fluoroscopy",
            _ => *dice.pick(&["palpation", "ultrasound"]),
        };
        let mut lot = None;
        let mut lidocaine = *dice.pick(LIDOCAINE_LOTS);
        // Each session's first injection, and every injection with its lot.
        let mut injections: Vec<(Uuid, DateTime<Utc>)> = Vec::new();
        let mut given: Vec<(Uuid, DateTime<Utc>, &str)> = Vec::new();
        for session in 1..=sessions {
            let at = day0 + Duration::days(interval * i64::from(session));
            if at > Utc::now() - Duration::days(1) {
                break;
            }
            if session == 4 {
                r.record(EventType::ImagingRecorded, Some(&patient), at - Duration::days(2), me, json!({
                    "modality": modality, "purpose": "follow_up", "region": region, "findings": "Improved ligament thickness.",
                    "study_reference": format!("PACS-{}-{session}", 50_000 + n),
                })).await?;
            }
            let day = (at - start).num_days();
            let k = dextrose_lot(lot, day, &mut dice);
            lot = Some(k);
            if at >= recall_at && lidocaine == RECALLED_LIDOCAINE {
                lidocaine = LIDOCAINE_AFTER_RECALL;
            }
            if care.below(15) != 0 {
                r.record(EventType::ProcedureTimeOut, Some(&patient), at - Duration::minutes(5), me, json!({
                    "identity_verified": true, "identifiers_used": ["name", "date_of_birth"], "sites": scopes,
                    "site_marked": true, "time_out_performed": true,
                    "participants": [{"id": doctor, "role": "practitioner"}, {"id": "rn-okafor", "role": "nurse"}],
                })).await?;
            }
            for (point, (site_key, site_side)) in sites.iter().enumerate() {
                let at = at + Duration::minutes(6 * point as i64);
                let volume = if *site_key == "KNEE_IA" { 8.0 } else { 2.5 };
                let spinal = matches!(*site_key, "LUMBAR_INTERSPINOUS_LIG" | "ILIOLUMBAR_LIG");
                let injection = r.record(EventType::InjectionGiven, Some(&patient), at, me, json!({
                    "site": site(site_key, *site_side),
                    "solution": {"components": [
                        {"agent": "dextrose", "concentration_pct": 15.0, "lot": DEXTROSE_LOTS[k], "lot_expiry": "2027-06-30"},
                        {"agent": "lidocaine", "concentration_pct": 0.5, "lot": lidocaine, "lot_expiry": "2027-01-31"},
                    ]},
                    "volume_ml": volume, "needle": {"gauge": if spinal { 22 } else { 25 }, "length_mm": if spinal { 90 } else { 38 }},
                    "guidance": guidance, "session_number": session, "practitioner_id": doctor, "aseptic_preparation": true,
                    "treatment_plan_event_id": plan,
                })).await?;
                if point == 0 {
                    injections.push((injection, at));
                }
                given.push((injection, at, DEXTROSE_LOTS[k]));
            }
            if care.below(2) == 0 {
                r.record(EventType::ObservationCompleted, Some(&patient), at + Duration::minutes(25), ("rn-okafor", "nurse"), json!({
                    "minutes": 15 + care.below(16), "discharged_well": true,
                    "vital_signs": {"systolic_mmhg": 115 + care.below(25), "diastolic_mmhg": 70 + care.below(15), "heart_rate_bpm": 60 + care.below(30)},
                })).await?;
            }
            // The practitioner signs some injections the same day (authorship).
            if care.below(3) == 0
                && let Some((injection, _)) = injections.last().copied()
            {
                r.sign(injection, &patient, at + Duration::hours(2), doctor)
                    .await?;
            }
        }
        let sessions_given = injections.len() as u8;
        let series_end = day0 + Duration::days(interval * i64::from(sessions) + 14);
        if sessions_given == sessions && series_end < Utc::now() {
            if reports_outcomes {
                r.record(EventType::OutcomeReported, Some(&patient), series_end - Duration::minutes(10), me, json!({
                    "instrument": instrument, "score": outcome_score(instrument, 1 + care.below(3)),
                    "weeks_since_series_start": (interval * i64::from(sessions) + 14) / 7, "region": region,
                    "treatment_plan_event_id": plan,
                })).await?;
            }
            r.record(EventType::SeriesCompleted, Some(&patient), series_end, me, json!({
                "treatment_plan_event_id": plan, "sessions_given": sessions_given,
                "reason": *care.pick(&["goals_met", "goals_met", "goals_met", "no_effect", "patient_choice"]),
            })).await?;
        }
        // What followed each injection: the expected pain flares, rare
        // background infections, and the planted cluster on one lot.
        for (injection, at, dextrose) in given.iter().copied() {
            let link = json!({"event_id": injection, "occurred_at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)});
            if harm.below(1000) < FLARES_PER_1000 {
                let onset = at + Duration::hours(8);
                r.record(EventType::AdverseEventReported, Some(&patient), onset + Duration::hours(20), me, json!({
                    "kind": "pain_flare", "grade": 1, "serious": false, "seriousness_criteria": [],
                    "onset_at": onset.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "linked_injection": link,
                    "outcome": "resolved", "description": "Aching at the injection points for two days; paracetamol.",
                })).await?;
            }
            let planted = dextrose == CLUSTER_LOT && {
                cluster_injections += 1;
                cluster_infections.len() < PLANTED_INFECTIONS && cluster_injections % 9 == 4
            };
            if planted || harm.below(1000) < INFECTIONS_PER_1000 {
                let onset = at + Duration::days(2);
                let report = r.record(EventType::AdverseEventReported, Some(&patient), onset + Duration::hours(3), me, json!({
                    "kind": "infection", "infection": {"signs": ["erythema", "warmth", "swelling"], "culture_taken": true, "depth": "superficial"},
                    "grade": 2, "serious": false, "seriousness_criteria": [],
                    "onset_at": onset.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "linked_injection": link,
                    "outcome": "ongoing", "description": "Red, warm swelling at the injection point; antibiotics started.",
                })).await?;
                r.record(EventType::AdverseEventUpdated, Some(&patient), onset + Duration::days(5), me, json!({
                    "adverse_event_id": report, "causality": "probable", "status": "closed", "outcome": "resolved",
                })).await?;
                if planted {
                    cluster_infections.push(report);
                }
            }
        }
        // One serious event: an allergic reaction to the anaesthetic, admitted overnight.
        if serious.is_nil()
            && n >= 20
            && let Some((injection, at)) = injections.first().copied()
        {
            let onset = at + Duration::minutes(10);
            serious = r.record(EventType::AdverseEventReported, Some(&patient), onset + Duration::hours(2), me, json!({
                "kind": "allergic_reaction", "grade": 3, "serious": true, "seriousness_criteria": ["hospitalisation"],
                "onset_at": onset.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "aware_at": onset.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "linked_injection": {"event_id": injection, "occurred_at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
                "outcome": "recovering", "description": "Urticaria and wheeze ten minutes after the injection; adrenaline given, admitted overnight.",
            })).await?;
            r.record(EventType::AdverseEventUpdated, Some(&patient), onset + Duration::days(2), me, json!({
                "adverse_event_id": serious, "causality": "probable", "status": "closed", "outcome": "resolved",
            })).await?;
        }
        // One misplaced injection: into the pes anserinus instead of the MCL.
        if misplaced.is_nil()
            && key == "KNEE_MCL"
            && let Some((injection, at)) = injections.get(1).copied()
        {
            misplaced = r.record(EventType::AdverseEventReported, Some(&patient), at + Duration::hours(1), me, json!({
                "kind": "misplaced_injection",
                "misplacement": {"intended_site": site("KNEE_MCL", side), "actual_site": site("PES_ANSERINUS", side), "route": "wrong_structure"},
                "grade": 1, "serious": false, "seriousness_criteria": [],
                "onset_at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "linked_injection": {"event_id": injection, "occurred_at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
                "outcome": "resolved", "description": "Palpation landmark missed; noticed at once.",
            })).await?;
            r.record(EventType::AdverseEventUpdated, Some(&patient), at + Duration::days(1), me, json!({
                "adverse_event_id": misplaced, "causality": "certain", "status": "closed", "outcome": "resolved",
            })).await?;
        }
        // One consent withdrawal, one correction.
        if !withdrawn && injections.len() >= 2 {
            r.record(
                EventType::ConsentWithdrawn,
                Some(&patient),
                injections[1].1 + Duration::days(3),
                me,
                json!({
                    "consent_event_id": consent, "reason": "Moving abroad; stopping the series.",
                }),
            )
            .await?;
            withdrawn = true;
        } else if !corrected && injections.len() >= 2 {
            let (wrong, at) = injections[0];
            let (key, side) = sites[0];
            r.record(EventType::RecordCorrected, Some(&patient), at, admin, json!({
                "target": {"event_id": wrong, "event_type": "injection.given"},
                "reason": "Volume transcribed wrongly from the procedure note.",
                "corrected_payload": {
                    "site": site(key, side),
                    "solution": {"components": [{"agent": "dextrose", "concentration_pct": 15.0, "lot": given[0].2, "lot_expiry": "2027-06-30"}]},
                    "volume_ml": 1.5, "needle": {"gauge": 25, "length_mm": 38}, "guidance": guidance,
                    "session_number": 1, "practitioner_id": doctor, "aseptic_preparation": true,
                    "treatment_plan_event_id": plan,
                },
            })).await?;
            corrected = true;
        }
        if !injections.is_empty() {
            r.record(EventType::AdjunctTherapyRecommended, Some(&patient), injections[0].1 + Duration::hours(1), me, json!({
                "therapies": [*dice.pick(&["stretching", "yoga", "physical_therapy", "strength_programme"])],
            })).await?;
        }
        progress.show(n + 1, args.patients, r.events);
    }
    r.flush().await?;
    progress.done();
    Ok(Seeded {
        events: r.events,
        patient: first_patient,
        cluster_lot: CLUSTER_LOT.into(),
        infection: cluster_infections.first().copied().unwrap_or_default(),
        misplaced,
    })
}

/// Prints queries to try against what was seeded.
/// `token` is how to get a compliance token in a shell, e.g. `$(cat data/api-token-compliance)`.
pub fn print_examples(seeded: &Seeded, clinic: &str, api: &str, token: &str) {
    println!();
    println!("seeded {} events. Try:", seeded.events);
    println!("  export PROLO_API_URL={api} PROLO_API_TOKEN={token}");
    println!(
        "  prolo-audit history --clinic {clinic} --patient {}",
        seeded.patient
    );
    println!(
        "  prolo-audit summary --clinic {clinic} --patient {}",
        seeded.patient
    );
    println!(
        "  prolo-audit investigate --clinic {clinic} --adverse-event {}",
        seeded.infection
    );
    println!(
        "  prolo-audit investigate --clinic {clinic} --adverse-event {}",
        seeded.misplaced
    );
    println!(
        "  prolo-audit lot-trace --clinic {clinic} --lot {} --format csv",
        seeded.cluster_lot
    );
    println!("  prolo-audit signals --clinic {clinic}");
    println!("  prolo-audit findings --clinic {clinic} --rule no_valid_credential");
    println!(
        "  prolo-audit findings --clinic {clinic} --rule axial_site_by_palpation_only --status open"
    );
    println!(
        "  prolo-audit access-log --clinic {clinic} --patient {}",
        seeded.patient
    );
    println!(
        "  curl -s -H \"Authorization: Bearer $PROLO_API_TOKEN\" {api}/v1/clinics/{clinic}/signals"
    );
}
