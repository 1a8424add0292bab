//! The model boundary: what model-bound text becomes before it leaves for a provider, and how
//! the provider's answer gets its values back.
//!
//! A [`Masker`] rewrites each text of one request: a stored secret's value becomes its
//! reference `{{secret:NAME}}`; every detected value (see [`crate::detect`]) is then
//! pseudonymized, redacted, refused or left alone by its category's [`Action`]. A pseudonym is
//! `[EMAIL_1a2b3c4d]`: the category and a tag derived under the room's own key, so a value gets
//! the same pseudonym in every turn of every thread of its room and an unrelated one in any
//! other room, and the mapping needs no storage — it is recomputed from the room's sealed
//! state on every request. The [`Rehydrator`] puts the values back into the answer, also when
//! a stream splits a pseudonym across chunks ([`StreamRehydrator`]). Redactions are final.
//!
//! Only counts per category leave this module for logs, metrics and the audit trail; a value
//! never does.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use regex::Regex;

use crate::detect::{self, Category};
use crate::limits::{JSON_DEPTH_MAX, SECRET_VALUE_CHARS_MIN};
use crate::rooms::PseudonymSecret;

/// What happens to a detected value of a category.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Replaced by the room's stable pseudonym; the answer gets the value back.
    Pseudonymize,
    /// Replaced by `[REDACTED_<CATEGORY>]`; irreversible.
    Redact,
    /// The request is refused, naming the category (never the value).
    Block,
    /// Sent as it is.
    Off,
}

impl Action {
    pub fn parse(name: &str) -> Option<Action> {
        match name {
            "pseudonymize" => Some(Action::Pseudonymize),
            "redact" => Some(Action::Redact),
            "block" => Some(Action::Block),
            "off" => Some(Action::Off),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Pseudonymize => "pseudonymize",
            Action::Redact => "redact",
            Action::Block => "block",
            Action::Off => "off",
        }
    }
}

/// The action of every category: by default personal data is pseudonymized and secrets are
/// redacted (a model never needs a credential's value; a tool resolves it by reference).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policies(BTreeMap<Category, Action>);

impl Default for Policies {
    fn default() -> Policies {
        Policies(
            Category::ALL
                .into_iter()
                .map(|category| (category, if category.is_secret() { Action::Redact } else { Action::Pseudonymize }))
                .collect(),
        )
    }
}

impl Policies {
    pub fn set(&mut self, category: Category, action: Action) {
        self.0.insert(category, action);
    }

    pub fn action(&self, category: Category) -> Action {
        self.0.get(&category).copied().unwrap_or(Action::Off)
    }

    /// Whether any category is acted on at all (otherwise text need not be scanned).
    pub fn any_active(&self) -> bool {
        self.0.values().any(|action| *action != Action::Off)
    }
}

/// A model-bound text refused because it holds a value of a blocked category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the request holds a value of category {}, which this server does not send to a model", .0.name())]
pub struct Blocked(pub Category);

/// How many values of each category one request had rewritten, and how many stored secrets'
/// values became references.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub by_category: BTreeMap<Category, u64>,
    pub secret_references: u64,
}

impl Counts {
    pub fn is_empty(&self) -> bool {
        self.by_category.is_empty() && self.secret_references == 0
    }

    /// `email=2 phone=1 secret_reference=1`: for the audit trail (names and counts only).
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> =
            self.by_category.iter().map(|(category, count)| format!("{}={count}", category.name())).collect();
        if self.secret_references > 0 {
            parts.push(format!("secret_reference={}", self.secret_references));
        }
        parts.join(" ")
    }
}

/// Rewrites one request's model-bound texts (see the module documentation).
pub struct Masker<'a> {
    policies: &'a Policies,
    secret: PseudonymSecret,
    /// The room's stored secrets' values, found in one leftmost-longest pass (an inserted
    /// reference is never searched again), and the reference each becomes.
    secrets: Option<(aho_corasick::AhoCorasick, Vec<String>)>,
    placeholders: HashMap<String, String>,
    counts: Counts,
}

impl std::fmt::Debug for Masker<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Masker").field("counts", &self.counts).finish_non_exhaustive()
    }
}

