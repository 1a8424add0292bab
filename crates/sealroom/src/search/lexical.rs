//! BM25 over one room's texts: an inverted index that grows and shrinks with the room's writes.
//!
//! Written in-house on purpose (see ARCHITECTURE.md): it is small, per room, exact, and must
//! live inside the sealed model (built from opened records, dropped with the room).
//!
//! Maps use foldhash (seeded randomly per process): terms are the room owner's own text, and
//! SipHash cost a third of index-build time.

use foldhash::HashMap;
use foldhash::HashMapExt;

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
    /// Indexes `text` as document `slot` (which must not be indexed already). Returns the bytes
    /// it added.
    pub fn insert(&mut self, slot: u32, text: &str) -> usize {
        self.insert_reusing(slot, text, &mut String::new(), &mut HashMap::new())
    }

    /// Indexes many documents (slots numbered from 0 in this part), reusing one term buffer
    /// and one frequency map for all of them. Returns the index and its bytes.
    pub fn build(texts: &[(u32, &str)]) -> (Lexical, usize) {
        let mut lexical = Lexical::default();
        let (mut buffer, mut frequencies) = (String::new(), HashMap::new());
        let bytes =
            texts.iter().map(|(slot, text)| lexical.insert_reusing(*slot, text, &mut buffer, &mut frequencies)).sum();
        (lexical, bytes)
    }

    /// [`Lexical::insert`] with scratch space the caller keeps between documents: tokenizing
    /// then allocates only for terms the index has not seen.
    fn insert_reusing(
        &mut self,
        slot: u32,
        text: &str,
        buffer: &mut String,
        frequencies: &mut HashMap<u32, u32>,
    ) -> usize {
        assert!(!self.documents.contains_key(&slot), "a slot is indexed once");
        frequencies.clear();
        let mut bytes = 0usize;
        let mut length = 0u32;
        tokens::for_each_term(text, buffer, |term| {
            length = length.saturating_add(1);
            let id = match self.term_ids.get(term) {
                Some(id) => *id,
                None => {
                    let id = u32::try_from(self.postings.len()).expect("fewer than 4 billion terms");
                    bytes += term.len() + 48;
                    self.term_ids.insert(term.to_owned(), id);
                    self.postings.push(Vec::new());
                    id
                }
            };
            *frequencies.entry(id).or_default() += 1;
        });
        let mut ids = Vec::with_capacity(frequencies.len());
        for (id, frequency) in frequencies.drain() {
            self.postings[id as usize].push((slot, frequency));
            ids.push(id);
            bytes += 12;
        }
        self.total_length += u64::from(length);
        self.documents.insert(slot, (ids, length));
        bytes
    }

    /// Absorbs the index of another part, whose slots are shifted by `slot_offset`.
    pub fn merge(&mut self, partial: Lexical, slot_offset: u32) {
        if self.documents.is_empty() && self.postings.is_empty() && slot_offset == 0 {
            // The first part is taken whole: its term ids and slots are already the index's.
            *self = partial;
            return;
        }
        let mut global_ids = vec![0u32; partial.postings.len()];
        for (term, local_id) in partial.term_ids {
            let global_id = match self.term_ids.get(term.as_str()) {
                Some(id) => *id,
                None => {
                    let id = u32::try_from(self.postings.len()).expect("fewer than 4 billion terms");
                    self.term_ids.insert(term, id);
                    self.postings.push(Vec::new());
                    id
                }
            };
            global_ids[local_id as usize] = global_id;
        }
        for (local_id, postings) in partial.postings.into_iter().enumerate() {
            self.postings[global_ids[local_id] as usize]
                .extend(postings.into_iter().map(|(slot, frequency)| (slot + slot_offset, frequency)));
        }
        self.documents.reserve(partial.documents.len());
        for (slot, (mut ids, length)) in partial.documents {
            for id in &mut ids {
                *id = global_ids[*id as usize];
            }
            let previous = self.documents.insert(slot + slot_offset, (ids, length));
            assert!(previous.is_none(), "parts cover disjoint slots");
        }
        self.total_length += partial.total_length;
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
        let mut scores: HashMap<u32, f32> = HashMap::with_capacity(terms.len() * 16);
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
    fn a_parallel_build_scores_like_one_by_one_inserts() {
        let texts: Vec<String> =
            (0..200).map(|index| format!("word{} common word{} shared", index % 7, index % 13)).collect();
        let slots: Vec<(u32, &str)> =
            texts.iter().enumerate().map(|(slot, text)| (slot as u32, text.as_str())).collect();
        let (built, _) = Lexical::build(&slots);
        let mut inserted = Lexical::default();
        for (slot, text) in &slots {
            inserted.insert(*slot, text);
        }
        let query = ["word3".to_owned(), "shared".to_owned(), "word12".to_owned()];
        let mut left: Vec<(u32, f32)> = built.score(&query, |_| true).into_iter().collect();
        let mut right: Vec<(u32, f32)> = inserted.score(&query, |_| true).into_iter().collect();
        left.sort_by_key(|(slot, _)| *slot);
        right.sort_by_key(|(slot, _)| *slot);
        assert_eq!(left.len(), right.len());
        for ((left_slot, left_score), (right_slot, right_score)) in left.iter().zip(&right) {
            assert_eq!(left_slot, right_slot);
            assert!((left_score - right_score).abs() < 1e-5);
        }
    }

    #[test]
    fn merged_parts_score_like_one_by_one_inserts_and_stay_editable() {
        let texts: Vec<String> =
            (0..120).map(|index| format!("term{} common term{} tail{}", index % 5, index % 11, index % 3)).collect();
        // Parts as a room build makes them: the first taken whole, an empty one, one whose
        // items have no text, and the rest; slots are numbered from 0 within each part.
        let ranges = [(0, 40), (40, 40), (40, 70), (70, 120)];
        let mut merged = Lexical::default();
        for (start, end) in ranges {
            let part: Vec<(u32, &str)> = if (start, end) == (40, 70) {
                Vec::new()
            } else {
                texts[start..end].iter().enumerate().map(|(slot, text)| (slot as u32, text.as_str())).collect()
            };
            merged.merge(Lexical::build(&part).0, start as u32);
        }
        let mut inserted = Lexical::default();
        for (slot, text) in texts.iter().enumerate().filter(|(slot, _)| !(40..70).contains(slot)) {
            inserted.insert(slot as u32, text);
        }
        // Edits after the merge must find the remapped term ids.
        for index in [&mut merged, &mut inserted] {
            for slot in [3, 97, 100, 113] {
                index.remove(slot);
            }
            index.insert(3, "term4 fresh");
        }
        let query = ["term2", "term4", "term9", "common", "tail2", "fresh"].map(str::to_owned);
        let mut left: Vec<(u32, f32)> = merged.score(&query, |_| true).into_iter().collect();
        let mut right: Vec<(u32, f32)> = inserted.score(&query, |_| true).into_iter().collect();
        left.sort_by_key(|(slot, _)| *slot);
        right.sort_by_key(|(slot, _)| *slot);
        assert_eq!(left.len(), right.len());
        assert!(!left.iter().any(|(slot, _)| (40..70).contains(slot) || [97, 100, 113].contains(slot)));
        for ((left_slot, left_score), (right_slot, right_score)) in left.iter().zip(&right) {
            assert_eq!(left_slot, right_slot);
            assert!((left_score - right_score).abs() < 1e-5);
        }
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
