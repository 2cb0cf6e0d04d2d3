//! The payload of every event type.
//!
//! Plain serde types: what the clinic recorded, nothing derived. Bounds come
//! from [`crate::bounds`] and appear in the generated JSON Schema too; the
//! rules that tie fields together live in `validate.rs`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    EventType, LotNumber, PatientId, PractitionerId, PrincipalId,
    bounds::*,
    sites::{Laterality, Region, SiteKey},
};

/// An injection or examination site: a key from the controlled list and,
/// where the site has sides, which side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// Key from the clinic's controlled site list.
    pub site_key: SiteKey,
    /// Required for sites that have sides (on a consent: absent means
    /// either side), absent for midline sites; optional for `OTHER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub laterality: Option<Laterality>,
    /// For `OTHER` only, and required there: the site's SNOMED CT
    /// body-structure concept id (digits, with its check digit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[1-9][0-9]{5,17}$"))]
    pub snomed_code: Option<String>,
    /// For `OTHER` only, and required there: the site in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = SHORT_TEXT_MAX_CHARS))]
    pub description: Option<String>,
}

impl Site {
    /// A listed site, on a side or none.
    pub fn listed(site_key: SiteKey, laterality: Option<Laterality>) -> Self {
        Site {
            site_key,
            laterality,
            snomed_code: None,
            description: None,
        }
    }
}

/// A credential a practitioner can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// Trained and allowed to give reconstructive therapy (prolotherapy).
    ReconstructiveTherapy,
    /// Trained in ultrasound-guided injection.
    UltrasoundGuidance,
    /// Trained in fluoroscopy-guided injection.
    FluoroscopyGuidance,
}

/// `practitioner.credentialed`: a practitioner holds a credential for a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PractitionerCredentialed {
    /// Who holds the credential.
    pub practitioner_id: PractitionerId,
    /// What the credential allows.
    pub credential: CredentialKind,
    /// Who issued it (society, board, course).
    #[schemars(length(min = 1, max = SHORT_TEXT_MAX_CHARS))]
    pub issuer: String,
    /// First day it is valid.
    pub valid_from: NaiveDate,
    /// Last day it is valid; absent when it does not lapse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<NaiveDate>,
}

/// A solution agent.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Agent {
    /// Hypertonic dextrose, the usual proliferant.
    Dextrose,
    /// Local anaesthetic.
    Lidocaine,
    /// Local anaesthetic.
    Procaine,
    /// Long-acting local anaesthetic.
    Bupivacaine,
    /// Long-acting local anaesthetic.
    Ropivacaine,
    /// Normal saline diluent.
    Saline,
    /// Sodium morrhuate, an added sclerosant.
    SodiumMorrhuate,
    /// Glycerin (part of P2G).
    Glycerin,
    /// Phenol (part of P2G).
    Phenol,
    /// Autologous platelet-rich plasma: no concentration applies.
    Prp,
    /// An agent not on the list: the component names it (`agent_name`).
    Other,
}

impl Agent {
    /// Highest plausible concentration (%) of this agent in a syringe, or
    /// `None` where a concentration does not apply (PRP). Dextrose stock is
    /// 50%; lidocaine and procaine are used up to ~2%; bupivacaine is
    /// supplied at 0.25, 0.5 and 0.75% (0.75% the strongest marketed);
    /// ropivacaine at 0.2, 0.5, 0.75 and 1% (product labels); normal saline is
    /// 0.9%; sodium morrhuate is supplied at 5%; P2G stock is glycerin 25% and
    /// phenol 2.5%; an agent not on the list has only the general bound.
    pub fn max_concentration_pct(self) -> Option<f64> {
        match self {
            Agent::Dextrose => Some(50.0),
            Agent::Lidocaine | Agent::Procaine => Some(2.0),
            Agent::Bupivacaine => Some(0.75),
            Agent::Ropivacaine => Some(1.0),
            Agent::Other => Some(CONCENTRATION_PCT_MAX),
            Agent::Saline => Some(0.9),
            Agent::SodiumMorrhuate => Some(5.0),
            Agent::Glycerin => Some(25.0),
            Agent::Phenol => Some(2.5),
            Agent::Prp => None,
        }
    }