impl<'a> Masker<'a> {
    /// A masker for one request of the room whose pseudonym secret is `secret`, replacing the
    /// room's stored `secrets` (name, value) by reference.
    pub fn new(policies: &'a Policies, secret: PseudonymSecret, mut secrets: Vec<(String, String)>) -> Masker<'a> {
        secrets.retain(|(_, value)| value.chars().count() >= SECRET_VALUE_CHARS_MIN);
        let references: Vec<String> = secrets.iter().map(|(name, _)| format!("{{{{secret:{name}}}}}")).collect();
        let searcher = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(secrets.iter().map(|(_, value)| value.as_bytes()))
            .ok()
            .filter(|_| !secrets.is_empty());
        Masker {
            policies,
            secret,
            secrets: searcher.map(|searcher| (searcher, references)),
            placeholders: HashMap::new(),
            counts: Counts::default(),
        }
    }

    /// `text` as it may be sent to a model.
    pub fn mask(&mut self, text: &str) -> Result<String, Blocked> {
        let (referenced, inserted) = self.reference_secrets(text);
        let text = referenced.as_deref().unwrap_or(text);
        if !self.policies.any_active() {
            return Ok(text.to_owned());
        }
        let mut findings = detect::scan(text);
        // A reference this masker inserted is what replaces a secret, never a finding itself
        // (`secret:NAME` looks like a value assigned to a secret-looking name). Text a client
        // wrote in the shape of a reference is scanned like any other.
        findings.retain(|finding| {
            !inserted
                .iter()
                .any(|reference| reference.start <= finding.bytes.start && finding.bytes.end <= reference.end)
        });
        if let Some(finding) = findings.iter().find(|finding| self.policies.action(finding.category) == Action::Block) {
            return Err(Blocked(finding.category));
        }
        let mut masked = String::with_capacity(text.len());
        let mut copied = 0;
        for finding in findings {
            let action = self.policies.action(finding.category);
            if action == Action::Off {
                continue;
            }
            masked.push_str(&text[copied..finding.bytes.start]);
            let value = &text[finding.bytes.clone()];
            match action {
                Action::Pseudonymize => {
                    let placeholder = self.pseudonym(finding.category, value);
                    masked.push_str(&placeholder);
                }
                _ => masked.push_str(&format!("[REDACTED_{}]", label(finding.category))),
            }
            *self.counts.by_category.entry(finding.category).or_default() += 1;
            copied = finding.bytes.end;
        }
        masked.push_str(&text[copied..]);
        Ok(masked)
    }

    /// Like [`Masker::mask`], for text that may be JSON (tool-call arguments, tool results,
    /// stored values): if it is an object or an array, each string in it (keys included) is
    /// masked on its own and the JSON written again, so an escape such as `\n` never hides a
    /// value from detection and a replacement never breaks the JSON; otherwise it is text.
    pub fn mask_structured(&mut self, text: &str) -> Result<String, Blocked> {
        let trimmed = text.trim_start();
        if trimmed.starts_with(['{', '['])
            && let Ok(mut value) = serde_json::from_str::<serde_json::Value>(text)
        {
            self.mask_value(&mut value, 0)?;
            return Ok(value.to_string());
        }
        self.mask(text)
    }

    fn mask_value(&mut self, value: &mut serde_json::Value, depth: usize) -> Result<(), Blocked> {
        use serde_json::Value;
        match value {
            Value::String(text) => *text = self.mask(text)?,
            Value::Array(items) if depth < JSON_DEPTH_MAX => {
                for item in items {
                    self.mask_value(item, depth + 1)?;
                }
            }
            Value::Object(members) if depth < JSON_DEPTH_MAX => {
                let mut masked = serde_json::Map::with_capacity(members.len());
                for (key, mut member) in std::mem::take(members) {
                    self.mask_value(&mut member, depth + 1)?;
                    masked.insert(self.mask(&key)?, member);
                }
                *members = masked;
            }
            // Deeper than the parsers downstream accept: masked as its text.
            Value::Array(_) | Value::Object(_) => *value = Value::String(self.mask(&value.to_string())?),
            _ => {}
        }
        Ok(())
    }

    /// What was rewritten so far.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// The pseudonyms of this request, to put the values back into the answer.
    pub fn rehydrator(&self) -> Rehydrator {
        Rehydrator { placeholders: self.placeholders.clone() }
    }

    /// `text` with every stored secret's value replaced by its reference in one pass over the
    /// original text, and where the references were inserted; `None` if there was none.
    fn reference_secrets(&mut self, text: &str) -> (Option<String>, Vec<std::ops::Range<usize>>) {
        let Some((searcher, references)) = &self.secrets else { return (None, Vec::new()) };
        let mut rewritten = String::new();
        let mut inserted = Vec::new();
        let mut copied = 0;
        for found in searcher.find_iter(text) {
            rewritten.push_str(&text[copied..found.start()]);
            let reference = &references[found.pattern().as_usize()];
            inserted.push(rewritten.len()..rewritten.len() + reference.len());
            rewritten.push_str(reference);
            copied = found.end();
        }
        if inserted.is_empty() {
            return (None, inserted);
        }
        rewritten.push_str(&text[copied..]);
        self.counts.secret_references += inserted.len() as u64;
        (Some(rewritten), inserted)
    }

    /// The room's pseudonym of `value` as written (so rehydration gives back exactly what was
    /// sent): its category and a tag under the room's pseudonym secret; longer if the short
    /// tag is already another value's in this request.
    fn pseudonym(&mut self, category: Category, value: &str) -> String {
        let tag = self.secret.tag(&[category.name().as_bytes(), value.as_bytes()]);
        for length in [4, 8] {
            let placeholder = format!("[{}_{}]", label(category), hex::encode(&tag[..length]));
            match self.placeholders.get(&placeholder) {
                Some(known) if known != value => continue,
                Some(_) => return placeholder,
                None => {
                    self.placeholders.insert(placeholder.clone(), value.to_owned());
                    return placeholder;
                }
            }
        }
        // Two values sharing 64 bits of an HMAC: not a pseudonym worth keeping apart.
        format!("[REDACTED_{}]", label(category))
    }
}

fn label(category: Category) -> String {
    category.name().to_ascii_uppercase()
}

/// The length of the longest placeholder: `[` + the longest label + `_` + 16 hex digits + `]`.
const LONGEST_PLACEHOLDER: usize = 1 + 19 + 1 + 16 + 1;

static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| {
    // A constant pattern, compiled by the tests.
    Regex::new(r"\[[A-Z_]{2,19}_[0-9a-f]{8}(?:[0-9a-f]{8})?\]").expect("the placeholder pattern compiles")
});

