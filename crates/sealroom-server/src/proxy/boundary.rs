//! The proxy's model-boundary step: every model-bound text of a request — the client's
//! messages (text, text parts, tool-call arguments), the thread history and the recalled
//! memories — goes through the room's [`Masker`] before anything leaves for the upstream, and
//! the answer goes through its rehydrator before it reaches the client (the streamed case is
//! in `stream.rs`). What was rewritten is counted per category into the request's audit trail
//! and `/metrics`; a value is never logged, counted by value or echoed in an error.

use axum::http::StatusCode;
use sealroom::Room;
use sealroom::boundary::{Blocked, Counts, Masker, Rehydrator};
use sealroom::prompt::PromptBuilder;
use serde_json::Value;

use super::{ProxyError, refused};
use crate::state::AppState;

/// Metric of values rewritten at the boundary, by category and action.
pub const BOUNDARY_METRIC: &str = "sealroom_boundary_values_total";

/// The room's masker for this request: its pseudonym secret and its stored secrets.
pub(super) async fn masker<'s>(state: &'s AppState, room: &Room) -> Result<Masker<'s>, ProxyError> {
    let secret = room.pseudonym_secret().await?;
    let secrets = room.secrets().for_boundary().await?;
    Ok(Masker::new(&state.config().boundary.policies, secret, secrets))
}

/// The client's messages as they may be sent: every text they carry masked (content, text
/// parts, tool-call and legacy function-call arguments; JSON string by string).
pub(super) fn mask_messages(masker: &mut Masker<'_>, messages: &[Value]) -> Result<Vec<Value>, ProxyError> {
    let mut masked = messages.to_vec();
    for message in &mut masked {
        let Some(message) = message.as_object_mut() else { continue };
        if let Some(content) = message.get_mut("content") {
            mask_content(masker, content)?;
        }
        for call in message.get_mut("tool_calls").and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(arguments) = call.pointer_mut("/function/arguments") {
                mask_string(masker, arguments)?;
            }
        }
        if let Some(arguments) = message.get_mut("function_call").and_then(|call| call.get_mut("arguments")) {
            mask_string(masker, arguments)?;
        }
    }
    Ok(masked)
}

/// Text the client sends outside its messages: a predicted output (`prediction.content`).
/// Tool definitions and response schemas are the application's, not the user's, and pass as
/// they are.
pub(super) fn mask_fields(
    masker: &mut Masker<'_>,
    body: &mut serde_json::Map<String, Value>,
) -> Result<(), ProxyError> {
    if let Some(content) = body.get_mut("prediction").and_then(|prediction| prediction.get_mut("content")) {
        mask_content(masker, content)?;
    }
    Ok(())
}

/// The thread history and recalled memories in the builder, masked in place.
pub(super) fn mask_context(masker: &mut Masker<'_>, builder: &mut PromptBuilder) -> Result<(), ProxyError> {
    builder.rewrite_texts(|text| masker.mask_structured(text)).map_err(blocked)
}

/// Puts the request's values back into a complete answer: each choice's text and tool-call
/// arguments.
pub(super) fn rehydrate_answer(rehydrator: &Rehydrator, answer: &mut Value) {
    if rehydrator.is_empty() {
        return;
    }
    for choice in answer.get_mut("choices").and_then(Value::as_array_mut).into_iter().flatten() {
        let Some(message) = choice.get_mut("message") else { continue };
        if let Some(Value::String(text)) = message.get_mut("content") {
            *text = rehydrator.rehydrate(text);
        }
        for call in message.get_mut("tool_calls").and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(Value::String(arguments)) = call.pointer_mut("/function/arguments") {
                *arguments = rehydrator.rehydrate_structured(arguments);
            }
        }
        if let Some(Value::String(arguments)) = message.pointer_mut("/function_call/arguments") {
            *arguments = rehydrator.rehydrate_structured(arguments);
        }
    }
}

/// Counts per category into `/metrics`, and an audit event naming categories and counts.
pub(super) fn account(state: &AppState, room: &Room, counts: &Counts) -> Option<sealroom::rooms::AuditEvent> {
    if counts.is_empty() {
        return None;
    }
    let policies = &state.config().boundary.policies;
    for (category, count) in &counts.by_category {
        let action = policies.action(*category).name();
        metrics::counter!(BOUNDARY_METRIC, "category" => category.name(), "action" => action).increment(*count);
    }
    if counts.secret_references > 0 {
        metrics::counter!(BOUNDARY_METRIC, "category" => "stored_secret", "action" => "reference")
            .increment(counts.secret_references);
    }
    Some(room.audit().event("model boundary", &counts.summary(), "rewritten before the upstream", None))
}

fn mask_content(masker: &mut Masker<'_>, content: &mut Value) -> Result<(), ProxyError> {
    match content {
        Value::String(_) => mask_string(masker, content),
        Value::Array(parts) => {
            for part in parts {
                if let Some(text) = part.get_mut("text") {
                    mask_string(masker, text)?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn mask_string(masker: &mut Masker<'_>, value: &mut Value) -> Result<(), ProxyError> {
    if let Value::String(text) = value {
        *text = masker.mask_structured(text).map_err(blocked)?;
    }
    Ok(())
}

fn blocked(Blocked(category): Blocked) -> ProxyError {
    metrics::counter!(BOUNDARY_METRIC, "category" => category.name(), "action" => "block").increment(1);
    refused(
        StatusCode::BAD_REQUEST,
        "sensitive_data_blocked",
        format!(
            "the request holds a value of category {}, which this server is configured never to send to a model",
            category.name()
        ),
    )
}
