//! Which fields of a client's chat request reach the upstream: an allow-list per flavour.
//!
//! The rule (README, "An OpenAI SDK client through sealroom"):
//! - generation parameters the flavour understands are forwarded;
//! - identity and cache fields the server sets itself per room (`user`, `prompt_cache_key`,
//!   `safety_identifier`, `cache_salt`) and client-side routing fields (`base_url`, `api_key`,
//!   `organization`, `service_tier`, …) are dropped;
//! - provider-side storage (`store: true`, non-empty `metadata`) is refused with `400`: the
//!   prompt sealroom assembles holds the user's thread and memories, and a copy kept by the
//!   provider would be outside the room's erasure (`store: false` and empty `metadata` are
//!   dropped);
//! - anything else is refused with `400 unsupported_parameter`, naming the field: a field the
//!   server does not understand could ask the provider to keep, route or share something. The
//!   same holds inside each message (`role`, `content`, `name`, tool-call fields; content parts
//!   pass as they are).

use serde_json::{Map, Value};

use crate::config::UpstreamFlavour;
use crate::limits::FIELD_NAME_QUOTED_MAX;

/// Generation parameters of the OpenAI chat API, forwarded for every flavour.
const CHAT_PARAMETERS: [&str; 26] = [
    "model",
    "messages",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "n",
    "stop",
    "max_tokens",
    "max_completion_tokens",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "response_format",
    "seed",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "functions",
    "function_call",
    "reasoning_effort",
    "modalities",
    "prediction",
    "verbosity",
];

/// vLLM's extra sampling and decoding parameters, forwarded to a vLLM upstream only.
const VLLM_PARAMETERS: [&str; 16] = [
    "top_k",
    "min_p",
    "repetition_penalty",
    "length_penalty",
    "min_tokens",
    "ignore_eos",
    "skip_special_tokens",
    "spaces_between_special_tokens",
    "include_stop_str_in_output",
    "guided_json",
    "guided_regex",
    "guided_choice",
    "guided_grammar",
    "guided_decoding_backend",
    "structured_outputs",
    "chat_template_kwargs",
];

/// Fields the server sets itself, per room, or that would route the request elsewhere.
const DROPPED: [&str; 12] = [
    "user",
    "prompt_cache_key",
    "safety_identifier",
    "cache_salt",
    "base_url",
    "api_base",
    "api_key",
    "api_type",
    "api_version",
    "organization",
    "project",
    "service_tier",
];

/// Fields of one message (the chat API's; content parts pass as they are).
const MESSAGE_FIELDS: [&str; 8] =
    ["role", "content", "name", "tool_calls", "tool_call_id", "function_call", "refusal", "audio"];

/// Fields that ask the provider to keep the request.
const STORAGE: [&str; 2] = ["store", "metadata"];

/// Why a request's fields were refused.
#[derive(Debug, PartialEq, Eq)]
pub enum FieldRefusal {
    /// The field asks the provider to store the request.
    ProviderStorage(&'static str),
    /// The server does not forward this field.
    Unsupported(String),
}

/// Keeps only what may reach the upstream of `flavour` (see the module comment).
pub fn filter(flavour: UpstreamFlavour, body: &mut Map<String, Value>) -> Result<(), FieldRefusal> {
    for field in STORAGE {
        match body.remove(field) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(Value::Object(map)) if map.is_empty() => {}
            Some(_) => return Err(FieldRefusal::ProviderStorage(field)),
        }
    }
    for field in DROPPED {
        body.remove(field);
    }
    let allowed = |name: &str| {
        CHAT_PARAMETERS.contains(&name) || (flavour == UpstreamFlavour::Vllm && VLLM_PARAMETERS.contains(&name))
    };
    if let Some(name) = body.keys().find(|name| !allowed(name)) {
        return Err(FieldRefusal::Unsupported(quotable(name)));
    }
    let messages = body.get("messages").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for message in messages.iter().filter_map(Value::as_object) {
        if let Some(name) = message.keys().find(|name| !MESSAGE_FIELDS.contains(&name.as_str())) {
            return Err(FieldRefusal::Unsupported(format!("messages[].{}", quotable(name))));
        }
    }
    Ok(())
}

/// A client-chosen field name, safe to quote in an error: printable ASCII, bounded.
fn quotable(name: &str) -> String {
    let printable: String = name.chars().filter(|character| character.is_ascii_graphic()).collect();
    printable.chars().take(FIELD_NAME_QUOTED_MAX).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn generation_parameters_pass_and_routing_is_dropped() {
        let mut request = body(json!({"model": "m", "messages": [], "temperature": 0, "user": "bob",
            "service_tier": "priority", "store": false, "metadata": {}, "api_key": "sk"}));
        filter(UpstreamFlavour::OpenAi, &mut request).expect("allowed");
        let mut kept: Vec<&String> = request.keys().collect();
        kept.sort();
        assert_eq!(kept, ["messages", "model", "temperature"]);
    }

    #[test]
    fn storage_and_unknown_fields_are_refused() {
        let refused = |value: Value, flavour| filter(flavour, &mut body(value));
        assert_eq!(
            refused(json!({"model": "m", "store": true}), UpstreamFlavour::OpenAi),
            Err(FieldRefusal::ProviderStorage("store"))
        );
        assert_eq!(
            refused(json!({"model": "m", "metadata": {"k": "v"}}), UpstreamFlavour::OpenAi),
            Err(FieldRefusal::ProviderStorage("metadata"))
        );
        assert_eq!(
            refused(json!({"model": "m", "top_k": 5}), UpstreamFlavour::OpenAi),
            Err(FieldRefusal::Unsupported("top_k".into()))
        );
        assert_eq!(refused(json!({"model": "m", "top_k": 5}), UpstreamFlavour::Vllm), Ok(()));
        assert_eq!(
            refused(json!({"model": "m", "x\u{202e}\ny": 1}), UpstreamFlavour::Generic),
            Err(FieldRefusal::Unsupported("xy".into()))
        );
        assert_eq!(
            refused(
                json!({"model": "m", "messages": [{"role": "user", "content": "hi", "cache_control": {}}]}),
                UpstreamFlavour::OpenAi
            ),
            Err(FieldRefusal::Unsupported("messages[].cache_control".into()))
        );
    }
}
