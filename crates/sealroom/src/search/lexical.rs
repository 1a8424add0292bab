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

/// Share of a room's documents beyond which a query term is "common" and skipped when the
/// query has a rarer one (its BM25 weight is a small fraction of a rare term's, its cost a
/// scan of most of the room).
const LEXICAL_COMMON_TERM_FRACTION: f32 = 0.5;

/// The inverted index of one room.
#[derive(Default)]
pub struct Lexical {
    term_ids: HashMap<TermKey, u32>,
    /// Per term: (document slot, term frequency).
    postings: Vec<Vec<(u32, u32)>>,
    /// By document slot (slots are dense: a room index reuses freed ones): its terms and length,
    /// `None` for slots without text.
    documents: Vec<Option<Document>>,
    document_count: u32,
    total_length: u64,
}

/// A term as the index knows it: 128 bits of two independently seeded hashes of its text. Kept
/// instead of the text, so looking a term up compares two words in the table rather than
/// following a pointer to compare strings (the inner loop of building a room's index). Seeds are
/// random per process; two distinct terms of a room share a key with odds of about n²/2¹²⁹.
type TermKey = u128;

fn term_key(term: &str) -> TermKey {
    use std::hash::BuildHasher;
    static SEEDS: std::sync::OnceLock<[foldhash::fast::RandomState; 2]> = std::sync::OnceLock::new();
    let [high, low] = SEEDS.get_or_init(Default::default);
    (u128::from(high.hash_one(term)) << 64) | u128::from(low.hash_one(term))
}

/// What the index keeps of one document, to remove it and to normalize its scores by length.
struct Document {
    terms: Box<[u32]>,
    length: u32,
}

/// Scratch space reused from one document to the next while indexing, so tokenizing allocates
/// only for terms the index has not seen.
#[derive(Default)]
struct Scratch {
    term: String,
    ids: Vec<u32>,
    distinct: Vec<u32>,
}

impl Lexical {
    /// Indexes `text` as document `slot` (which must not be indexed already). Returns the bytes
    /// it added.
    pub fn insert(&mut self, slot: u32, text: &str) -> usize {
        self.insert_reusing(slot, text, &mut Scratch::default())
    }

    /// Indexes many documents (slots numbered from 0 in this part), reusing one scratch space
    /// for all of them. Returns the index and its bytes.
    pub fn build(texts: &[(u32, &str)]) -> (Lexical, usize) {
        let mut lexical = Lexical::default();
        if let Some(last) = texts.iter().map(|(slot, _)| *slot as usize).max() {
            lexical.documents.reserve_exact(last + 1);
        }
        let mut scratch = Scratch::default();
        let bytes = texts.iter().map(|(slot, text)| lexical.insert_reusing(*slot, text, &mut scratch)).sum();
        (lexical, bytes)
    }

    /// [`Lexical::insert`] with scratch space the caller keeps between documents.
    fn insert_reusing(&mut self, slot: u32, text: &str, scratch: &mut Scratch) -> usize {
        let slot_index = slot as usize;
        if self.documents.len() <= slot_index {
            self.documents.resize_with(slot_index + 1, || None);
        }
        assert!(self.documents[slot_index].is_none(), "a slot is indexed once");
        let mut bytes = 0usize;
        scratch.ids.clear();
        tokens::for_each_term(text, &mut scratch.term, |term| {
            let (id, new) = self.intern(term_key(term));
            if new {
                bytes += 48;
            }
            scratch.ids.push(id);
        });
        let length = u32::try_from(scratch.ids.len()).unwrap_or(u32::MAX);
        // Sorting the document's term ids groups repeats: each run is one posting with its
        // frequency (cheaper than a map for the tens of terms a document has).
        scratch.ids.sort_unstable();
        scratch.distinct.clear();
        for run in scratch.ids.chunk_by(|left, right| left == right) {
            let id = run[0];
            self.postings[id as usize].push((slot, u32::try_from(run.len()).unwrap_or(u32::MAX)));
            scratch.distinct.push(id);
        }
        bytes += scratch.distinct.len() * 12;
        self.total_length += u64::from(length);
        self.documents[slot_index] = Some(Document { terms: scratch.distinct.as_slice().into(), length });
        self.document_count += 1;
        bytes
    }

    /// The id of a term, given one (with no postings yet) if the index has not seen it; and
    /// whether it is new.
    fn intern(&mut self, key: TermKey) -> (u32, bool) {
        if let Some(id) = self.term_ids.get(&key) {
            return (*id, false);
        }
        let id = u32::try_from(self.postings.len()).expect("fewer than 4 billion terms");
        self.term_ids.insert(key, id);
        self.postings.push(Vec::new());
        (id, true)
    }

