//! The checks that turn a pattern's candidate into a finding: checksums, number plans, context.
//! Each takes the candidate text (and, where context matters, the text around it) and never
//! panics, whatever it is given.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Payment card numbers: 13 to 19 digits, a known issuer prefix, and the Luhn check digit.
/// Order numbers and other digit runs rarely pass both.
pub(super) fn card_number(candidate: &str) -> bool {
    let digits: Vec<u8> = candidate.bytes().filter(u8::is_ascii_digit).map(|digit| digit - b'0').collect();
    issuer_length(&digits) && luhn(&digits)
}

/// The Luhn check: doubling every second digit from the right, the sum is a multiple of 10.
pub(super) fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, &digit)| {
            let digit = u32::from(digit);
            if position % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Issuer prefixes of the card networks in wide use, with the lengths each issues: Visa,
/// Mastercard, American Express, Discover, JCB, Diners Club, UnionPay, Maestro.
fn issuer_length(digits: &[u8]) -> bool {
    let prefix = |length: usize| digits.iter().take(length).fold(0u32, |number, &digit| number * 10 + u32::from(digit));
    let length = digits.len();
    if digits.first() == Some(&4) {
        matches!(length, 13 | 16 | 19)
    } else if (51..=55).contains(&prefix(2)) || (2221..=2720).contains(&prefix(4)) {
        length == 16
    } else if matches!(prefix(2), 34 | 37) {
        length == 15
    } else if matches!(prefix(2), 35 | 36 | 38 | 62 | 65)
        || matches!(prefix(3), 300..=305 | 644..=649)
        || matches!(prefix(4), 6011 | 5018 | 5020 | 5038 | 6304 | 6759 | 6761 | 6762 | 6763)
    {
        (14..=19).contains(&length)
    } else {
        false
    }
}

/// IBANs: a country code, two check digits, and a remainder of 1 modulo 97 when the first four
/// characters are moved to the end and letters read as numbers (ISO 13616).
pub(super) fn iban(candidate: &str) -> bool {
    let compact: Vec<u8> = candidate.bytes().filter(|byte| !byte.is_ascii_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) || !compact.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let rearranged = compact[4..].iter().chain(&compact[..4]);
    let mut remainder = 0u32;
    for &byte in rearranged {
        let value = match byte {
            b'0'..=b'9' => u32::from(byte - b'0'),
            b'A'..=b'Z' => u32::from(byte - b'A') + 10,
            _ => return false,
        };
        remainder = if value >= 10 { (remainder * 100 + value) % 97 } else { (remainder * 10 + value) % 97 };
    }
    remainder == 1
}

/// US social security numbers in the written form AAA-GG-SSSS (or with spaces): no area 000,
/// 666 or 900–999, no group 00, no serial 0000 (numbers never issued).
pub(super) fn us_ssn(candidate: &str) -> bool {
    let parts: Vec<&str> = candidate.split(['-', ' ']).collect();
    let [area, group, serial] = parts.as_slice() else { return false };
    let number = |text: &str| text.parse::<u32>().ok();
    match (number(area), number(group), number(serial)) {
        (Some(area), Some(group), Some(serial)) => area != 0 && area != 666 && area < 900 && group != 0 && serial != 0,
        _ => false,
    }
}

/// IPv4 addresses, except where the text says it is a version ("v1.2.3.4", "version 10.0.0.1")
/// or the dotted run goes on ("1.2.3.4.5" is an OID or a version, not an address).
pub(super) fn ipv4(candidate: &str, text: &str, start: usize, end: usize) -> bool {
    if candidate.parse::<Ipv4Addr>().is_err() {
        return false;
    }
    let before = &text[..start];
    let after = &text[end..];
    let dotted_run_continues = after.starts_with('.') && after[1..].starts_with(|c: char| c.is_ascii_digit());
    let dotted_run_began_earlier = before.ends_with('.') || before.ends_with(|c: char| c.is_alphanumeric());
    let cue_start = before.char_indices().rev().nth(15).map_or(0, |(index, _)| index);
    let words_before = before[cue_start..].trim_end().to_ascii_lowercase();
    let says_version = ["version", "release", "ver", "ver.", "build", "firmware", "v"].iter().any(|cue| {
        words_before.ends_with(cue) && !words_before[..words_before.len() - cue.len()].ends_with(char::is_alphanumeric)
    });
    !(dotted_run_continues || dotted_run_began_earlier || says_version)
}

/// IPv6 addresses: what the standard library parses, with at least two groups written (so a
/// lone `::` or a clock time is not one).
pub(super) fn ipv6(candidate: &str) -> bool {
    candidate.parse::<Ipv6Addr>().is_ok() && candidate.bytes().filter(u8::is_ascii_hexdigit).count() >= 2
}

/// Phone numbers: 7 to 15 digits that libphonenumber's metadata (the `phonenumber` crate) says
/// form a valid number: international numbers as written with `+`, national ones in the
/// numbering plans of the regions tried, in order.
/// Everything about a phone number but its numbering plan: 7 to 15 digits, not a date or an
/// address, not part of an identifier (`INV-2024-845865`, `ref_4155552671`).
pub(super) fn phone_shape_in_context(candidate: &str, text: &str, start: usize, end: usize) -> bool {
    let continues_before = text[..start].ends_with(|c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | '/'));
    let continues_after = {
        let mut rest = text[end..].chars();
        matches!(rest.next(), Some('-' | '_' | '/')) && rest.next().is_some_and(char::is_alphanumeric)
    };
    let digits = candidate.bytes().filter(u8::is_ascii_digit).count();
    !continues_before
        && !continues_after
        && (7..=15).contains(&digits)
        && !looks_like_a_date(candidate)
        && candidate.parse::<Ipv4Addr>().is_err()
}

