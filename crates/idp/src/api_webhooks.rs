//! `GET /v1/webhooks/deliveries`: the webhook delivery log, newest first
//! (`{data: [...], total_count}`), behind the secret key. Keel's own route: Clerk shows
//! deliveries in its Dashboard (Svix).

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use crate::idp::Idp;

/// The routes, for the Backend API router (behind the secret key).
pub(crate) fn routes() -> axum::Router<Idp> {
    axum::Router::new().route("/v1/webhooks/deliveries", get(deliveries))
}

async fn deliveries(State(idp): State<Idp>) -> Json<Value> {
    let data: Vec<Value> = idp
        .webhook_deliveries()
        .iter()
        .map(|r| r.to_json())
        .collect();
    Json(json!({ "total_count": data.len(), "data": data }))
}
