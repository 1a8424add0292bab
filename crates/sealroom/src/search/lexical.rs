//! BM25 over one room's texts: an inverted index that grows and shrinks with the room's writes.
//!
//! Written in-house on purpose (see ARCHITECTURE.md): it is small, per room, exact, and must
//! live inside the sealed model (built from opened records, dropped with the room).

use std::collections::HashMap;

use super::tokens;

/// BM25 term-frequency saturation.
const K1: f32 = 1.2;
/// BM25 length normalization.
const B: f32 = 0.75;

/// The inverted index of one room.
#[derive(Default)]
pub struct Lexical {
    term_ids: HashMap<String, u32>,
    /// Per term: (document slot, term frequency).
    postings: Vec<Vec<(u32, u32)>>,
    /// Per document slot: its terms and length (empty for documents without text).
    documents: HashMap<u32, (Vec<u32>, u32)>,
    total_length: u64,
}

impl Lexical {
    /// Indexes `text` as document `slot` (which must not be indexed already).
    pub fn insert(&mut self, slot: u32, text: &str) -> usize {
        assert!(!self.documents.contains_key(&slot), "a slot is indexed once");
        let mut frequencies: HashMap<u32, u32> = HashMap::new();
        let mut length = 0u32;
        let mut bytes = 0usize;
        for term in tokens::terms(text) {
            length += 1;
            let next_id = u32::try_from(self.postings.len()).expect("fewer than 4 billion terms");
            let id = *self.term_ids.entry(term).or_insert_with_key(|term| {
                bytes += term.len() + 48;
                next_id
            });
            if id == next_id {
                self.postings.push(Vec::new());
            }
            *frequencies.entry(id).or_default() += 1;
        }
        let mut terms = Vec::with_capacity(frequencies.len());
        for (id, frequency) in frequencies {
            self.postings[id as usize].push((slot, frequency));
            terms.push(id);
            bytes += 12;
        }
        self.total_length += u64::from(length);
        self.documents.insert(slot, (terms, length));
        bytes
    }

    /// Removes document `slot` if indexed.
    pub fn remove(&mut self, slot: u32) {
        if let Some((terms, length)) = self.documents.remove(&slot) {
            for id in terms {
                self.postings[id as usize].retain(|(document, _)| *document != slot);
            }
            self.total_length -= u64::from(length);
        }
    }

    /// BM25 scores of the documents containing any of `terms` and accepted by `candidate`.
    pub fn score(&self, terms: &[String], candidate: impl Fn(u32) -> bool) -> HashMap<u32, f32> {
        let count = self.documents.len() as f32;
        let average_length = if self.documents.is_empty() { 1.0 } else { self.total_length as f32 / count };
        let mut scores: HashMap<u32, f32> = HashMap::new();
        for term in terms {
            let Some(&id) = self.term_ids.get(term) else { continue };
            let postings = &self.postings[id as usize];
            if postings.is_empty() {
                continue;
            }
            let frequency_of_documents = postings.len() as f32;
            let idf = (1.0 + (count - frequency_of_documents + 0.5) / (frequency_of_documents + 0.5)).ln();
            for &(slot, frequency) in postings {
                if !candidate(slot) {
                    continue;
                }
                let length = self.documents.get(&slot).map_or(0, |(_, length)| *length) as f32;
                let frequency = frequency as f32;
                let weight = frequency * (K1 + 1.0) / (frequency + K1 * (1.0 - B + B * length / average_length));
                *scores.entry(slot).or_default() += idf * weight;
            }
        }
        scores
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rarer_and_more_frequent_terms_score_higher() {
        let mut index = Lexical::default();
        index.insert(0, "window seat on the train");
        index.insert(1, "aisle seat on the plane");
        index.insert(2, "window window window");
        let scores = index.score(&["window".to_owned()], |_| true);
        assert!(scores[&2] > scores[&0]);
        assert!(!scores.contains_key(&1));
        let rare = index.score(&["train".to_owned()], |_| true);
        let common = index.score(&["seat".to_owned()], |_| true);
        assert!(rare[&0] > common[&0], "a rarer term weighs more");
    }

    #[test]
    fn removed_documents_are_gone_and_candidates_filter() {
        let mut index = Lexical::default();
        index.insert(0, "alpha beta");
        index.insert(1, "alpha gamma");
        index.remove(0);
        let scores = index.score(&["alpha".to_owned(), "beta".to_owned()], |_| true);
        assert_eq!(scores.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert!(index.score(&["alpha".to_owned()], |slot| slot != 1).is_empty());
    }
}