    /// The most of this local anaesthetic a patient should receive in one
    /// session, in mg, or `None` for an agent that is not one. These are the
    /// labels' maximum single doses for an adult without adrenaline, not
    /// weighed per kg (the contract records no weight): lidocaine 300 mg
    /// (4.5 mg/kg, at most 300 mg: UK SmPC, Xylocaine US label), bupivacaine
    /// 150 mg (UK SmPC, Marcain; the US label allows 175 mg), ropivacaine
    /// 225 mg (UK SmPC, Naropin, field block), procaine 1,000 mg (US label,
    /// Novocain). A mixture is judged by the sum of each agent's share of
    /// its maximum (their toxicity adds up).
    pub fn max_session_dose_mg(self) -> Option<f64> {
        match self {
            Agent::Lidocaine => Some(300.0),
            Agent::Bupivacaine => Some(150.0),
            Agent::Ropivacaine => Some(225.0),
            Agent::Procaine => Some(1000.0),
            _ => None,
        }
    }
}

/// `consent.given` (schema version 2): the patient consented to a scope for a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentGiven {
    /// Sites the consent covers (at least one), each with its side where
    /// the site has sides (absent: either side, as version 1 recorded).
    #[schemars(length(min = 1))]
    pub sites: Vec<Site>,
    /// Agents the consent covers (at least one).
    #[schemars(length(min = 1))]
    pub solutions: Vec<Agent>,
    /// Whether the patient consented to a series rather than one session.
    pub series: bool,
    /// Risks explained to the patient (at least one).
    #[schemars(length(min = 1))]
    pub risks_disclosed: Vec<Risk>,
    /// Alternatives discussed.
    #[serde(default)]
    pub alternatives_discussed: Vec<Alternative>,
    /// The patient was told many insurers consider the therapy investigational.
    pub investigational_status_disclosed: bool,
    /// Start of the period the consent covers.
    pub valid_from: DateTime<Utc>,
    /// End of that period; absent when open-ended (until withdrawn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<DateTime<Utc>>,
    /// Reference of the signed form in the EHR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = SHORT_TEXT_MAX_CHARS))]
    pub form_reference: Option<String>,
}

/// A risk named on the consent form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Risk {
    PainFlare,
    AllergyToAnaesthetic,
    Infection,
    NerveInjury,
    MuscleInjury,
    Bleeding,
    Pneumothorax,
    SpinalCordInjury,
    DuralPuncture,
    TendonRupture,
    NoEffect,
}

/// An alternative to the therapy discussed with the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Alternative {
    NoTreatment,
    PhysicalTherapy,
    SteroidInjection,
    Surgery,
    Medication,
}

/// `consent.withdrawn`: the patient withdrew a consent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentWithdrawn {
    /// The `consent.given` event withdrawn.
    pub consent_event_id: Uuid,
    /// Why, when the patient said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = TEXT_MAX_CHARS))]
    pub reason: Option<String>,
}

/// One palpation finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PalpationFinding {
    /// Where.
    pub site: Site,
    /// Tender to palpation.
    pub tender: bool,
    /// Reproduces the patient's pain (the "jump sign").
    pub reproduces_pain: bool,
}

/// A movement whose range is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Movement {
    Flexion,
    Extension,
    Abduction,
    Adduction,
    InternalRotation,
    ExternalRotation,
    LateralFlexion,
    Rotation,
    Dorsiflexion,
    Plantarflexion,
    Inversion,
    Eversion,
}

impl Movement {
    /// The degrees a measurement of this movement can hold: from the largest
    /// lag or contracture to the largest arc seen in hypermobile joints
    /// (normal maxima from the AAOS tables, plus a margin; a judgement call,
    /// see `bounds.rs`). Only extension and dorsiflexion are measured below
    /// zero (an extension lag, a flexion contracture, an equinus).
    pub fn degrees_range(self) -> (i16, i16) {
        match self {
            Movement::Flexion | Movement::Abduction => (0, ROM_DEGREES_MAX),
            Movement::Extension => (ROM_LAG_DEGREES_MIN, 90),
            Movement::Dorsiflexion => (-45, 60),
            Movement::Adduction | Movement::Plantarflexion | Movement::LateralFlexion => (0, 90),
            Movement::InternalRotation | Movement::ExternalRotation | Movement::Rotation => {
                (0, 120)
            }
            Movement::Inversion | Movement::Eversion => (0, 60),
        }
    }
}

