//! Who acts, proven: the person's (or integration's) signed token from the
//! clinic's identity provider, checked against the provider's published
//! keys, decides the recorded `actor`; the request body's `actor` is only a
//! claim that must agree with it.
//!
//! Tokens are JWTs as OpenID Connect providers issue them (ID or access
//! tokens), sent with a command as the NATS header
//! `Authorization: Bearer <token>`. Checked: the algorithm is the one the
//! provider's key uses (never `none`, never a shared secret), the
//! signature, `iss`, `aud`, `exp` and `nbf` (with a small clock skew), and
//! the claims `sub` and `role`.

use std::{collections::HashSet, time::Duration};

use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{
    Algorithm, DecodingKey, Validation,
    errors::ErrorKind,
    jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm},
};
use prolo_schemas::{Actor, ActorProof, ActorRole};
use serde::Deserialize;

/// The NATS header a command's token travels in.
pub const AUTHORIZATION: &str = "Authorization";

/// The headers of a command sent with `token` (none without one).
pub fn bearer_headers(token: Option<&str>) -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    if let Some(token) = token {
        headers.insert(AUTHORIZATION, format!("Bearer {}", token.trim()).as_str());
    }
    headers
}

/// Clock skew allowed on `exp` and `nbf` unless configured.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Whose tokens prove who acts.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    /// The provider's issuer (`iss`), e.g. a Keycloak realm's URL.
    pub issuer: String,
    /// The audience tokens must be for (`aud`): this deployment.
    pub audience: String,
    /// The provider's public keys (its JWKS document).
    pub jwks: JwkSet,
    /// Identities allowed to record on behalf of others (an EHR
    /// integration, a back-fill): for them the body's `actor` is kept and
    /// the proof names the integration, marked delegated.
    pub delegates: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// How recently a signer must have signed in (`auth_time`) for a
    /// `record.signed` to be accepted (21 CFR Part 11 §11.200: a signature
    /// is executed by its owner, here with a fresh authentication).
    pub signature_freshness: Duration,
}

/// How recent a signer's sign-in must be unless configured.
pub const DEFAULT_SIGNATURE_FRESHNESS: Duration = Duration::from_secs(300);

/// Why the provider's key set cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    /// Not a JWKS document.
    #[error("the identity provider's key set is not a JWKS document: {0}")]
    NotJwks(String),
    /// No key to verify with.
    #[error("the identity provider's key set holds no signing key")]
    Empty,
    /// A key this service will not verify with.
    #[error("key {kid:?}: {why}")]
    Key {
        /// Its `kid`.
        kid: Option<String>,
        /// Why.
        why: String,
    },
}

/// Why a token does not prove anyone: a 401 naming the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No `Authorization: Bearer` header.
    #[error("no token: send the person's token as the header `Authorization: Bearer <token>`")]
    Missing,
    /// Not three base64url parts with a JSON header.
    #[error("the token is not a JWT: {0}")]
    Malformed(String),
    /// `none`, a shared-secret algorithm, or not the key's.
    #[error("the token's algorithm {0} is not the identity provider's")]
    Algorithm(String),
    /// A `kid` the provider does not publish.
    #[error("the token names key {0:?}, which the identity provider does not publish")]
    UnknownKey(String),
    /// Signed by another key, or altered.
    #[error("the token's signature does not verify with the identity provider's key")]
    Signature,
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before `nbf`.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Another `iss`.
    #[error("the token was not issued by {0}")]
    Issuer(String),
    /// Another `aud`.
    #[error("the token is not for {0}")]
    Audience(String),
    /// A required claim absent or of the wrong type.
    #[error("the token's {0} claim is missing or not valid")]
    Claim(String),
}