/// Puts one request's pseudonymized values back into the model's answer. Placeholders it did
/// not make (a model can invent one) are left as they are.
#[derive(Clone, Default)]
pub struct Rehydrator {
    placeholders: HashMap<String, String>,
}

impl std::fmt::Debug for Rehydrator {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Rehydrator").field("pseudonyms", &self.placeholders.len()).finish()
    }
}

impl Rehydrator {
    /// Like [`Rehydrator::rehydrate`], for text that may be JSON (tool-call arguments): each
    /// string of a JSON object or array is rehydrated on its own and the JSON written again, so
    /// a value holding a quote cannot break out of its string.
    pub fn rehydrate_structured(&self, text: &str) -> String {
        if self.placeholders.is_empty() || !text.contains('[') {
            return text.to_owned();
        }
        let trimmed = text.trim_start();
        if trimmed.starts_with(['{', '['])
            && let Ok(mut value) = serde_json::from_str::<serde_json::Value>(text)
        {
            self.rehydrate_value(&mut value);
            return value.to_string();
        }
        self.rehydrate(text)
    }

    fn rehydrate_value(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(text) => *text = self.rehydrate(text),
            Value::Array(items) => items.iter_mut().for_each(|item| self.rehydrate_value(item)),
            Value::Object(members) => {
                let rehydrated = std::mem::take(members)
                    .into_iter()
                    .map(|(key, mut member)| {
                        self.rehydrate_value(&mut member);
                        (self.rehydrate(&key), member)
                    })
                    .collect();
                *members = rehydrated;
            }
            _ => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        self.placeholders.is_empty()
    }

    pub fn rehydrate(&self, text: &str) -> String {
        self.substitute(text, false)
    }