/// One range-of-motion measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RangeOfMotion {
    /// The joint or spinal region.
    pub region: Region,
    /// Side, for paired joints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub laterality: Option<Laterality>,
    /// The movement.
    pub movement: Movement,
    /// Measured arc in degrees; negative where it means a lag or a
    /// contracture (an extension lag, an equinus); bounds per movement in
    /// [`Movement::degrees_range`].
    #[schemars(range(min = ROM_DEGREES_MIN, max = ROM_DEGREES_MAX))]
    pub degrees: i16,
}

/// The cause the examiner holds responsible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum UnderlyingCause {
    LigamentLaxity,
    Tendinopathy,
    Enthesopathy,
    Osteoarthritis,
    JointInstability,
    Other,
}

/// `examination.done`: a clinical examination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExaminationDone {
    /// Region of the complaint.
    pub complaint_region: Region,
    /// Palpation findings.
    #[serde(default)]
    pub palpation_findings: Vec<PalpationFinding>,
    /// Range of motion per movement.
    #[serde(default)]
    pub range_of_motion: Vec<RangeOfMotion>,
    /// Pain now, 0–10 (NRS, LOINC 72514-3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = PAIN_NRS_MIN, max = PAIN_NRS_MAX))]
    pub pain_nrs: Option<u8>,
    /// Summary of the history interview.
    #[schemars(length(min = 1, max = TEXT_MAX_CHARS))]
    pub history_summary: String,
    /// The cause the examiner holds responsible.
    pub underlying_cause: UnderlyingCause,
}

/// Imaging modality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Modality {
    XRay,
    Ultrasound,
    Mri,
    Ct,
}

/// Why a study was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImagingPurpose {
    /// Before treatment.
    Baseline,
    /// A periodic repeat during or after the series.
    FollowUp,
}

/// `imaging.recorded`: an imaging study and its findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImagingRecorded {
    /// Modality.
    pub modality: Modality,
    /// Baseline or follow-up.
    pub purpose: ImagingPurpose,
    /// Region imaged.
    pub region: Region,
    /// Side, for paired joints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub laterality: Option<Laterality>,
    /// What the study showed.
    #[schemars(length(min = 1, max = TEXT_MAX_CHARS))]
    pub findings: String,
    /// Accession number or PACS reference of the study.
    #[schemars(length(min = 1, max = SHORT_TEXT_MAX_CHARS))]
    pub study_reference: String,
}

/// `candidacy.assessed`: is the patient a candidate for the therapy, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CandidacyAssessed {
    /// The decision.
    pub candidate: bool,
    /// Why.
    #[schemars(length(min = 1, max = TEXT_MAX_CHARS))]
    pub rationale: String,
    /// The examination the decision rests on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub examination_event_id: Option<Uuid>,
}

/// `treatment.planned` (schema version 2): a series of sessions at target sites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TreatmentPlanned {
    /// Number of sessions planned.
    #[schemars(range(min = SESSION_NUMBER_MIN, max = SESSION_NUMBER_MAX))]
    pub sessions_planned: u8,
    /// Days between sessions.
    #[schemars(range(min = INTERVAL_DAYS_MIN, max = INTERVAL_DAYS_MAX))]
    pub interval_days: u16,
    /// Sites to inject (at least one).
    #[schemars(length(min = 1))]
    pub target_sites: Vec<Site>,
    /// Agents planned.
    #[serde(default)]
    pub solutions: Vec<Agent>,
}

/// One component of an injected solution, with its own lot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SolutionComponent {
    /// The agent.
    pub agent: Agent,
    /// Final concentration in the syringe, % w/v; absent for PRP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = CONCENTRATION_PCT_MAX), extend("exclusiveMinimum" = CONCENTRATION_PCT_ABOVE))]
    pub concentration_pct: Option<f64>,
    /// For `other` only, and required there: the agent's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = SHORT_TEXT_MAX_CHARS))]
    pub agent_name: Option<String>,
    /// Manufacturer's lot (for PRP: the preparation kit's lot).
    pub lot: LotNumber,
    /// Last day the lot may be used.
    pub lot_expiry: NaiveDate,
    /// The vial it was drawn from, when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vial: Option<Vial>,
}

/// Single- or multi-dose vial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum VialKind {
    SingleDose,
    MultiDose,
}

/// The vial a component was drawn from: a multi-dose vial opened days ago
/// is how contamination inside a clinic happens (CDC: discard 28 days after
/// opening unless the manufacturer says otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vial {
    /// Single- or multi-dose.
    pub kind: VialKind,
    /// When it was first opened (required for a multi-dose vial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<DateTime<Utc>>,
}

