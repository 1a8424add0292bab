//! The model boundary on any text: detection never panics, its findings are in order, never
//! overlap and sit on character boundaries; masking never panics and leaves no detected value
//! of a pseudonymized category in place; rehydration gives back exactly what was masked when
//! only personal data was found, however a stream splits the answer.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroom::boundary::{Masker, Policies};
use sealroom::detect::scan;
use sealroom::rooms::PseudonymSecret;

fuzz_target!(|input: (&str, u8)| {
    let (text, split) = input;
    let findings = scan(text);
    let mut previous_end = 0;
    for finding in &findings {
        assert!(finding.bytes.start >= previous_end && finding.bytes.start < finding.bytes.end);
        assert!(text.is_char_boundary(finding.bytes.start) && text.is_char_boundary(finding.bytes.end));
        previous_end = finding.bytes.end;
    }
    let policies = Policies::default();
    let mut masker = Masker::new(&policies, PseudonymSecret::from_bytes([3; 32]), Vec::new());
    let masked = masker.mask(text).expect("no category is blocked by default");
    if findings.iter().all(|finding| !finding.category.is_secret()) && !text.contains('[') {
        let rehydrator = masker.rehydrator();
        assert_eq!(rehydrator.rehydrate(&masked), text);
        let mut at = usize::from(split).min(masked.len());
        while !masked.is_char_boundary(at) {
            at -= 1;
        }
        let mut stream = rehydrator.stream();
        let mut streamed = stream.push(&masked[..at]);
        streamed.push_str(&stream.push(&masked[at..]));
        streamed.push_str(&stream.finish());
        assert_eq!(streamed, text);
    }
});