impl Refused {
    /// Stable, for the reply's problem.
    pub fn code(&self) -> &'static str {
        match self {
            Refused::Missing => "token_missing",
            Refused::Malformed(_) => "token_malformed",
            Refused::Algorithm(_) => "token_algorithm",
            Refused::UnknownKey(_) => "token_unknown_key",
            Refused::Signature => "token_signature",
            Refused::Expired => "token_expired",
            Refused::NotYetValid => "token_not_yet_valid",
            Refused::Issuer(_) => "token_issuer",
            Refused::Audience(_) => "token_audience",
            Refused::Claim(_) => "token_claim",
        }
    }
}

/// A request's `actor` that the token does not prove: a 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the request says {claimed_id} ({claimed_role:?}) acted, but the token proves {proven_id} ({proven_role:?}), who may not record for others"
)]
pub struct NotTheActor {
    /// The body's actor id.
    pub claimed_id: String,
    /// The body's role.
    pub claimed_role: ActorRole,
    /// The token's subject.
    pub proven_id: String,
    /// The token's role.
    pub proven_role: ActorRole,
}

/// The claims read from a token.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    role: ActorRole,
    #[serde(default)]
    auth_time: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
}

/// Someone a token proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proven {
    /// Who, in what capacity.
    pub actor: Actor,
    /// May state that another actor acted (an integration).
    pub delegate: bool,
    proof: ActorProof,
    signature_freshness: Duration,
}

/// Why a `record.signed` is not its signer's own act: a 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotTheSigner {
    /// Someone else's name on the signature.
    #[error(
        "the signature names signer {signer}, but the token proves {proven}: only the signer may sign"
    )]
    Someone {
        /// `signer_id`.
        signer: String,
        /// The token's subject.
        proven: String,
    },
    /// An integration signing for a person.
    #[error("a signature is the signer's own act: {0} may not sign on anyone's behalf")]
    Delegated(String),
    /// No recent sign-in.
    #[error(
        "the signer last signed in {0}; a signature needs a sign-in within the last {1} seconds"
    )]
    Stale(String, u64),
}

impl Proven {
    /// Checks that a signature naming `signer_id` is this person's own act,
    /// with a fresh sign-in, at `now`.
    pub fn may_sign(&self, signer_id: &str, now: DateTime<Utc>) -> Result<(), NotTheSigner> {
        if self.delegate {
            return Err(NotTheSigner::Delegated(self.actor.id.clone()));
        }
        if signer_id != self.actor.id {
            return Err(NotTheSigner::Someone {
                signer: signer_id.to_owned(),
                proven: self.actor.id.clone(),
            });
        }
        let freshness = self.signature_freshness.as_secs();
        let fresh = self.proof.authenticated_at.is_some_and(|at| {
            let age = now.signed_duration_since(at).num_seconds();
            (-60..=i64::try_from(freshness).unwrap_or(i64::MAX)).contains(&age)
        });
        if !fresh {
            let when = self.proof.authenticated_at.map_or_else(
                || "at an unknown time (no auth_time)".to_owned(),
                |at| format!("at {}", at.to_rfc3339()),
            );
            return Err(NotTheSigner::Stale(when, freshness));
        }
        Ok(())
    }

    /// The proof of who the token names (for a record of a refusal).
    pub fn proof(&self) -> &ActorProof {
        &self.proof
    }

    /// The actor to record for a request that names `claimed`, and its
    /// proof: the proven person when they agree, the claimed one when the
    /// proven identity is a delegate.
    pub fn attest(&self, claimed: &Actor) -> Result<(Actor, ActorProof), NotTheActor> {
        if *claimed == self.actor {
            return Ok((self.actor.clone(), self.proof.clone()));
        }
        if self.delegate {
            let proof = ActorProof {
                delegated: true,
                ..self.proof.clone()
            };
            return Ok((claimed.clone(), proof));
        }
        Err(NotTheActor {
            claimed_id: claimed.id.clone(),
            claimed_role: claimed.role,
            proven_id: self.actor.id.clone(),
            proven_role: self.actor.role,
        })
    }
}

