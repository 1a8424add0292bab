//! Turning text into terms: Unicode word segments (UAX #29), lowercased, bounded in length.

use unicode_segmentation::UnicodeSegmentation;

/// Longest term kept, in characters; longer words are cut (they are identifiers or noise).
pub const TERM_CHARS_MAX: usize = 64;

/// Most distinct terms a query contributes; a 10,000-term query costs no more than this.
pub const QUERY_TERMS_MAX: usize = 64;

/// The terms of a text, in order, with repeats.
pub fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    text.unicode_words().map(|word| word.chars().flat_map(char::to_lowercase).take(TERM_CHARS_MAX).collect())
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

    #[test]
    fn queries_are_bounded() {
        let huge = (0..10_000).map(|index| format!("term{index}")).collect::<Vec<_>>().join(" ");
        assert_eq!(query_terms(&huge).len(), QUERY_TERMS_MAX);
        assert_eq!(query_terms("a a b a"), ["a", "b"]);
        let long: String = "x".repeat(500);
        assert_eq!(query_terms(&long)[0].chars().count(), TERM_CHARS_MAX);
    }
}
