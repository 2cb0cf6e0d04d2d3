//! Whether the API is ready, and where the read models stand against the stream.

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use prolo_bus::STREAM_NAME;
use prolo_projector::{VerifyReport, integrity::chain};

use super::{
    AppState,
    admit::{Allowed, ask},
};
use crate::{
    answer::{EdgeStatus, SealStatus, Status, StreamConsistency},
    error::ApiError,
};

pub(super) async fn status(
    State(state): State<AppState>,
    _: Allowed<ask::Status>,
) -> Result<Response, ApiError> {
    Ok(Json(status_answer(&state).await?).into_response())
}

/// Whether the API is ready to answer, check by check.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Readiness {
    /// Every check passed.
    pub ready: bool,
    /// The NATS connection is up.
    pub nats_connected: bool,
    /// The fold's durable consumer exists on the stream.
    pub consumer_bound: bool,
    /// Sequences the read models are behind the stream, when known.
    pub lag: Option<u64>,
    /// The most they may be behind and be ready.
    pub lag_bound: u64,
}

pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let nats_connected =
        state.js.client().connection_state() == async_nats::connection::State::Connected;
    let (mut consumer_bound, mut lag) = (false, None);
    if nats_connected {
        let wait = std::time::Duration::from_secs(2);
        if let Ok(Ok(mut stream)) =
            tokio::time::timeout(wait, state.js.get_stream(STREAM_NAME)).await
        {
            consumer_bound = matches!(
                tokio::time::timeout(wait, stream.consumer_info(&state.consumer)).await,
                Ok(Ok(_))
            );
            if let Ok(Ok(info)) = tokio::time::timeout(wait, stream.info()).await {
                let applied = state.store.applied_seq().unwrap_or(0);
                lag = Some(info.state.last_sequence.saturating_sub(applied));
            }
        }
    }
    let ready = nats_connected && consumer_bound && lag.is_some_and(|l| l <= state.ready_lag);
    let status = if ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    let answer = Readiness {
        ready,
        nats_connected,
        consumer_bound,
        lag,
        lag_bound: state.ready_lag,
    };
    (status, Json(answer)).into_response()
}

/// Stream position, lag, quarantine, chain head, last verification.
pub(crate) async fn status_answer(state: &AppState) -> Result<Status, ApiError> {
    let applied = state.store.applied_seq()?;
    let stream_last = match state.js.get_stream(STREAM_NAME).await {
        Ok(mut stream) => stream.info().await.ok().map(|i| i.state.last_sequence),
        Err(_) => None,
    };
    let edges = edge_status(
        prolo_bus::edge::source_lags(&state.js)
            .await
            .unwrap_or_default(),
        state.store.edge_chains()?,
    );
    let head = state.store.chain_head()?;
    let verify: Option<VerifyReport> = state.store.status_get("last_verify")?;
    let quarantined = state.store.quarantined()?;
    // No stream yet (nothing recorded) or the broker away: say so, not 500.
    let consistency =
        match prolo_projector::integrity::consistency::check(&state.js, &state.store).await {
            Ok(consistency) => consistency.into(),
            Err(e) => StreamConsistency::Unknown {
                reason: e.to_string(),
            },
        };
    Ok(Status {
        stream: STREAM_NAME,
        stream_last_seq: stream_last,
        applied_seq: applied,
        lag: stream_last.map(|last| last.saturating_sub(applied)),
        quarantined,
        chain_head: chain::hex(&head),
        last_verification: verify,
        broker: state.broker.clone(),
        stream_consistency: consistency,
        edges,
        seals: SealStatus {
            checked: state.seals.is_some(),
            keys: state.seals.as_ref().map(|k| k.ids()).unwrap_or_default(),
            sealed_from: state.seals.as_ref().map(|k| k.sealed_from),
        },
    })
}

/// Each clinic edge by its sourcing lag and its recomputed chain.
pub(super) fn edge_status(
    lags: Vec<prolo_bus::edge::SourceLag>,
    chains: Vec<prolo_projector::model::EdgeChain>,
) -> Vec<EdgeStatus> {
    let mut edges: Vec<EdgeStatus> = lags
        .into_iter()
        .map(|lag| EdgeStatus {
            clinic: lag.clinic,
            sourcing_lag: Some(lag.lag),
            active_ms: lag.active_ms,
            chain: None,
        })
        .collect();
    for chain in chains {
        match edges.iter_mut().find(|e| e.clinic == chain.clinic) {
            Some(edge) => edge.chain = Some(chain),
            None => edges.push(EdgeStatus {
                clinic: chain.clinic.clone(),
                sourcing_lag: None,
                active_ms: None,
                chain: Some(chain),
            }),
        }
    }
    edges.sort_by(|a, b| a.clinic.cmp(&b.clinic));
    edges
}