/// One verifying key of the provider, with what a token signed by it must
/// hold (made once: every command is checked against it).
struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
    validation: Validation,
}

/// Checks tokens against one identity provider.
pub struct Verifier {
    issuer: String,
    audience: String,
    keys: Vec<Key>,
    delegates: HashSet<String>,
    signature_freshness: Duration,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Verifier {
    /// A verifier of `settings`' provider; refuses a key set it would not
    /// trust (shared secrets, unknown curves, no key at all).
    pub fn new(settings: &IdentitySettings) -> Result<Verifier, KeySetError> {
        let mut keys = Vec::new();
        for jwk in &settings.jwks.keys {
            let kid = jwk.common.key_id.clone();
            let refuse = |why: &str| KeySetError::Key {
                kid: kid.clone(),
                why: why.to_owned(),
            };
            let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
                (AlgorithmParameters::OctetKey(_), _) => {
                    return Err(refuse("a shared secret (oct) cannot prove who signed"));
                }
                (AlgorithmParameters::OctetKeyPair(p), None | Some(KeyAlgorithm::EdDSA))
                    if p.curve == EllipticCurve::Ed25519 =>
                {
                    Algorithm::EdDSA
                }
                (AlgorithmParameters::EllipticCurve(p), None | Some(KeyAlgorithm::ES256))
                    if p.curve == EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
                _ => return Err(refuse("only Ed25519, P-256 and RS256 keys are used")),
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| refuse(&e.to_string()))?;
            let mut validation = Validation::new(algorithm);
            validation.set_issuer(&[&settings.issuer]);
            validation.set_audience(&[&settings.audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.validate_nbf = true;
            validation.leeway = settings.leeway.as_secs();
            keys.push(Key {
                kid,
                algorithm,
                key,
                validation,
            });
        }
        if keys.is_empty() {
            return Err(KeySetError::Empty);
        }
        Ok(Verifier {
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            keys,
            delegates: settings.delegates.iter().cloned().collect(),
            signature_freshness: settings.signature_freshness,
        })
    }

    /// Reads a provider's JWKS document.
    pub fn key_set(json: &str) -> Result<JwkSet, KeySetError> {
        serde_json::from_str(json).map_err(|e| KeySetError::NotJwks(e.to_string()))
    }

    /// Who the token in `headers` proves.
    pub fn verify_headers(
        &self,
        headers: Option<&async_nats::HeaderMap>,
    ) -> Result<Proven, Refused> {
        let value = headers
            .and_then(|h| h.get(AUTHORIZATION))
            .map(|v| v.as_str())
            .ok_or(Refused::Missing)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(Refused::Missing)?;
        self.verify(token.trim())
    }

    /// Who `token` proves.
    pub fn verify(&self, token: &str) -> Result<Proven, Refused> {
        let header = header_of(token)?;
        let key = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid.as_str()))
                .ok_or_else(|| Refused::UnknownKey(kid.clone()))?,
            None if self.keys.len() == 1 => &self.keys[0],
            None => return Err(Refused::UnknownKey("(none named)".to_owned())),
        };
        if header.alg != algorithm_name(key.algorithm) {
            return Err(Refused::Algorithm(header.alg));
        }
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &key.validation)
            .map_err(|e| self.refusal(e.into_kind()))?;
        let claims = data.claims;
        if claims.sub.trim().is_empty() || claims.sub.chars().count() > 200 {
            return Err(Refused::Claim("sub".to_owned()));
        }
        let authenticated_at = match claims.auth_time {
            Some(at) => Some(
                DateTime::<Utc>::from_timestamp(at, 0)
                    .ok_or_else(|| Refused::Claim("auth_time".to_owned()))?,
            ),
            None => None,
        };
        Ok(Proven {
            delegate: self.delegates.contains(&claims.sub),
            signature_freshness: self.signature_freshness,
            proof: ActorProof {
                issuer: self.issuer.clone(),
                subject: claims.sub.clone(),
                delegated: false,
                key_id: header.kid,
                token_id: claims.jti.filter(|j| j.chars().count() <= 200),
                authenticated_at,
            },
            actor: Actor {
                id: claims.sub,
                role: claims.role,
            },
        })
    }

    fn refusal(&self, kind: ErrorKind) -> Refused {
        match kind {
            ErrorKind::InvalidSignature => Refused::Signature,
            ErrorKind::ExpiredSignature => Refused::Expired,
            ErrorKind::ImmatureSignature => Refused::NotYetValid,
            ErrorKind::InvalidIssuer => Refused::Issuer(self.issuer.clone()),
            ErrorKind::InvalidAudience => Refused::Audience(self.audience.clone()),
            ErrorKind::MissingRequiredClaim(claim) => Refused::Claim(claim),
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                Refused::Algorithm("(not the key's)".to_owned())
            }
            // A claim of the wrong type (e.g. a role no one has).
            ErrorKind::Json(e) => Refused::Claim(e.to_string()),
            other => Refused::Malformed(format!("{other:?}")),
        }
    }
}