/// Skin antiseptic used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum SkinAntiseptic {
    ChlorhexidineAlcohol,
    PovidoneIodine,
    Alcohol,
    Other,
    None,
}

/// How the injection was prepared: who drew up the syringe and when, the
/// skin antiseptic, mask and (for ultrasound guidance) a sterile probe cover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Preparation {
    /// Who drew up the syringe.
    #[schemars(length(min = 1, max = SHORT_TEXT_MAX_CHARS))]
    pub prepared_by: String,
    /// When.
    pub prepared_at: DateTime<Utc>,
    /// Skin antiseptic.
    pub skin_antiseptic: SkinAntiseptic,
    /// The injector wore a mask.
    pub mask_worn: bool,
    /// For ultrasound guidance: a sterile probe cover was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sterile_probe_cover: Option<bool>,
}

/// The solution injected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Solution {
    /// Its components (at least one), each with its lot.
    #[schemars(length(min = 1))]
    pub components: Vec<SolutionComponent>,
}

/// The needle used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Needle {
    /// Gauge (G).
    #[schemars(range(min = NEEDLE_GAUGE_MIN, max = NEEDLE_GAUGE_MAX))]
    pub gauge: u8,
    /// Length in mm.
    #[schemars(range(min = NEEDLE_LENGTH_MM_MIN, max = NEEDLE_LENGTH_MM_MAX))]
    pub length_mm: u16,
}

/// How the needle was guided.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Guidance {
    Palpation,
    Ultrasound,
    Fluoroscopy,
    Ct,
}

/// `injection.given` (schema version 3): one injection at one site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InjectionGiven {
    /// Where.
    pub site: Site,
    /// What, with lots.
    pub solution: Solution,
    /// How much, mL.
    #[schemars(range(max = VOLUME_ML_MAX), extend("exclusiveMinimum" = VOLUME_ML_ABOVE))]
    pub volume_ml: f64,
    /// With what needle.
    pub needle: Needle,
    /// How the needle was guided.
    pub guidance: Guidance,
    /// Session number within the series.
    #[schemars(range(min = SESSION_NUMBER_MIN, max = SESSION_NUMBER_MAX))]
    pub session_number: u8,
    /// Who injected (may differ from the actor who recorded it).
    pub practitioner_id: PractitionerId,
    /// Skin preparation, sterile gloves and a single-use needle were used.
    pub aseptic_preparation: bool,
    /// How it was prepared, in detail (version 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preparation: Option<Preparation>,
    /// The `treatment.planned` event this injection belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treatment_plan_event_id: Option<Uuid>,
}

/// What kind of adverse event.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum AdverseEventKind {
    MisplacedInjection,
    Infection,
    PainFlare,
    NerveInjury,
    Pneumothorax,
    DuralPunctureHeadache,
    AllergicReaction,
    VasovagalReaction,
    Haematoma,
    /// Local anaesthetic systemic toxicity (LAST).
    LocalAnaestheticSystemicToxicity,
    Other,
}

/// Where a misplaced injection went instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum MisplacementRoute {
    WrongStructure,
    Intravascular,
    Intrathecal,
    IntraArticular,
    Other,
}

/// Details of a misplaced injection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Misplacement {
    /// The site the practitioner meant.
    pub intended_site: Site,
    /// Where it went, when that is a listed site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_site: Option<Site>,
    /// The route it took.
    pub route: MisplacementRoute,
}

/// A sign of infection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum InfectionSign {
    Erythema,
    Warmth,
    Swelling,
    Purulence,
    Fever,
    IncreasingPain,
}

/// Details of an infection at the injection site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Infection {
    /// Signs observed (at least one).
    #[schemars(length(min = 1))]
    pub signs: Vec<InfectionSign>,
    /// A culture was taken.
    pub culture_taken: bool,
    /// How deep, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<InfectionDepth>,
    /// The organism grown, when known (e.g. `Staphylococcus aureus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = SHORT_TEXT_MAX_CHARS))]
    pub organism: Option<String>,
}

/// How deep an infection reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum InfectionDepth {
    Superficial,
    Deep,
    SepticArthritis,
}

