//! Plausibility bounds for clinical values, in one place.
//!
//! The Rust validation and the generated JSON Schema both read these
//! constants, so the two can never disagree. Figures come from
//! `DOMAIN.md` (trial protocols, reviews, consent forms). A bound is a *hard*
//! limit for "this cannot be a real record" (a typo, wrong unit), not a
//! clinical guideline: a dose that is unusual but possible must still be
//! recordable, because the system records facts and flags policy separately.

/// Injected volume per site, mL: must be above this. A zero or negative
/// volume cannot have been injected.
pub const VOLUME_ML_ABOVE: f64 = 0.0;
/// Injected volume per site, mL: at most this. 8–10 mL into a knee joint is
/// the largest seen; 20 mL leaves room while catching unit slips (80 mL).
pub const VOLUME_ML_MAX: f64 = 20.0;

/// Needle gauge range seen: 18 G (large joints) to 30 G (superficial).
pub const NEEDLE_GAUGE_MIN: u8 = 18;
/// See [`NEEDLE_GAUGE_MIN`].
pub const NEEDLE_GAUGE_MAX: u8 = 30;

/// Needle length, mm: 10 mm (superficial) up to 200 mm. Spinal needles
/// are sold at 3.5" (89 mm), 5" (127 mm), 6" (152 mm) and 7" (178 mm); the
/// old 150 mm cap refused the standard 6" and 7" ones. A longer needle than
/// its gauge is made in is refused by [`needle_length_max_mm`].
pub const NEEDLE_LENGTH_MM_MIN: u16 = 10;
/// See [`NEEDLE_LENGTH_MM_MIN`].
pub const NEEDLE_LENGTH_MM_MAX: u16 = 200;

/// The longest needle made in `gauge`, mm (a judgement from catalogues of
/// hypodermic and spinal needles, with a margin): a fine needle cannot be
/// long, because it would bend. 28–30 G are hypodermic/insulin needles up to
/// about 1" (25 mm), 50 mm with a margin; 25–27 G spinal needles reach 5"
/// (127 mm); 18–24 G spinal and chiba needles reach 7–8" (178–200 mm).
pub fn needle_length_max_mm(gauge: u8) -> u16 {
    match gauge {
        28.. => 50,
        25..=27 => 127,
        _ => NEEDLE_LENGTH_MM_MAX,
    }
}

/// Session number within a series, counting boosters. Series of 3–6 are
/// typical and up to 8 are seen, and boosters every 4–6 months follow for
/// years; 30 is the hard limit (above 6 deserves re-evaluation, which is a
/// finding, not a refusal).
pub const SESSION_NUMBER_MIN: u8 = 1;
/// See [`SESSION_NUMBER_MIN`].
pub const SESSION_NUMBER_MAX: u8 = 30;

/// Days between sessions: weekly at the most often; a booster every 4–6
/// months, or yearly, at the least often.
pub const INTERVAL_DAYS_MIN: u16 = 7;
/// See [`INTERVAL_DAYS_MIN`].
pub const INTERVAL_DAYS_MAX: u16 = 366;

/// Concentration of one solution component, % (w/v): above 0 and at most 50,
/// the strength of undiluted dextrose stock. Per-agent limits are tighter,
/// see [`crate::Agent::max_concentration_pct`].
pub const CONCENTRATION_PCT_ABOVE: f64 = 0.0;
/// See [`CONCENTRATION_PCT_ABOVE`].
pub const CONCENTRATION_PCT_MAX: f64 = 50.0;

/// Range of motion, degrees. The largest normal arc is ~180° (shoulder
/// flexion/abduction); 200° leaves room for hypermobile joints. A lag or
/// contracture is negative: a knee that lacks 90° of extension is the worst
/// seen. Per movement: [`crate::Movement::degrees_range`]. Judgement call.
pub const ROM_DEGREES_MIN: i16 = ROM_LAG_DEGREES_MIN;
/// See [`ROM_DEGREES_MIN`].
pub const ROM_DEGREES_MAX: i16 = 200;
/// The largest lag or contracture, degrees.
pub const ROM_LAG_DEGREES_MIN: i16 = -90;

/// Pain on the numeric rating scale (LOINC 72514-3): 0 to 10.
pub const PAIN_NRS_MIN: u8 = 0;
/// See [`PAIN_NRS_MIN`].
pub const PAIN_NRS_MAX: u8 = 10;

/// CTCAE severity grade: 1 mild … 5 death.
pub const CTCAE_GRADE_MIN: u8 = 1;
/// See [`CTCAE_GRADE_MIN`].
pub const CTCAE_GRADE_MAX: u8 = 5;

/// Free text (findings, rationale, history): at most this many characters.
/// Long narratives belong in the EHR; the trail keeps a summary.
pub const TEXT_MAX_CHARS: usize = 4000;
/// Short text (issuer, reference, source, actor id): at most this many characters.
pub const SHORT_TEXT_MAX_CHARS: usize = 200;
/// Patients named in one `access.recorded` event: an answer exposing more
/// is recorded in several events (all before it is sent), so that each
/// event stays a small document.
pub const ACCESS_PATIENTS_PER_EVENT_MAX: usize = 500;

/// Days an anticoagulant was held before the procedure: 1 to 14 (the
/// longest interruption ASRA guidance asks for is about a week; two leave room).
pub const HELD_DAYS_MIN: u8 = 1;
/// See [`HELD_DAYS_MIN`].
pub const HELD_DAYS_MAX: u8 = 14;

/// Post-injection observation, minutes: at most 8 hours (longer is an admission).
pub const OBSERVATION_MINUTES_MAX: u16 = 480;

/// Systolic blood pressure, mmHg, that a living patient can have.
pub const SYSTOLIC_MMHG_MIN: u16 = 50;
/// See [`SYSTOLIC_MMHG_MIN`].
pub const SYSTOLIC_MMHG_MAX: u16 = 260;
/// Diastolic blood pressure, mmHg.
pub const DIASTOLIC_MMHG_MIN: u16 = 20;
/// See [`DIASTOLIC_MMHG_MIN`].
pub const DIASTOLIC_MMHG_MAX: u16 = 160;
/// Heart rate, beats per minute.
pub const HEART_RATE_BPM_MIN: u16 = 20;
/// See [`HEART_RATE_BPM_MIN`].
pub const HEART_RATE_BPM_MAX: u16 = 250;
/// Oxygen saturation, %.
pub const SPO2_PCT_MIN: u8 = 50;
/// See [`SPO2_PCT_MIN`].
pub const SPO2_PCT_MAX: u8 = 100;

/// Weeks since the start of a series at which an outcome is reported: up to
/// ten years of follow-up.
pub const OUTCOME_WEEKS_MAX: u16 = 520;
