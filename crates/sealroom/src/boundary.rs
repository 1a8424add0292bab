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
use crate::limits::SECRET_VALUE_CHARS_MIN;
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
    /// Stored secrets as (name, value), longest value first, so a value that contains another
    /// is replaced whole.
    secrets: Vec<(String, String)>,
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
        secrets.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
        Masker { policies, secret, secrets, placeholders: HashMap::new(), counts: Counts::default() }
    }

    /// `text` as it may be sent to a model.
    pub fn mask(&mut self, text: &str) -> Result<String, Blocked> {
        let referenced = self.reference_secrets(text);
        let text = referenced.as_deref().unwrap_or(text);
        if !self.policies.any_active() {
            return Ok(text.to_owned());
        }
        let references: Vec<std::ops::Range<usize>> =
            SECRET_REFERENCE.find_iter(text).map(|reference| reference.range()).collect();
        let mut findings = detect::scan(text);
        // A reference is what replaces a secret: never a finding itself (`secret:NAME` looks
        // like a value assigned to a secret-looking name).
        findings.retain(|finding| {
            !references
                .iter()
                .any(|reference| finding.bytes.start < reference.end && reference.start < finding.bytes.end)
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

    /// What was rewritten so far.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// The pseudonyms of this request, to put the values back into the answer.
    pub fn rehydrator(&self) -> Rehydrator {
        Rehydrator { placeholders: self.placeholders.clone() }
    }

    fn reference_secrets(&mut self, text: &str) -> Option<String> {
        let mut rewritten: Option<String> = None;
        for (name, value) in &self.secrets {
            let current = rewritten.as_deref().unwrap_or(text);
            let occurrences = current.matches(value.as_str()).count();
            if occurrences > 0 {
                self.counts.secret_references += occurrences as u64;
                rewritten = Some(current.replace(value.as_str(), &format!("{{{{secret:{name}}}}}")));
            }
        }
        rewritten
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

static SECRET_REFERENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{\{secret:[A-Za-z0-9_.\-]{1,64}\}\}").expect("the reference pattern compiles"));

/// Puts one request's pseudonymized values back into the model's answer. Placeholders it did
/// not make (a model can invent one) are left as they are.
#[derive(Clone, Debug, Default)]
pub struct Rehydrator {
    placeholders: HashMap<String, String>,
}

impl Rehydrator {
    pub fn is_empty(&self) -> bool {
        self.placeholders.is_empty()
    }

    pub fn rehydrate(&self, text: &str) -> String {
        if self.placeholders.is_empty() || !text.contains('[') {
            return text.to_owned();
        }
        PLACEHOLDER
            .replace_all(text, |captures: &regex::Captures<'_>| {
                let placeholder = &captures[0];
                self.placeholders.get(placeholder).cloned().unwrap_or_else(|| placeholder.to_owned())
            })
            .into_owned()
    }

    /// A rehydrator for one streamed answer (one per choice).
    pub fn stream(&self) -> StreamRehydrator {
        StreamRehydrator { rehydrator: self.clone(), carry: String::new() }
    }
}

/// Rehydrates text arriving in pieces: the end of a piece that may be the start of a
/// placeholder is held back until the next piece says whether it is one.
#[derive(Debug)]
pub struct StreamRehydrator {
    rehydrator: Rehydrator,
    carry: String,
}

impl StreamRehydrator {
    /// The text to send for `piece` (possibly empty, possibly including held-back text).
    pub fn push(&mut self, piece: &str) -> String {
        self.carry.push_str(piece);
        let hold_from = self.possible_placeholder_start();
        let ready: String = self.carry.drain(..hold_from).collect();
        self.rehydrator.rehydrate(&ready)
    }

    /// The text still held back, at the end of the stream.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.carry);
        self.rehydrator.rehydrate(&rest)
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