/// A MedDRA term: the code and the dictionary version it is from. No
/// dictionary ships with prolo-audit (MedDRA is licensed); both are text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MeddraTerm {
    /// The preferred-term code (8 digits).
    #[schemars(regex(pattern = r"^[0-9]{8}$"))]
    pub pt_code: String,
    /// The MedDRA version, e.g. `27.1`.
    #[schemars(length(min = 1, max = 20))]
    pub version: String,
}

/// ICH E2A seriousness criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum SeriousnessCriterion {
    Death,
    LifeThreatening,
    Hospitalisation,
    PersistentDisability,
    CongenitalAnomaly,
    MedicallyImportant,
}

/// FHIR AdverseEvent outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Outcome {
    Recovering,
    Resolved,
    ResolvedWithSequelae,
    Ongoing,
    Fatal,
    Unknown,
}

/// The injection an adverse event follows, with its clinical time so that
/// "onset not before the injection" can be checked without a lookup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkedInjection {
    /// The `injection.given` event.
    pub event_id: Uuid,
    /// Its `occurred_at`.
    pub occurred_at: DateTime<Utc>,
}

/// `adverse_event.reported` (schema version 2): something went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdverseEventReported {
    /// What kind.
    pub kind: AdverseEventKind,
    /// Required for a misplaced injection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misplacement: Option<Misplacement>,
    /// Required for an infection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infection: Option<Infection>,
    /// CTCAE grade 1–5.
    #[schemars(range(min = CTCAE_GRADE_MIN, max = CTCAE_GRADE_MAX))]
    pub grade: u8,
    /// Serious in the ICH E2A sense (separate from severity).
    pub serious: bool,
    /// The criteria that make it serious; at least one when serious.
    #[serde(default)]
    pub seriousness_criteria: Vec<SeriousnessCriterion>,
    /// When it began.
    pub onset_at: DateTime<Utc>,
    /// The injection it follows (required for a misplaced injection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_injection: Option<LinkedInjection>,
    /// Outcome known at the time of the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Narrative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = TEXT_MAX_CHARS))]
    pub description: Option<String>,
    /// When the clinic became aware of it (ICH E2D "day zero"; version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aware_at: Option<DateTime<Utc>>,
    /// The MedDRA preferred term, when coded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meddra: Option<MeddraTerm>,
}

/// WHO-UMC causality category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Causality {
    Certain,
    Probable,
    Possible,
    Unlikely,
    Conditional,
    Unassessable,
}

/// Whether the adverse event is still followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdverseEventStatus {
    /// Still followed up.
    Open,
    /// Follow-up ended.
    Closed,
}

/// `adverse_event.updated` (schema version 2): a follow-up of a reported
/// adverse event. It may escalate: a new kind, seriousness or grade (each
/// update stays in the trail, so every step is kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdverseEventUpdated {
    /// The `adverse_event.reported` event followed up.
    pub adverse_event_id: Uuid,
    /// Causality assessment, when made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causality: Option<Causality>,
    /// Re-graded severity, when changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = CTCAE_GRADE_MIN, max = CTCAE_GRADE_MAX))]
    pub grade: Option<u8>,
    /// A new kind, when the event turned out to be another (a flare that
    /// is an infection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<AdverseEventKind>,
    /// Infection details learned since (depth, the organism grown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infection: Option<Infection>,
    /// Seriousness, when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serious: Option<bool>,
    /// The criteria that now make it serious.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seriousness_criteria: Vec<SeriousnessCriterion>,
    /// Open or closed.
    pub status: AdverseEventStatus,
    /// Outcome so far.
    pub outcome: Outcome,
    /// Narrative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = TEXT_MAX_CHARS))]
    pub note: Option<String>,
}

/// `lot.recalled`: a solution lot must no longer be used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LotRecalled {
    /// The lot.
    pub lot: LotNumber,
    /// The agent of the lot, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Agent>,
    /// Why.
    #[schemars(length(min = 1, max = TEXT_MAX_CHARS))]
    pub reason: String,
}

/// An adjunct therapy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum AdjunctTherapy {
    Stretching,
    Yoga,
    PhysicalTherapy,
    StrengthProgramme,
    WeightManagement,
    Other,
}

/// `adjunct_therapy.recommended`: therapies recommended alongside the series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjunctTherapyRecommended {
    /// At least one.
    #[schemars(length(min = 1))]
    pub therapies: Vec<AdjunctTherapy>,
    /// Notes, e.g. frequency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = TEXT_MAX_CHARS))]
    pub notes: Option<String>,
}