/// What a token's header says, read without trusting it.
struct Header {
    alg: String,
    kid: Option<String>,
}

/// The header of `token`, checked for shape before anything is verified:
/// three base64url parts, a JSON object with a string `alg`.
fn header_of(token: &str) -> Result<Header, Refused> {
    let parts: Vec<&str> = token.split('.').collect();
    let shape = || Refused::Malformed("a JWT is three non-empty parts joined by dots".to_owned());
    if parts.len() != 3 || parts[0].is_empty() {
        return Err(shape());
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[0])
        .map_err(|e| Refused::Malformed(format!("its header is not base64url: {e}")))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Refused::Malformed(format!("its header is not JSON: {e}")))?;
    let alg = value
        .get("alg")
        .and_then(|a| a.as_str())
        .ok_or_else(|| Refused::Malformed("its header names no algorithm".to_owned()))?;
    // `none` (an unsigned token) is named as such, before its missing
    // signature would make it merely malformed.
    if alg.eq_ignore_ascii_case("none") || alg.starts_with("HS") {
        return Err(Refused::Algorithm(alg.to_owned()));
    }
    if parts[1].is_empty() || parts[2].is_empty() {
        return Err(shape());
    }
    let kid = match value.get("kid") {
        None => None,
        Some(serde_json::Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(Refused::Malformed("its kid is not a string".to_owned())),
    };
    Ok(Header {
        alg: alg.to_owned(),
        kid,
    })
}

/// An algorithm as JWT headers name it.
fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::EdDSA => "EdDSA",
        Algorithm::ES256 => "ES256",
        Algorithm::RS256 => "RS256",
        _ => "(unused)",
    }
}

/// A local identity provider for development and tests: an Ed25519 key of
/// its own, its JWKS, and tokens it signs. Never a production provider:
/// whoever holds its key can be anyone.
pub mod dev {
    use jsonwebtoken::{EncodingKey, Header, jwk::JwkSet};
    use ring::signature::{Ed25519KeyPair, KeyPair};
    use serde::Serialize;

    use super::*;

    /// The development provider's issuer.
    pub const ISSUER: &str = "prolo-audit-dev-idp";
    /// The audience its tokens are for.
    pub const AUDIENCE: &str = "prolo-audit";

    /// Why a development key could not be made or read.
    #[derive(Debug, thiserror::Error)]
    #[error("the development signing key: {0}")]
    pub struct KeyError(String);

    /// A signing key and its id.
    pub struct Provider {
        pkcs8: Vec<u8>,
        kid: String,
        issuer: String,
        audience: String,
    }

    /// What a minted token says.
    #[derive(Debug, Clone, Serialize)]
    pub struct TokenClaims {
        /// Issuer.
        pub iss: String,
        /// Audience.
        pub aud: String,
        /// Who.
        pub sub: String,
        /// In what capacity.
        pub role: ActorRole,
        /// Issued at (seconds since the epoch).
        pub iat: i64,
        /// Expires at.
        pub exp: i64,
        /// Signed in at.
        pub auth_time: i64,
        /// Token id.
        pub jti: String,
    }