    /// Like [`Rehydrator::rehydrate`] for pieces of JSON text (streamed tool-call arguments):
    /// values are written escaped as the inside of a JSON string.
    pub fn rehydrate_json_escaped(&self, text: &str) -> String {
        self.substitute(text, true)
    }

    fn substitute(&self, text: &str, json_escaped: bool) -> String {
        if self.placeholders.is_empty() || !text.contains('[') {
            return text.to_owned();
        }
        PLACEHOLDER
            .replace_all(text, |captures: &regex::Captures<'_>| {
                let placeholder = &captures[0];
                match self.placeholders.get(placeholder) {
                    None => placeholder.to_owned(),
                    Some(value) if json_escaped => {
                        let quoted = serde_json::Value::String(value.clone()).to_string();
                        quoted[1..quoted.len() - 1].to_owned()
                    }
                    Some(value) => value.clone(),
                }
            })
            .into_owned()
    }

    /// A rehydrator for one streamed text (one per choice).
    pub fn stream(&self) -> StreamRehydrator {
        StreamRehydrator { rehydrator: self.clone(), carry: String::new(), json_escaped: false }
    }

    /// A rehydrator for one streamed piece of JSON text (a tool call's arguments).
    pub fn stream_json_escaped(&self) -> StreamRehydrator {
        StreamRehydrator { rehydrator: self.clone(), carry: String::new(), json_escaped: true }
    }
}

/// Rehydrates text arriving in pieces: the end of a piece that may be the start of a
/// placeholder is held back until the next piece says whether it is one.
pub struct StreamRehydrator {
    rehydrator: Rehydrator,
    carry: String,
    json_escaped: bool,
}

impl std::fmt::Debug for StreamRehydrator {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("StreamRehydrator").field("held_back_bytes", &self.carry.len()).finish()
    }
}

impl StreamRehydrator {
    /// The text to send for `piece` (possibly empty, possibly including held-back text).
    pub fn push(&mut self, piece: &str) -> String {
        self.carry.push_str(piece);
        let hold_from = self.possible_placeholder_start();
        let ready: String = self.carry.drain(..hold_from).collect();
        self.rehydrator.substitute(&ready, self.json_escaped)
    }