/// An allergy found at screening.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Allergy {
    /// What the patient is allergic to, e.g. `lidocaine`, `latex`, `chlorhexidine`.
    #[schemars(length(min = 1, max = SHORT_TEXT_MAX_CHARS))]
    pub substance: String,
    /// The reaction it causes.
    pub reaction: AllergyReaction,
}

/// How an allergy shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum AllergyReaction {
    Rash,
    Urticaria,
    Angioedema,
    Bronchospasm,
    Anaphylaxis,
    Other,
    Unknown,
}

/// An anticoagulant or antiplatelet agent (ASRA guidance on interventional
/// pain procedures names these; peripheral injections are low-risk
/// procedures, where most are continued).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Anticoagulant {
    Warfarin,
    Apixaban,
    Rivaroxaban,
    Edoxaban,
    Dabigatran,
    UnfractionatedHeparin,
    LowMolecularWeightHeparin,
    Aspirin,
    Clopidogrel,
    Prasugrel,
    Ticagrelor,
    Other,
}

/// An anticoagulant or antiplatelet the patient takes, and whether it was held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnticoagulantUse {
    /// The agent.
    pub agent: Anticoagulant,
    /// Held before the procedure.
    pub held: bool,
    /// For how many days, when held (at most 14).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = HELD_DAYS_MIN, max = HELD_DAYS_MAX))]
    pub held_days: Option<u8>,
}

/// Pregnancy status at screening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum PregnancyStatus {
    NotApplicable,
    NotPregnant,
    Pregnant,
    Unknown,
}

/// A contraindication found at screening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Contraindication {
    InfectionAtSite,
    SystemicInfection,
    BleedingDisorder,
    AllergyToAgent,
    UncontrolledDiabetes,
    MalignancyAtSite,
    AcuteFracture,
    Other,
}

/// What screening decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum ScreeningDecision {
    Proceed,
    ProceedWithPrecautions,
    Defer,
    Decline,
}

/// `screening.done`: the pre-procedure screening.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScreeningDone {
    /// Allergies found (none: empty).
    #[serde(default)]
    pub allergies: Vec<Allergy>,
    /// Anticoagulants and antiplatelets taken (none: empty).
    #[serde(default)]
    pub anticoagulants: Vec<AnticoagulantUse>,
    /// Pregnancy status.
    pub pregnancy: PregnancyStatus,
    /// Immunosuppressed (drugs or disease).
    pub immunosuppressed: bool,
    /// Skin infection at a planned site.
    pub skin_infection_at_site: bool,
    /// Contraindications found (none: empty).
    #[serde(default)]
    pub contraindications: Vec<Contraindication>,
    /// The decision.
    pub decision: ScreeningDecision,
    /// Notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = TEXT_MAX_CHARS))]
    pub notes: Option<String>,
}

/// A patient identifier checked at the time-out (The Joint Commission's
/// Universal Protocol asks for at least two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum PatientIdentifier {
    Name,
    DateOfBirth,
    MedicalRecordNumber,
    Photo,
    Address,
}

/// The role of someone at the time-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum ParticipantRole {
    Practitioner,
    Nurse,
    Assistant,
    Sonographer,
    Radiographer,
    Other,
}

/// Someone present at the time-out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    /// Their staff id.
    #[schemars(length(min = 1, max = SHORT_TEXT_MAX_CHARS))]
    pub id: String,
    /// Their role.
    pub role: ParticipantRole,
}

/// `procedure.time_out`: the Universal Protocol before an injection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcedureTimeOut {
    /// Identity checked against the identifiers used.
    pub identity_verified: bool,
    /// The identifiers used (two or more when verified).
    #[serde(default)]
    pub identifiers_used: Vec<PatientIdentifier>,
    /// The sites confirmed (at least one).
    #[schemars(length(min = 1))]
    pub sites: Vec<Site>,
    /// The sites were marked on the skin.
    pub site_marked: bool,
    /// The team paused and confirmed patient, procedure and site.
    pub time_out_performed: bool,
    /// Who took part (at least one).
    #[schemars(length(min = 1))]
    pub participants: Vec<Participant>,
    /// Concerns raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = TEXT_MAX_CHARS))]
    pub concerns: Option<String>,
}

