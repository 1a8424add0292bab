//! Recording every request that touched a room in that room's audit trail: who (the actor's
//! room id and token id), what (method and route), which ids (the request path, which holds
//! them), the outcome (status) and the request id. The entry is appended before the response
//! is returned, so an acknowledged request is never missing from the trail.
//!
//! Requests on the tenant room are recorded in the tenant room, naming the member's own room.
//! Reading the trail itself and erasing the account are not recorded (the first would grow the
//! trail by reading it; the second would recreate the room it just erased — the global erasure
//! log records erasures).

use std::sync::{Arc, Mutex};

use sealroom::Principal;
use sealroom::rooms::AuditEvent;

use crate::app::AppState;

/// Filled by the `Caller` extractor with the verified principal, read back by the middleware.
#[derive(Clone, Default)]
pub struct AuditSlot(Arc<Mutex<Option<Principal>>>);

impl AuditSlot {
    pub fn fill(&self, principal: &Principal) {
        *self.0.lock().expect("audit slot lock") = Some(principal.clone());
    }

    fn take(&self) -> Option<Principal> {
        self.0.lock().expect("audit slot lock").take()
    }
}

fn recorded(method: &str, route: &str) -> bool {
    !matches!((method, route), ("GET", "/v1/me/audit") | ("DELETE", "/v1/me"))
}

/// Appends the request to the audit trail of the room it touched, if it touched one.
pub async fn record(
    state: &AppState,
    slot: &AuditSlot,
    method: &str,
    route: &str,
    path: &str,
    status: u16,
    request_id: &str,
) {
    let Some(principal) = slot.take() else { return };
    if !recorded(method, route) {
        return;
    }
    let room = if path.starts_with("/v1/tenant/") {
        match state.rooms().tenant_room(&principal) {
            Ok(room) => room,
            Err(_) => return,
        }
    } else {
        state.rooms().room(&principal)
    };
    let operation = format!("{method} {route}");
    let event = match AuditEvent::new(&operation, path, &status.to_string(), Some(request_id)) {
        Ok(event) => event,
        Err(_) => match AuditEvent::new(&operation, "(path too long)", &status.to_string(), Some(request_id)) {
            Ok(event) => event,
            Err(_) => return,
        },
    };
    if let Err(error) = room.record_audit(vec![event]).await {
        metrics::counter!("sealroom_audit_failures_total").increment(1);
        tracing::error!(%error, "could not append to the audit trail");
    }
}