    /// Absorbs the index of another part, whose slots are shifted by `slot_offset`.
    pub fn merge(&mut self, partial: Lexical, slot_offset: u32) {
        if self.document_count == 0 && self.postings.is_empty() && slot_offset == 0 {
            // The first part is taken whole: its term ids and slots are already the index's.
            *self = partial;
            return;
        }
        let mut global_ids = vec![0u32; partial.postings.len()];
        for (term, local_id) in partial.term_ids {
            global_ids[local_id as usize] = self.intern(term).0;
        }
        for (local_id, postings) in partial.postings.into_iter().enumerate() {
            self.postings[global_ids[local_id] as usize]
                .extend(postings.into_iter().map(|(slot, frequency)| (slot + slot_offset, frequency)));
        }
        let offset = slot_offset as usize;
        let end = offset + partial.documents.len();
        if self.documents.len() < end {
            self.documents.resize_with(end, || None);
        }
        for (index, document) in partial.documents.into_iter().enumerate() {
            let Some(mut document) = document else { continue };
            for id in &mut document.terms {
                *id = global_ids[*id as usize];
            }
            let previous = self.documents[offset + index].replace(document);
            assert!(previous.is_none(), "parts cover disjoint slots");
        }
        self.document_count += partial.document_count;
        self.total_length += partial.total_length;
    }

    /// Removes document `slot` if indexed.
    pub fn remove(&mut self, slot: u32) {
        if let Some(Document { terms, length }) = self.documents.get_mut(slot as usize).and_then(Option::take) {
            for id in terms {
                self.postings[id as usize].retain(|(document, _)| *document != slot);
            }
            self.document_count -= 1;
            self.total_length -= u64::from(length);
        }
    }

    /// BM25 scores of the documents containing any of `terms` and accepted by `candidate`.
    pub fn score(&self, terms: &[String], candidate: impl Fn(u32) -> bool) -> HashMap<u32, f32> {
        let count = self.document_count as f32;
        let average_length = if self.document_count == 0 { 1.0 } else { self.total_length as f32 / count };
        let mut scores: HashMap<u32, f32> = HashMap::with_capacity(terms.len() * 16);
        let found: Vec<&Vec<(u32, u32)>> = terms
            .iter()
            .filter_map(|term| self.term_ids.get(&term_key(term)))
            .map(|&id| &self.postings[id as usize])
            .filter(|postings| !postings.is_empty())
            .collect();
        // A term in most of the room's documents ("the") weighs next to nothing in BM25 and
        // costs a pass over most of the room: it is left out when the query has a rarer term.
        let common = |postings: &Vec<(u32, u32)>| postings.len() as f32 > count * LEXICAL_COMMON_TERM_FRACTION;
        let any_rare = found.iter().any(|postings| !common(postings));
        for postings in found {
            if any_rare && common(postings) {
                continue;
            }
            let frequency_of_documents = postings.len() as f32;
            let idf = (1.0 + (count - frequency_of_documents + 0.5) / (frequency_of_documents + 0.5)).ln();
            for &(slot, frequency) in postings {
                if !candidate(slot) {
                    continue;
                }
                let length = self.length_of(slot) as f32;
                let frequency = frequency as f32;
                let weight = frequency * (K1 + 1.0) / (frequency + K1 * (1.0 - B + B * length / average_length));
                *scores.entry(slot).or_default() += idf * weight;
            }
        }
        scores
    }

    fn length_of(&self, slot: u32) -> u32 {
        self.documents.get(slot as usize).and_then(Option::as_ref).map_or(0, |document| document.length)
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

    #[test]
    fn a_term_in_most_documents_is_skipped_only_beside_a_rarer_one() {
        let mut index = Lexical::default();
        for slot in 0..10 {
            let text = if slot == 3 { "the window seat" } else { "the aisle" };
            index.insert(slot, text);
        }
        let the = "the".to_owned();
        let window = "window".to_owned();
        // Alone, a common term still finds what it matches.
        assert_eq!(index.score(std::slice::from_ref(&the), |_| true).len(), 10);
        // Beside a rarer one it is left out: only the rare term's documents are scored.
        let scores = index.score(&[the, window], |_| true);
        assert_eq!(scores.keys().copied().collect::<Vec<_>>(), vec![3]);
    }
}
