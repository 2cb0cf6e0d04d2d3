//! The clinic's controlled list of injection sites.
//!
//! An injection names a [`SiteKey`]; region, structure, whether it takes a
//! laterality and its risk zone come from this list, so two records of the
//! same site can never disagree about what it is.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Side of the body (SNOMED CT: left 7771000, right 24028007, bilateral 51440002).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Laterality {
    /// Left side.
    Left,
    /// Right side.
    Right,
    /// Both sides in one procedure.
    Bilateral,
}

/// Body region (SNOMED CT codes in [`Region::snomed`]).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Region {
    /// Sacroiliac joint.
    SacroiliacJoint,
    /// Lumbar spine.
    LumbarSpine,
    /// Thoracic spine and ribs.
    ThoracicSpine,
    /// Cervical spine.
    CervicalSpine,
    /// Hip joint.
    HipJoint,
    /// Knee region.
    KneeRegion,
    /// Shoulder region.
    ShoulderRegion,
    /// Elbow region.
    ElbowRegion,
    /// Ankle joint.
    AnkleJoint,
    /// Foot: heel, plantar fascia, Achilles insertion.
    Foot,
    /// Wrist and hand.
    WristAndHand,
    /// Temporomandibular joint.
    TemporomandibularJoint,
    /// Pelvis outside the sacroiliac joint: pubic symphysis, coccyx, ischial tuberosity.
    Pelvis,
    /// Anterior chest wall: costochondral and sternoclavicular joints.
    ChestWall,
    /// Where a site not on the list is: see its own SNOMED CT code.
    Other,
}

impl Region {
    /// SNOMED CT concept, where verified (see DOMAIN.md).
    pub fn snomed(self) -> Option<&'static str> {
        match self {
            Region::SacroiliacJoint => Some("39723000"),
            Region::LumbarSpine => Some("122497005"),
            Region::HipJoint => Some("24136001"),
            Region::KneeRegion => Some("72696002"),
            Region::ShoulderRegion => Some("16982005"),
            Region::ElbowRegion => Some("76248009"),
            Region::AnkleJoint => Some("70258002"),
            // Not verified against a SNOMED CT release here: left out
            // rather than guessed (schemas/CLINICAL_NOTES.md).
            Region::ThoracicSpine
            | Region::CervicalSpine
            | Region::Foot
            | Region::WristAndHand
            | Region::TemporomandibularJoint
            | Region::Pelvis
            | Region::ChestWall
            | Region::Other => None,
        }
    }
}

/// What a needle at this site can hurt beyond the site itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RiskZone {
    /// Near the dura: dural puncture, spinal headache.
    Spinal,
    /// Over the lung: pneumothorax.
    Thoracic,
    /// Near the cervical cord and vertebral artery.
    Cervical,
    /// Limbs and pelvis away from those structures.
    Peripheral,
}

/// What the list knows about one site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteInfo {
    /// Body region.
    pub region: Region,
    /// The structure injected, in words.
    pub structure: &'static str,
    /// Whether an injection here must say left, right or bilateral.
    pub takes_laterality: bool,
    /// SNOMED CT code of the structure, where verified.
    pub snomed: Option<&'static str>,
    /// What the needle can hurt beyond the site.
    pub risk_zone: RiskZone,
}

