//! Who may ask: authentication, role and clinic scope as extractors, so a
//! handler's type says which question it answers and no handler body can
//! forget a check. The API and the console use the same ones; the console
//! wraps them in [`crate::console`]'s error pages.

use std::marker::PhantomData;

use axum::{
    extract::{FromRequestParts, RawPathParams},
    http::request::Parts,
};
use prolo_projector::Store;
use prolo_schemas::{ClinicId, PatientId};

use super::{
    AppState,
    audited::{Asked, off_worker},
};
pub use crate::auth::Asks;
use crate::{
    auth::{Principal, QueryKind},
    error::ApiError,
};

/// The questions, one marker type each (named as their [`QueryKind`]),
/// and the clinic's start page.
pub mod ask {
    pub use crate::auth::ask::*;

    use super::{ApiError, Asks, Principal, QueryKind};

    /// A clinic's start page: for whoever may read its signals or its findings.
    pub struct ClinicStart;

    impl Asks for ClinicStart {
        const KIND: QueryKind = QueryKind::Signals;

        fn allowed(principal: &Principal) -> Result<(), ApiError> {
            principal
                .may(QueryKind::Signals)
                .or_else(|_| principal.may(QueryKind::Findings))
        }
    }
}

/// An authenticated principal whose role may ask `Q`: for the routes that
/// name no clinic (the clinic scope is then checked on what is found).
pub struct Allowed<Q> {
    /// Who asks.
    pub principal: Principal,
    asks: PhantomData<Q>,
}

impl<Q: Asks> FromRequestParts<AppState> for Allowed<Q> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = state.principals.authenticate(&parts.headers)?;
        Q::allowed(&principal)?;
        Ok(Self {
            principal,
            asks: PhantomData,
        })
    }
}

/// An authenticated principal whose role may ask `Q` about the clinic the
/// path names (`{clinic}`), with that clinic in its token's scope, and what
/// answers it. Refused in this order: no or unknown token (401), role
/// (403), clinic scope (403), a clinic id that is not one (400).
pub struct Admitted<Q> {
    /// What answers.
    pub state: AppState,
    /// Who asks.
    pub principal: Principal,
    /// The clinic asked about, checked.
    pub clinic: ClinicId,
    asks: PhantomData<Q>,
}

impl<Q: Asks> Admitted<Q> {
    /// The question as the access log records it: `Q`, in this clinic,
    /// about `patient` if about one.
    pub(crate) fn asked(&self, patient: Option<PatientId>) -> Asked<'_> {
        Asked::new(&self.state, &self.principal, &self.clinic, Q::KIND, patient)
    }

    /// Reads this clinic's read models off the async workers.
    pub(crate) async fn read<T, F>(&self, read: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Store, &ClinicId) -> Result<T, prolo_query::QueryError> + Send + 'static,
    {
        let clinic = self.clinic.clone();
        off_worker(&self.state, move |store| read(store, &clinic)).await
    }
}

impl<Q: Asks> FromRequestParts<AppState> for Admitted<Q> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Allowed { principal, .. } = Allowed::<Q>::from_request_parts(parts, state).await?;
        // A segment that does not decode to UTF-8 is the caller's error.
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let Some((_, clinic)) = params.iter().find(|(name, _)| *name == "clinic") else {
            return Err(ApiError::Internal(
                "a clinic-scoped route without {clinic}".to_owned(),
            ));
        };
        principal.may_read(clinic)?;
        let clinic = id(clinic)?;
        Ok(Self {
            state: state.clone(),
            principal,
            clinic,
            asks: PhantomData,
        })
    }
}

/// What the path names after its clinic (a patient, a lot, an event),
/// parsed into its checked type, or 400 naming what is wrong with it.
pub struct Named<T>(pub T);

impl<T> FromRequestParts<AppState> for Named<T>
where
    T: std::str::FromStr + Send,
    T::Err: std::fmt::Display,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        match params.iter().find(|(name, _)| *name != "clinic") {
            Some((_, value)) => id(value).map(Named),
            None => Err(ApiError::Internal(
                "a route that names nothing but its clinic".to_owned(),
            )),
        }
    }
}

/// A path segment or parameter parsed into its checked type, or 400 naming
/// what is wrong with it.
pub(crate) fn id<T: std::str::FromStr>(value: &str) -> Result<T, ApiError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e: T::Err| ApiError::BadRequest(e.to_string()))
}
