//! The model boundary (issue 17): detection on a generated corpus of every category (valid
//! checksums, several formats, in prose) and of look-alikes that must not match; properties of
//! detection and pseudonymization on any input; a room's secrets on every backend.

use proptest::prelude::*;
use sealroom::boundary::{Masker, Policies};
use sealroom::detect::{Category, scan};
use sealroom::rooms::{PseudonymSecret, RoomsSettings, SecretName, SecretValue};

use crate::support::{BACKENDS, member, store, user};

/// A generated value of a category, as a person would write it.
pub fn value_of(category: Category, seed: u64) -> String {
    let digits = |count: usize, salt: u64| -> Vec<u8> {
        (0..count)
            .map(|index| {
                ((seed.wrapping_mul(6364136223846793005).wrapping_add(salt * 31 + index as u64 * 7919)) >> 33) as u8
                    % 10
            })
            .collect()
    };
    let text = |digits: &[u8]| digits.iter().map(|digit| char::from(b'0' + digit)).collect::<String>();
    match category {
        Category::Email => {
            let names = ["ana.lopez", "j.smith+news", "kim_lee", "o.brien"];
            let domains = ["example.org", "mail.example.co.uk", "corp.example"];
            format!("{}{}@{}", names[(seed % 4) as usize], seed % 97, domains[(seed % 3) as usize])
        }
        Category::Phone => {
            let formats =
                ["+1 415-555-{a}", "(212) 555-{a}", "+44 20 7946 {b}", "+49 30 901820{c}", "+33 1 42 68 53 {d}"];
            let rest = text(&digits(4, 1));
            formats[(seed % 5) as usize]
                .replace("{a}", &rest)
                .replace("{b}", &rest)
                .replace("{c}", &rest[..1])
                .replace("{d}", &rest[..2])
        }
        Category::CardNumber => {
            let (prefix, length): (&[u8], usize) = match seed % 3 {
                0 => (&[4], 16),
                1 => (&[5, 4], 16),
                _ => (&[3, 7], 15),
            };
            let mut number: Vec<u8> = prefix.to_vec();
            number.extend(digits(length - prefix.len() - 1, 2));
            number.push(luhn_digit(&number));
            let grouped = text(&number);
            if seed.is_multiple_of(2) {
                grouped
            } else {
                grouped
                    .as_bytes()
                    .chunks(4)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        }
        Category::Iban => {
            let bban = text(&digits(18, 3));
            let check = 98 - iban_remainder(&format!("{bban}DE00"));
            let iban = format!("DE{check:02}{bban}");
            if seed.is_multiple_of(2) {
                iban
            } else {
                iban.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(" ")
            }
        }
        Category::UsSsn => format!("{:03}-{:02}-{:04}", 100 + seed % 500, 10 + seed % 80, 1000 + seed % 8000),
        Category::IpAddress => {
            if seed.is_multiple_of(2) {
                format!("203.0.{}.{}", seed % 250, 1 + seed % 200)
            } else {
                format!("2001:db8:{:x}::{:x}", seed % 4000, 1 + seed % 60000)
            }
        }
        Category::CloudAccessKey => format!("AKIA{}", token(seed, 16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")),
        Category::SourceHostToken => format!("ghp_{}", token(seed, 36, ALNUM)),
        Category::ChatToken => format!("xoxb-{}-{}", text(&digits(12, 4)), token(seed, 24, ALNUM)),
        Category::ModelApiKey => format!("sk-proj-{}7Q", token(seed, 40, ALNUM)),
        Category::Jwt => format!("eyJhbGciOiJIUzI1NiJ9.eyJ{}.{}", token(seed, 30, ALNUM), token(seed + 1, 43, ALNUM)),
        Category::PrivateKey => {
            format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----", token(seed, 64, ALNUM))
        }
        Category::ConnectionPassword => format!("Pw{}9!", token(seed, 12, ALNUM)),
        Category::AssignedSecret => format!("Q{}#4", token(seed, 18, ALNUM)),
    }
}

/// How a value appears in text: some categories are found only in their setting.
pub fn in_setting(category: Category, value: &str) -> String {
    match category {
        Category::ConnectionPassword => format!("postgres://app:{value}@db.internal:5432/main"),
        Category::AssignedSecret => format!("api_key = \"{value}\""),
        _ => value.to_owned(),
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn token(seed: u64, length: usize, alphabet: &[u8]) -> String {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(alphabet[(state % alphabet.len() as u64) as usize])
        })
        .collect()
}

fn luhn_digit(payload: &[u8]) -> u8 {
    let sum: u32 = payload
        .iter()
        .rev()
        .enumerate()
        .map(|(position, &digit)| {
            let digit = u32::from(digit);
            if position % 2 == 0 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

fn iban_remainder(rearranged: &str) -> u32 {
    rearranged.chars().fold(0u32, |remainder, c| {
        let value = c.to_digit(36).unwrap();
        if value >= 10 { (remainder * 100 + value) % 97 } else { (remainder * 10 + value) % 97 }
    })
}

const PROSE: [&str; 4] = [
    "Hi, please note",
    "— и ещё: ",
    "Thanks! 🙂 My details:",
    "(see the ticket 48213 from 2024-03-01, build 1.2.3.4.5)",
];

#[test]
fn every_generated_value_is_found_in_prose_with_its_category() {
    for category in Category::ALL {
        for seed in 0..40u64 {
            let value = value_of(category, seed);
            let text = format!(
                "{} {} {}",
                PROSE[(seed % 4) as usize],
                in_setting(category, &value),
                PROSE[((seed + 1) % 4) as usize]
            );
            let findings = scan(&text);
            let found: Vec<(Category, &str)> = findings.iter().map(|f| (f.category, &text[f.bytes.clone()])).collect();
            assert_eq!(found, vec![(category, value.as_str())], "{category:?} seed {seed}: {text}");
        }
    }
}

#[test]
fn look_alikes_are_not_found() {
    let mut texts = Vec::new();
    for seed in 0..40u64 {
        // A card number with a wrong check digit, an IBAN with a wrong checksum.
        let card: String = value_of(Category::CardNumber, seed * 2).chars().filter(char::is_ascii_digit).collect();
        let last = card.chars().last().unwrap().to_digit(10).unwrap();
        texts.push(format!("order {}{}", &card[..card.len() - 1], (last + 1) % 10));
        let iban: String = value_of(Category::Iban, seed * 2);
        let wrong = if iban.ends_with('0') {
            format!("{}1", &iban[..iban.len() - 1])
        } else {
            format!("{}0", &iban[..iban.len() - 1])
        };
        texts.push(format!("reference {wrong}"));
        texts.push(format!("installed version {}.{}.{}.{}", seed % 9, seed % 7, seed % 5, seed % 3));
        texts.push(format!("running v{}.{}.{}.{}", 1 + seed % 9, seed % 7, seed % 5, seed % 3));
        texts.push(format!("meeting at {:02}:{:02}:{:02}", seed % 24, seed % 60, (seed * 7) % 60));
        texts.push(format!("password = hunter{}", seed % 10));
        texts.push(format!("sk-learn-is-a-library-number-{}", seed % 3));
        texts.push(format!("shipped on 2024-{:02}-{:02}", 1 + seed % 12, 1 + seed % 28));
    }
    for text in texts {
        let found: Vec<(Category, String)> =
            scan(&text).into_iter().map(|f| (f.category, text[f.bytes].to_owned())).collect();
        assert!(found.is_empty(), "{text}: {found:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn detection_never_panics_and_findings_never_overlap(text in any::<String>(), seeds in prop::collection::vec((0usize..14, any::<u64>()), 0..6)) {
        let mut text = text;
        for (index, seed) in seeds {
            let category = Category::ALL[index];
            text.push(' ');
            text.push_str(&in_setting(category, &value_of(category, seed)));
            text.push(' ');
        }
        let findings = scan(&text);
        let mut previous_end = 0;
        for finding in &findings {
            prop_assert!(finding.bytes.start >= previous_end && finding.bytes.start < finding.bytes.end);
            prop_assert!(text.is_char_boundary(finding.bytes.start) && text.is_char_boundary(finding.bytes.end));
            prop_assert_eq!(text[..finding.bytes.start].chars().count(), finding.chars.start);
            prop_assert_eq!(text[finding.bytes.clone()].chars().count(), finding.chars.len());
            previous_end = finding.bytes.end;
        }
    }

    #[test]
    fn rehydration_inverts_pseudonymization(prose in "[a-zA-Z ,.!?éü🙂]{0,40}", picks in prop::collection::vec((0usize..6, any::<u64>()), 1..8)) {
        let policies = Policies::default();
        let mut masker = Masker::new(&policies, PseudonymSecret::from_bytes([7; 32]), Vec::new());
        let mut text = String::new();
        let mut values = Vec::new();
        for (index, seed) in picks {
            let category = Category::ALL[index];
            let value = value_of(category, seed);
            text.push_str(&prose);
            text.push_str(" : ");
            text.push_str(&value);
            text.push_str(" ; ");
            values.push(value);
        }
        let masked = masker.mask(&text).unwrap();
        for value in &values {
            prop_assert!(!masked.contains(value.as_str()), "{} left in {}", value, masked);
        }
        prop_assert_eq!(masker.rehydrator().rehydrate(&masked), text);
    }
}

#[tokio::test]
async fn secrets_are_sealed_per_room_listed_by_name_and_resolved_by_name() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let alice = store.rooms.room(&user("iss", "alice"));
        let bob = store.rooms.room(&user("iss", "bob"));
        let name = SecretName::parse("github").unwrap();
        let value = SecretValue::parse("ghp_canary_alice_0123456789".into()).unwrap();
        assert!(alice.secrets().put(&name, &value).await.unwrap(), "new");
        assert!(!alice.secrets().put(&name, &value).await.unwrap(), "replaced");
        let listed = alice.secrets().list().await.unwrap();
        assert_eq!(listed.iter().map(|info| info.name.as_str()).collect::<Vec<_>>(), vec!["github"]);
        assert_eq!(alice.secrets().resolve(&name).await.unwrap().unwrap().expose(), "ghp_canary_alice_0123456789");
        assert!(bob.secrets().resolve(&name).await.unwrap().is_none(), "another room has no such secret");
        assert!(bob.secrets().list().await.unwrap().is_empty());
        assert!(alice.secrets().delete(&name).await.unwrap());
        assert!(alice.secrets().resolve(&name).await.unwrap().is_none());
        assert!(!alice.secrets().delete(&name).await.unwrap());
        // Pseudonyms differ per room and stay put within one.
        let tag = |secret: PseudonymSecret| secret.tag(&[b"email", b"ana@example.org"]);
        assert_eq!(tag(alice.pseudonym_secret().await.unwrap()), tag(alice.pseudonym_secret().await.unwrap()));
        assert_ne!(tag(alice.pseudonym_secret().await.unwrap()), tag(bob.pseudonym_secret().await.unwrap()));
        // A tenant member without the writer role cannot store a tenant secret.
        let reader = member("iss", "carol", "acme", &[]);
        let tenant = store.rooms.tenant_room(&reader).unwrap();
        assert!(tenant.secrets().put(&name, &value).await.is_err());
        assert!(SecretName::parse("has space").is_err() && SecretName::parse("").is_err());
    }
}