/// Vital signs taken during observation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VitalSigns {
    /// Systolic blood pressure, mmHg.
    #[schemars(range(min = SYSTOLIC_MMHG_MIN, max = SYSTOLIC_MMHG_MAX))]
    pub systolic_mmhg: u16,
    /// Diastolic blood pressure, mmHg.
    #[schemars(range(min = DIASTOLIC_MMHG_MIN, max = DIASTOLIC_MMHG_MAX))]
    pub diastolic_mmhg: u16,
    /// Heart rate, beats per minute.
    #[schemars(range(min = HEART_RATE_BPM_MIN, max = HEART_RATE_BPM_MAX))]
    pub heart_rate_bpm: u16,
    /// Oxygen saturation, %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = SPO2_PCT_MIN, max = SPO2_PCT_MAX))]
    pub spo2_pct: Option<u8>,
}

/// `observation.completed`: the patient was watched after the injections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservationCompleted {
    /// How long, minutes (at most 8 hours).
    #[schemars(range(min = 0, max = OBSERVATION_MINUTES_MAX))]
    pub minutes: u16,
    /// Vital signs at the end, when taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vital_signs: Option<VitalSigns>,
    /// Discharged in good condition.
    pub discharged_well: bool,
    /// Required when not discharged well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = TEXT_MAX_CHARS))]
    pub notes: Option<String>,
}

/// A patient-reported outcome instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeInstrument {
    /// Pain, numeric rating scale 0–10 (LOINC 72514-3).
    PainNrs,
    /// Knee injury and Osteoarthritis Outcome Score, 0–100 (100 best).
    Koos,
    /// WOMAC total, Likert version 0–96 (0 best).
    Womac,
    /// Oswestry Disability Index, 0–100 % (0 best).
    Odi,
    /// Disabilities of the Arm, Shoulder and Hand, 0–100 (0 best).
    Dash,
    /// QuickDASH, 0–100 (0 best).
    QuickDash,
    /// Foot Function Index, 0–100 % (0 best).
    Ffi,
}

impl OutcomeInstrument {
    /// The range of the instrument's score (from its published scoring).
    pub fn score_range(self) -> (f64, f64) {
        match self {
            OutcomeInstrument::PainNrs => (0.0, 10.0),
            OutcomeInstrument::Womac => (0.0, 96.0),
            _ => (0.0, 100.0),
        }
    }
}

/// `outcome.reported`: a patient-reported outcome score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeReported {
    /// The instrument.
    pub instrument: OutcomeInstrument,
    /// The score, in the instrument's range.
    pub score: f64,
    /// Weeks since the first session of the series (0: baseline).
    #[schemars(range(min = 0, max = OUTCOME_WEEKS_MAX))]
    pub weeks_since_series_start: u16,
    /// The region it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    /// The `treatment.planned` event of the series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treatment_plan_event_id: Option<Uuid>,
}

/// Why a series ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum SeriesEndReason {
    GoalsMet,
    NoEffect,
    AdverseEvent,
    PatientChoice,
    LostToFollowUp,
    Other,
}

/// `series.completed`: the end of a series of sessions, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeriesCompleted {
    /// The `treatment.planned` event of the series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treatment_plan_event_id: Option<Uuid>,
    /// Sessions given.
    #[schemars(range(min = 0, max = SESSION_NUMBER_MAX))]
    pub sessions_given: u8,
    /// Why it ended.
    pub reason: SeriesEndReason,
    /// Notes (required when the reason is `other`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = TEXT_MAX_CHARS))]
    pub notes: Option<String>,
}

/// What a signature means (21 CFR Part 11 §11.50(a)(3)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum SignatureMeaning {
    Authorship,
    Review,
    Approval,
    Responsibility,
}

/// `record.signed`: an electronic signature on a record (21 CFR Part 11
/// §11.50: printed name, date and time, meaning; §11.70: linked to the
/// record by the SHA-256 of its stored bytes, so it cannot be moved to
/// another record or survive a change to this one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordSigned {
    /// The event signed.
    pub target: CorrectionTarget,
    /// The signer's staff id.
    #[schemars(length(min = 1, max = SHORT_TEXT_MAX_CHARS))]
    pub signer_id: String,
    /// The signer's printed name, as the manifestation shows it.
    #[schemars(length(min = 1, max = SHORT_TEXT_MAX_CHARS))]
    pub signer_name: String,
    /// What the signature means.
    pub meaning: SignatureMeaning,
    /// SHA-256 (lower-case hex) of the signed event's bytes as stored in
    /// the stream.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub signed_event_sha256: String,
}