macro_rules! site_list {
    ($($(#[$doc:meta])* $key:ident => $region:ident, $structure:literal, $lat:literal, $snomed:expr, $zone:ident;)*) => {
        /// A key from the clinic's controlled site list.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[allow(non_camel_case_types, missing_docs)]
        pub enum SiteKey {
            $($(#[$doc])* $key,)*
        }

        impl SiteKey {
            /// Every site on the list.
            pub const ALL: &'static [SiteKey] = &[$(SiteKey::$key,)*];

            /// What the list says about this site.
            pub fn info(self) -> SiteInfo {
                match self {
                    $(SiteKey::$key => SiteInfo {
                        region: Region::$region,
                        structure: $structure,
                        takes_laterality: $lat,
                        snomed: $snomed,
                        risk_zone: RiskZone::$zone,
                    },)*
                }
            }

            /// The key as written in JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(SiteKey::$key => stringify!($key),)*
                }
            }
        }
    };
}

site_list! {
    SI_POSTERIOR_LIG => SacroiliacJoint, "posterior sacroiliac ligament", true, None, Peripheral;
    ILIOLUMBAR_LIG => LumbarSpine, "iliolumbar ligament", true, None, Spinal;
    LUMBAR_INTERSPINOUS_LIG => LumbarSpine, "lumbar interspinous/supraspinous ligament", false, None, Spinal;
    LUMBAR_FACET_CAPSULE => LumbarSpine, "lumbar facet joint capsule", true, None, Spinal;
    SACROTUBEROUS_LIG => SacroiliacJoint, "sacrotuberous ligament", true, None, Peripheral;
    HIP_CAPSULE => HipJoint, "hip joint capsule", true, None, Peripheral;
    GREATER_TROCHANTER => HipJoint, "gluteal tendon insertions at the greater trochanter", true, None, Peripheral;
    KNEE_MCL => KneeRegion, "medial collateral ligament of knee", true, Some("1627004"), Peripheral;
    KNEE_LCL => KneeRegion, "lateral collateral ligament of knee", true, None, Peripheral;
    KNEE_IA => KneeRegion, "knee joint (intra-articular)", true, None, Peripheral;
    PES_ANSERINUS => KneeRegion, "pes anserinus insertion", true, None, Peripheral;
    PATELLAR_TENDON => KneeRegion, "patellar tendon", true, None, Peripheral;
    ANKLE_ATFL => AnkleJoint, "anterior talofibular ligament", true, None, Peripheral;
    ANKLE_IA => AnkleJoint, "ankle joint (intra-articular)", true, None, Peripheral;
    SHOULDER_SUPRASPINATUS => ShoulderRegion, "supraspinatus tendon", true, Some("5580002"), Peripheral;
    SHOULDER_INFRASPINATUS => ShoulderRegion, "infraspinatus tendon", true, Some("59713001"), Peripheral;
    SHOULDER_SUBSCAPULARIS => ShoulderRegion, "subscapularis tendon", true, Some("80108009"), Peripheral;
    SHOULDER_TERES_MINOR => ShoulderRegion, "teres minor tendon", true, Some("700027005"), Peripheral;
    SHOULDER_IA => ShoulderRegion, "glenohumeral joint (intra-articular)", true, None, Peripheral;
    LAT_EPICONDYLE => ElbowRegion, "common extensor origin at the lateral epicondyle", true, None, Peripheral;
    MED_EPICONDYLE => ElbowRegion, "common flexor origin at the medial epicondyle", true, None, Peripheral;
    THORACIC_COSTOTRANSVERSE => ThoracicSpine, "costotransverse ligaments", true, None, Thoracic;
    THORACIC_INTERSPINOUS_LIG => ThoracicSpine, "thoracic interspinous ligament", false, None, Thoracic;
    CERVICAL_FACET_CAPSULE => CervicalSpine, "cervical facet joint capsule", true, None, Cervical;
    CERVICAL_INTERSPINOUS_LIG => CervicalSpine, "cervical interspinous/nuchal ligament", false, None, Cervical;
    HIP_IA => HipJoint, "hip joint (intra-articular)", true, None, Peripheral;
    HAMSTRING_ORIGIN => Pelvis, "hamstring origin at the ischial tuberosity", true, None, Peripheral;
    PUBIC_SYMPHYSIS => Pelvis, "pubic symphysis", false, None, Peripheral;
    SACROCOCCYGEAL_LIG => Pelvis, "sacrococcygeal ligaments (coccyx)", false, None, Peripheral;
    QUADRICEPS_TENDON => KneeRegion, "quadriceps tendon insertion", true, None, Peripheral;
    ANKLE_DELTOID_LIG => AnkleJoint, "deltoid ligament of ankle", true, None, Peripheral;
    ACHILLES_TENDON => Foot, "Achilles tendon and its calcaneal insertion", true, None, Peripheral;
    PLANTAR_FASCIA => Foot, "plantar fascia origin at the calcaneus", true, None, Peripheral;
    SHOULDER_BICEPS_LONG_HEAD => ShoulderRegion, "long head of biceps tendon", true, None, Peripheral;
    ACROMIOCLAVICULAR_JOINT => ShoulderRegion, "acromioclavicular joint", true, None, Peripheral;
    ELBOW_UCL => ElbowRegion, "ulnar collateral ligament of elbow", true, None, Peripheral;
    WRIST_IA => WristAndHand, "radiocarpal joint (intra-articular)", true, None, Peripheral;
    WRIST_LIGAMENTS => WristAndHand, "dorsal and volar wrist ligaments, TFCC", true, None, Peripheral;
    THUMB_CMC => WristAndHand, "first carpometacarpal joint", true, None, Peripheral;
    FINGER_MCP => WristAndHand, "metacarpophalangeal joint capsule and collateral ligaments", true, None, Peripheral;
    FINGER_IP => WristAndHand, "interphalangeal joint capsule and collateral ligaments", true, None, Peripheral;
    TMJ => TemporomandibularJoint, "temporomandibular joint and its capsule", true, None, Peripheral;
    COSTOCHONDRAL => ChestWall, "costochondral and chondrosternal joints", true, None, Thoracic;
    STERNOCLAVICULAR_JOINT => ChestWall, "sternoclavicular joint", true, None, Thoracic;
    THORACIC_FACET_CAPSULE => ThoracicSpine, "thoracic facet joint capsule", true, None, Thoracic;
    /// A site not on the list: the injection names its SNOMED CT code and
    /// describes it (`Site::snomed_code`, `Site::description`).
    OTHER => Other, "a site not on the list (see its SNOMED CT code and description)", false, None, Peripheral;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spinal_thoracic_and_cervical_sites_carry_their_risk_zone() {
        assert_eq!(
            SiteKey::LUMBAR_INTERSPINOUS_LIG.info().risk_zone,
            RiskZone::Spinal
        );
        assert_eq!(
            SiteKey::THORACIC_COSTOTRANSVERSE.info().risk_zone,
            RiskZone::Thoracic
        );
        assert_eq!(
            SiteKey::CERVICAL_FACET_CAPSULE.info().risk_zone,
            RiskZone::Cervical
        );
        assert_eq!(SiteKey::KNEE_MCL.info().snomed, Some("1627004"));
    }

    #[test]
    fn site_keys_serialise_as_their_names() {
        for key in SiteKey::ALL {
            let json = serde_json::to_string(key).unwrap();
            assert_eq!(json, format!("\"{}\"", key.as_str()));
        }
    }
}