    impl Provider {
        /// A new key (PKCS#8 v2, Ed25519).
        pub fn generate() -> Result<Provider, KeyError> {
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|e| KeyError(e.to_string()))?
                .as_ref()
                .to_vec();
            Provider::from_pkcs8(&pkcs8)
        }

        /// The key as saved ([`Provider::pkcs8`]).
        pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Provider, KeyError> {
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| KeyError(e.to_string()))?;
            // The key id: the first bytes of the public key, so that a new
            // key is a new kid.
            let public = pair.public_key().as_ref();
            let kid = format!(
                "dev-{}",
                public[..6]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            );
            Ok(Provider {
                pkcs8: pkcs8.to_vec(),
                kid,
                issuer: ISSUER.to_owned(),
                audience: AUDIENCE.to_owned(),
            })
        }

        /// The same key under another issuer (tests: a provider that is
        /// not the one configured).
        pub fn with_issuer(mut self, issuer: &str) -> Provider {
            self.issuer = issuer.to_owned();
            self
        }

        /// The same key claiming another key id (tests: a token re-signed
        /// with a key the provider does not publish, under its kid).
        pub fn with_kid(mut self, kid: &str) -> Provider {
            self.kid = kid.to_owned();
            self
        }

        /// The private key, PKCS#8 (to save, owner-only).
        pub fn pkcs8(&self) -> &[u8] {
            &self.pkcs8
        }

        /// Its key id.
        pub fn kid(&self) -> &str {
            &self.kid
        }

        /// Its public key as a JWKS document.
        pub fn jwks(&self) -> Result<JwkSet, KeyError> {
            let pair =
                Ed25519KeyPair::from_pkcs8(&self.pkcs8).map_err(|e| KeyError(e.to_string()))?;
            let x =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
            let json = serde_json::json!({"keys": [{
                "kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.kid, "alg": "EdDSA", "use": "sig",
            }]});
            serde_json::from_value(json).map_err(|e| KeyError(e.to_string()))
        }

        /// Settings that trust this provider, with `delegates` allowed to
        /// record for others.
        pub fn settings(&self, delegates: &[&str]) -> Result<IdentitySettings, KeyError> {
            Ok(IdentitySettings {
                issuer: self.issuer.clone(),
                audience: self.audience.clone(),
                jwks: self.jwks()?,
                delegates: delegates.iter().map(|d| (*d).to_owned()).collect(),
                leeway: DEFAULT_LEEWAY,
                signature_freshness: DEFAULT_SIGNATURE_FRESHNESS,
            })
        }

        /// The claims of a token for `person` acting as `role`, valid for
        /// `valid_for` from now.
        pub fn claims(&self, person: &str, role: ActorRole, valid_for: Duration) -> TokenClaims {
            let now = Utc::now().timestamp();
            TokenClaims {
                iss: self.issuer.clone(),
                aud: self.audience.clone(),
                sub: person.to_owned(),
                role,
                iat: now,
                exp: now + i64::try_from(valid_for.as_secs()).unwrap_or(i64::MAX / 2),
                auth_time: now,
                jti: uuid::Uuid::now_v7().to_string(),
            }
        }

        /// Signs `claims` (any serialisable claims: tests make bad ones).
        pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, KeyError> {
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = Some(self.kid.clone());
            jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&self.pkcs8))
                .map_err(|e| KeyError(e.to_string()))
        }

        /// A token for `person` acting as `role`, valid for `valid_for`.
        pub fn mint(
            &self,
            person: &str,
            role: ActorRole,
            valid_for: Duration,
        ) -> Result<String, KeyError> {
            self.sign(&self.claims(person, role, valid_for))
        }
    }
}