    /// The text still held back, at the end of the stream.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.carry);
        self.rehydrator.substitute(&rest, self.json_escaped)
    }

    /// Where the held-back part begins: the last `[` whose text so far could still become a
    /// placeholder; the end of the text if there is none.
    fn possible_placeholder_start(&self) -> usize {
        if self.rehydrator.is_empty() {
            return self.carry.len();
        }
        let Some(open) = self.carry.rfind('[') else { return self.carry.len() };
        let tail = &self.carry[open + 1..];
        let could_be = tail.len() < LONGEST_PLACEHOLDER
            && tail.bytes().all(|byte| byte.is_ascii_uppercase() || byte == b'_' || byte.is_ascii_hexdigit());
        if could_be { open } else { self.carry.len() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(byte: u8) -> PseudonymSecret {
        PseudonymSecret::from_bytes([byte; 32])
    }

    #[test]
    fn the_same_value_gets_the_same_pseudonym_in_a_room_and_another_in_another_room() {
        let policies = Policies::default();
        let text = "mail ana@example.org or call +44 20 7946 0958";
        let first = Masker::new(&policies, secret(1), vec![]).mask(text).expect("masked");
        let again = Masker::new(&policies, secret(1), vec![]).mask("ana@example.org").expect("masked");
        let other_room = Masker::new(&policies, secret(2), vec![]).mask(text).expect("masked");
        assert!(!first.contains("ana@") && !first.contains("7946"), "{first}");
        assert!(first.contains(&again), "{first} / {again}");
        assert_ne!(first, other_room);
    }

    #[test]
    fn rehydration_inverts_pseudonymization_and_redaction_is_final() {
        let policies = Policies::default();
        let mut masker = Masker::new(&policies, secret(1), vec![]);
        let text = "ana@example.org, key AKIAIOSFODNN7EXAMPLE, card 4111 1111 1111 1111";
        let masked = masker.mask(text).expect("masked");
        assert!(masked.contains("[REDACTED_CLOUD_ACCESS_KEY]"), "{masked}");
        let back = masker.rehydrator().rehydrate(&masked);
        assert_eq!(back, "ana@example.org, key [REDACTED_CLOUD_ACCESS_KEY], card 4111 1111 1111 1111");
        assert_eq!(masker.counts().summary(), "email=1 card_number=1 cloud_access_key=1");
    }

    #[test]
    fn blocked_categories_refuse_and_stored_secrets_become_references() {
        let mut policies = Policies::default();
        policies.set(Category::UsSsn, Action::Block);
        let mut masker = Masker::new(&policies, secret(1), vec![("db".into(), "hunter2-horse".into())]);
        assert_eq!(masker.mask("ssn 123-45-6789"), Err(Blocked(Category::UsSsn)));
        let masked = masker.mask("use hunter2-horse to log in").expect("masked");
        assert_eq!(masked, "use {{secret:db}} to log in");
        let mut masker = Masker::new(&policies, secret(1), vec![("db-password".into(), "Tr0ub4dor-3".into())]);
        assert_eq!(masker.mask("the password Tr0ub4dor-3").expect("masked"), "the password {{secret:db-password}}");
        assert_eq!(masker.counts().secret_references, 1);
    }

    /// Regressions from the review of this module: stored secrets replaced in one pass (a name
    /// holding another secret's value once made the text grow tenfold per secret), references
    /// a client writes are scanned like any text, JSON escapes never hide a value.
    #[test]
    fn secrets_are_referenced_in_one_pass_and_client_text_shaped_like_a_reference_is_scanned() {
        let policies = Policies::default();
        let secrets: Vec<(String, String)> =
            (10..20).map(|index| (format!("{}{index}", "a".repeat(62)), "aaaaaaaa".to_owned())).collect();
        let mut masker = Masker::new(&policies, secret(1), secrets);
        let masked = masker.mask("x aaaaaaaa y").expect("masked");
        assert!(masked.len() < 100 && masked.matches("{{secret:").count() == 1, "{masked}");
        let mut masker = Masker::new(&policies, secret(1), vec![("db".into(), "secret:dbx".into())]);
        assert_eq!(masker.mask("{{secret:dbx}}").expect("masked").matches("{{secret:").count(), 1);
        let mut masker = Masker::new(&policies, secret(1), vec![]);
        let masked =
            masker.mask("{{secret:AKIAIOSFODNN7EXAMPLE}} postgres://u:{{secret:db}}REALPASS1@h").expect("masked");
        assert!(!masked.contains("AKIAIOSFODNN7EXAMPLE") && !masked.contains("REALPASS1"), "{masked}");
    }

    #[test]
    fn json_is_masked_string_by_string_and_rehydrated_without_breaking_it() {
        let mut policies = Policies::default();
        policies.set(Category::ConnectionPassword, Action::Pseudonymize);
        let mut masker = Masker::new(&policies, secret(1), vec![]);
        let arguments = r#"{"note":"x\n4111111111111111","db":"redis://u:pa\"ss99word@h","ana@example.org":1}"#;
        let masked = masker.mask_structured(arguments).expect("masked");
        let parsed: serde_json::Value = serde_json::from_str(&masked).expect("still JSON");
        assert!(
            !masked.contains("4111111111111111") && !masked.contains("pa\\\"ss99word") && !masked.contains("ana@"),
            "{parsed}"
        );
        let back: serde_json::Value =
            serde_json::from_str(&masker.rehydrator().rehydrate_structured(&masked)).expect("rehydrated JSON");
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(arguments).expect("the original"));
    }

    #[test]
    fn a_placeholder_split_across_pieces_is_rehydrated_whole() {
        let policies = Policies::default();
        let mut masker = Masker::new(&policies, secret(1), vec![]);
        let masked = masker.mask("write to ana@example.org").expect("masked");
        let placeholder = &masked["write to ".len()..];
        let answer = format!("Sure, I wrote to {placeholder} [sic] and [done].");
        for split in 0..answer.len() {
            if !answer.is_char_boundary(split) {
                continue;
            }
            let mut stream = masker.rehydrator().stream();
            let mut out = stream.push(&answer[..split]);
            out.push_str(&stream.push(&answer[split..]));
            out.push_str(&stream.finish());
            assert_eq!(out, "Sure, I wrote to ana@example.org [sic] and [done].", "split at {split}");
        }
    }
}