impl RecordSigned {
    /// What `signed_event_sha256` names of the event stored as `stored`:
    /// the SHA-256 of its bytes as stored, in lower-case hex. One
    /// definition for whoever signs, the recording service that checks a
    /// signature and the read side that shows whether it matches.
    pub fn sha256_of(stored: &[u8]) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(stored)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Which entity a correction is filed under, when the target is not a patient
/// event (a patient event's correction carries the envelope's `patient_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectionTarget {
    /// The event corrected.
    pub event_id: Uuid,
    /// Its type (a correction cannot target another correction).
    pub event_type: EventType,
    /// For a `practitioner.credentialed` target: its practitioner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practitioner_id: Option<PractitionerId>,
    /// For a `lot.recalled` target: its lot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot: Option<LotNumber>,
}

/// `record.corrected`: a fact recorded wrongly, and what it should have been.
/// The original stays; current views show the corrected payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordCorrected {
    /// The event corrected.
    pub target: CorrectionTarget,
    /// Why.
    #[schemars(length(min = 1, max = TEXT_MAX_CHARS))]
    pub reason: String,
    /// The payload as it should have been, in the target type's current
    /// schema; validated as that type.
    pub corrected_payload: BTreeMap<String, serde_json::Value>,
}

/// `record.entered_in_error`: a record that should never have been made
/// (wrong patient, duplicate entry). The original stays, marked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordEnteredInError {
    /// The event marked.
    pub target: CorrectionTarget,
    /// Why.
    #[schemars(length(min = 1, max = TEXT_MAX_CHARS))]
    pub reason: String,
}

/// The role a principal reads the trail in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessRole {
    /// Compliance officer: the full trail.
    Compliance,
    /// Safety reviewer: adverse events, lots, patients' histories.
    Safety,
    /// Another system: status only.
    Service,
}

/// `access.refused`: a request to the query service was refused (401: no
/// or an unknown token, principal `anonymous`; 403: a role or clinic the
/// token does not cover), or a command to a recording service (`path`: its
/// subject; 401: no token proves who acts; 403: an actor the token does not
/// prove, a role the policy does not allow, a signature not the signer's).
/// The token itself is never recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessRefused {
    /// Who asked, or `anonymous` when the token was missing or unknown.
    pub principal_id: PrincipalId,
    /// The role of a known principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<AccessRole>,
    /// The path asked for (without the query string), or the command's
    /// subject, at most 500 characters.
    #[schemars(length(min = 1, max = 500))]
    pub path: String,
    /// 401 or 403.
    #[schemars(range(min = 400, max = 499))]
    pub status: u16,
    /// The error code and message answered.
    #[schemars(length(min = 1, max = SHORT_TEXT_MAX_CHARS))]
    pub reason: String,
    /// The client's address, as the service saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    pub source_address: Option<String>,
}

/// `access.recorded`: someone read patient data through the query service.
/// Reads are audited like writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessRecorded {
    /// Who read.
    pub principal_id: PrincipalId,
    /// In what role.
    pub role: AccessRole,
    /// Which query, e.g. `patient_history`.
    #[schemars(length(min = 1, max = SHORT_TEXT_MAX_CHARS))]
    pub query: String,
    /// Its parameters as given (filters, cursor, format).
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// The patient whose data was read, when the query names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<PatientId>,
    /// Every patient whose data the answer carried (all of them, also for a
    /// practitioner's history, a lot trace, findings or an investigation),
    /// each shown on that patient's access log. A large answer is recorded
    /// in several events of at most 500 patients each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = ACCESS_PATIENTS_PER_EVENT_MAX))]
    pub exposed_patients: Vec<PatientId>,
    /// How many records the answer held.
    pub records_returned: u64,
    /// Set on the second event of a streamed export (JSONL or CSV) that
    /// ended before its last row: the first event (its `causation_id`) was
    /// recorded before the body began, this one says how far it got and
    /// why it stopped. `records_returned` is then the rows handed to the
    /// connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<IncompleteExport>,
}

/// How a streamed export ended early.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncompleteExport {
    /// Rows the answer would have held.
    pub records_total: u64,
    /// Why it stopped, e.g. the client went away, or a row could not be read.
    #[schemars(length(min = 1, max = SHORT_TEXT_MAX_CHARS))]
    pub reason: String,
}