pub(super) fn phone(candidate: &str) -> bool {
    let digits = candidate.bytes().filter(u8::is_ascii_digit).count();
    if !(7..=15).contains(&digits) {
        return false;
    }
    let parse = |region: Option<phonenumber::country::Id>| {
        // The parser is a third-party crate given text from anyone: a panic in it is a bug to
        // contain, not a reason to fail the request.
        std::panic::catch_unwind(|| phonenumber::parse(region, candidate).map(|number| number.is_valid()))
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false)
    };
    if candidate.starts_with('+') {
        return parse(None);
    }
    use phonenumber::country::Id;
    [Id::US, Id::GB, Id::DE, Id::FR, Id::IN, Id::AU, Id::ES, Id::IT, Id::NL, Id::BR]
        .into_iter()
        .any(|region| parse(Some(region)))
}

/// `2024-01-15`, `15.01.2024`, `01/15/2024 10`: digits a phone candidate may look like (a
/// candidate holding a date anywhere is a timestamp, not a number to dial).
fn looks_like_a_date(candidate: &str) -> bool {
    candidate.split([' ', '(', ')']).any(|token| {
        let groups: Vec<&str> = token.split(['-', '.', '/']).collect();
        let digits = |group: &&str| !group.is_empty() && group.bytes().all(|byte| byte.is_ascii_digit());
        let (first, last) = (groups.first().map_or(0, |g| g.len()), groups.last().map_or(0, |g| g.len()));
        groups.len() == 3
            && groups.iter().all(digits)
            && ((first == 4 && groups[1].len() <= 2 && last <= 2) || (last == 4 && first <= 2 && groups[1].len() <= 2))
    })
}

/// Shannon entropy of a text in bits per character: how random a value assigned to a
/// secret-looking name is (a real password or key, not `changeme` or `********`).
pub(super) fn entropy_bits_per_char(text: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut total = 0u32;
    for byte in text.bytes() {
        counts[usize::from(byte)] += 1;
        total += 1;
    }
    if total == 0 {
        return 0.0;
    }
    let total = f64::from(total);
    counts
        .iter()
        .filter(|&&count| count > 0)
        .map(|&count| {
            let share = f64::from(count) / total;
            -share * share.log2()
        })
        .sum()
}

/// Values assigned to secret-looking names: long enough, random enough, and not a word-only
/// placeholder (`your_password_here`).
pub(super) fn assigned_secret(value: &str) -> bool {
    let has_digit_or_symbol = value.bytes().any(|byte| !byte.is_ascii_alphabetic() && byte != b'_');
    let mixed_case =
        value.bytes().any(|byte| byte.is_ascii_uppercase()) && value.bytes().any(|byte| byte.is_ascii_lowercase());
    let entropy = entropy_bits_per_char(value);
    value.len() >= 8 && entropy >= 3.0 && (has_digit_or_symbol || (mixed_case && value.len() >= 12 && entropy >= 3.5))
}

/// Model-provider keys after their prefix: letters and digits mixed, not a hyphenated phrase.
pub(super) fn random_token(value: &str) -> bool {
    let digits = value.bytes().filter(u8::is_ascii_digit).count();
    let letters = value.bytes().filter(u8::is_ascii_alphabetic).count();
    digits >= 2 && letters >= 4 && entropy_bits_per_char(value) >= 3.5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_and_issuers() {
        assert!(card_number("4111 1111 1111 1111"));
        assert!(card_number("5500-0000-0000-0004"));
        assert!(card_number("378282246310005"));
        assert!(!card_number("4111 1111 1111 1112"), "a wrong check digit");
        assert!(!card_number("9111 1111 1111 1111"), "no known issuer");
    }

    #[test]
    fn iban_checksums() {
        assert!(iban("DE89 3704 0044 0532 0130 00"));
        assert!(iban("GB82WEST12345698765432"));
        assert!(!iban("DE89 3704 0044 0532 0130 01"));
        assert!(!iban("DE8937040044053"));
    }

    #[test]
    fn ssn_rules() {
        assert!(us_ssn("123-45-6789"));
        for never_issued in ["000-45-6789", "666-45-6789", "900-45-6789", "123-00-6789", "123-45-0000"] {
            assert!(!us_ssn(never_issued), "{never_issued}");
        }
    }

    #[test]
    fn versions_are_not_addresses() {
        let text = "upgrade to version 10.0.0.1 and v1.2.3.4, then 1.2.3.4.5; the host is 10.0.0.1.";
        let mut found = Vec::new();
        for candidate in ["10.0.0.1", "1.2.3.4"] {
            for (start, _) in text.match_indices(candidate) {
                let end = start + candidate.len();
                if ipv4(candidate, text, start, end) {
                    found.push(start);
                }
            }
        }
        assert_eq!(found, vec![text.rfind("10.0.0.1").expect("present")]);
    }

    #[test]
    fn phones_are_validated_by_the_numbering_plan() {
        assert!(phone("+1 415 555 2671") || phone("+1 (202) 456-1111"));
        assert!(phone("+44 20 7946 0958"));
        assert!(phone("(202) 456-1111"));
        assert!(!phone_shape_in_context("2024-01-15", "on 2024-01-15", 3, 13));
        assert!(!phone_shape_in_context("2024-845865", "INV-2024-845865", 4, 15));
        assert!(!phone("+1 000 000 0000"));
    }
}
