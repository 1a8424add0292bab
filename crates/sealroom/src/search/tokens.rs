//! Turning text into terms: Unicode word segments (UAX #29), lowercased, bounded in length.

use crate::limits::{QUERY_TERMS_MAX, TERM_CHARS_MAX};
use unicode_segmentation::UnicodeSegmentation;

/// The terms of a text, in order, with repeats.
pub fn terms(text: &str) -> Box<dyn Iterator<Item = String> + '_> {
    let normalized = |word: &str| {
        let mut term = String::new();
        normalize_into(word, &mut term);
        term
    };
    if text.is_ascii() {
        Box::new(ascii_words(text).map(normalized))
    } else {
        Box::new(text.unicode_words().map(normalized))
    }
}

/// Word classes of ASCII characters under UAX #29.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Digit,
    /// `_` (ExtendNumLet).
    Connector,
    /// `:` (MidLetter): joins letters only.
    MidLetter,
    /// `.` and `'` (MidNumLet, Single_Quote): join letters with letters, digits with digits.
    MidBoth,
    /// `,` and `;` (MidNum): join digits only.
    MidDigit,
    Other,
}

fn class(byte: u8) -> Class {
    match byte {
        b'a'..=b'z' | b'A'..=b'Z' => Class::Letter,
        b'0'..=b'9' => Class::Digit,
        b'_' => Class::Connector,
        b':' => Class::MidLetter,
        b'.' | b'\'' => Class::MidBoth,
        b',' | b';' => Class::MidDigit,
        _ => Class::Other,
    }
}

/// Word segmentation of ASCII text with exactly the results of `unicode_words` (UAX #29 rules
/// WB5–WB13b restricted to ASCII; a property test holds the two equal), at a fraction of the
/// cost: tokenizing dominates building a room's index.
fn ascii_words(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut position = 0;
    std::iter::from_fn(move || {
        loop {
            while position < bytes.len()
                && !matches!(class(bytes[position]), Class::Letter | Class::Digit | Class::Connector)
            {
                position += 1;
            }
            if position >= bytes.len() {
                return None;
            }
            let start = position;
            let mut last = class(bytes[position]);
            position += 1;
            while position < bytes.len() {
                let next = class(bytes[position]);
                if matches!(next, Class::Letter | Class::Digit | Class::Connector) {
                    last = next;
                    position += 1;
                    continue;
                }
                let after = bytes.get(position + 1).map(|byte| class(*byte));
                let joins = matches!(
                    (last, next, after),
                    (Class::Letter, Class::MidLetter | Class::MidBoth, Some(Class::Letter))
                        | (Class::Digit, Class::MidDigit | Class::MidBoth, Some(Class::Digit))
                );
                if !joins {
                    break;
                }
                last = after.unwrap_or(Class::Other);
                position += 2;
            }
            let word = &text[start..position];
            // `unicode_words` keeps only segments with an alphanumeric character.
            if word.bytes().any(|byte| byte.is_ascii_alphanumeric()) {
                return Some(word);
            }
        }
    })
}

/// Calls `visit` with each term of a text, in order, reusing one buffer (no allocation per
/// term: this is the inner loop of building an index).
pub fn for_each_term(text: &str, buffer: &mut String, mut visit: impl FnMut(&str)) {
    if text.is_ascii() {
        for word in ascii_words(text) {
            normalize_into(word, buffer);
            visit(buffer);
        }
    } else {
        for word in text.unicode_words() {
            normalize_into(word, buffer);
            visit(buffer);
        }
    }
}

/// Writes the term of one word into `term` (reusing its allocation): lowercased, cut to
/// [`TERM_CHARS_MAX`] characters.
pub fn normalize_into(word: &str, term: &mut String) {
    term.clear();
    if word.is_ascii() {
        // One byte per character: cut at a byte index, then lowercase in place.
        term.push_str(&word[..word.len().min(TERM_CHARS_MAX)]);
        term.make_ascii_lowercase();
    } else {
        term.extend(word.chars().flat_map(char::to_lowercase).take(TERM_CHARS_MAX));
    }
}

/// The distinct terms of a query, at most [`QUERY_TERMS_MAX`], in first-seen order.
pub fn query_terms(text: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for term in terms(text) {
        if !seen.contains(&term) {
            seen.push(term);
            if seen.len() == QUERY_TERMS_MAX {
                break;
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_segmented_and_lowercased() {
        let found: Vec<String> = terms("The Window-seat, please! Grüße 東京 don't").collect();
        assert_eq!(found, ["the", "window", "seat", "please", "grüße", "東", "京", "don't"]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        /// The ASCII fast path segments exactly as UAX #29 does.
        #[test]
        fn ascii_segmentation_equals_unicode_words(text in "[aZ09_:.',; \"\\-!?x]{0,40}") {
            let fast: Vec<&str> = ascii_words(&text).collect();
            let reference: Vec<&str> = text.unicode_words().collect();
            proptest::prop_assert_eq!(fast, reference);
        }
    }

    #[test]
    fn ascii_segmentation_examples() {
        for text in
            ["don't stop", "3.14 or 3,5", "a.b c:d 1:2 a1b2 __x_ e-mail", "x' 'y a..b 1..2", "..a.", "it's 1.5' a:"]
        {
            assert_eq!(ascii_words(text).collect::<Vec<_>>(), text.unicode_words().collect::<Vec<_>>(), "{text:?}");
        }
    }

    #[test]
    fn queries_are_bounded() {
        let huge = (0..10_000).map(|index| format!("term{index}")).collect::<Vec<_>>().join(" ");
        assert_eq!(query_terms(&huge).len(), QUERY_TERMS_MAX);
        assert_eq!(query_terms("a a b a"), ["a", "b"]);
        let long: String = "x".repeat(500);
        assert_eq!(query_terms(&long)[0].chars().count(), TERM_CHARS_MAX);
    }
}
