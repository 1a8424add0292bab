//! Finding personal data and secrets in text on its way to a model provider.
//!
//! Each [`Category`] is a named rule with its reason: a pattern that proposes candidates and a
//! check that confirms them (a checksum, a numbering plan, the context). Patterns run on the
//! `regex` crate's automata, which never backtrack, and every repetition in them is bounded or
//! ends at the first delimiter, so a scan is linear in the text. Offsets are reported in bytes
//! (for slicing) and in characters (for clients); nothing here panics on any input.
//!
//! What it does not find, said plainly: names, postal addresses and other free-form personal
//! data need a language model; secrets of formats not listed here are found only when assigned
//! to a secret-looking name.

mod checks;

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use crate::limits::PHONE_CHECKS_PER_SCAN_MAX;

/// What a finding is. The first six are personal data; the rest are secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Email,
    Phone,
    CardNumber,
    Iban,
    UsSsn,
    IpAddress,
    CloudAccessKey,
    SourceHostToken,
    ChatToken,
    ModelApiKey,
    Jwt,
    PrivateKey,
    ConnectionPassword,
    AssignedSecret,
}

impl Category {
    pub const ALL: [Category; 14] = [
        Category::Email,
        Category::Phone,
        Category::CardNumber,
        Category::Iban,
        Category::UsSsn,
        Category::IpAddress,
        Category::CloudAccessKey,
        Category::SourceHostToken,
        Category::ChatToken,
        Category::ModelApiKey,
        Category::Jwt,
        Category::PrivateKey,
        Category::ConnectionPassword,
        Category::AssignedSecret,
    ];

    /// The stable name used in configuration, metrics, audit entries and errors.
    pub fn name(self) -> &'static str {
        match self {
            Category::Email => "email",
            Category::Phone => "phone",
            Category::CardNumber => "card_number",
            Category::Iban => "iban",
            Category::UsSsn => "us_ssn",
            Category::IpAddress => "ip_address",
            Category::CloudAccessKey => "cloud_access_key",
            Category::SourceHostToken => "source_host_token",
            Category::ChatToken => "chat_token",
            Category::ModelApiKey => "model_api_key",
            Category::Jwt => "jwt",
            Category::PrivateKey => "private_key",
            Category::ConnectionPassword => "connection_password",
            Category::AssignedSecret => "assigned_secret",
        }
    }

    /// The category of a configured name.
    pub fn from_name(name: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|category| category.name() == name)
    }

    /// Whether this is a credential rather than personal data.
    pub fn is_secret(self) -> bool {
        !matches!(
            self,
            Category::Email
                | Category::Phone
                | Category::CardNumber
                | Category::Iban
                | Category::UsSsn
                | Category::IpAddress
        )
    }

    /// Why the rule exists and what confirms a candidate.
    pub fn reason(self) -> &'static str {
        match self {
            Category::Email => "contact data that identifies a person; an address pattern",
            Category::Phone => "contact data; digits that form a valid number in libphonenumber's numbering plans",
            Category::CardNumber => "payment data; 13-19 digits with a card network's prefix and a valid Luhn digit",
            Category::Iban => "bank account; an IBAN whose mod-97 checksum holds",
            Category::UsSsn => "a US national identifier; AAA-GG-SSSS outside the never-issued ranges",
            Category::IpAddress => "locates a person or a host; IPv4 (not a version string) or IPv6",
            Category::CloudAccessKey => "cloud credentials; AWS access key ids and Google API keys",
            Category::SourceHostToken => "source host credentials; GitHub and GitLab tokens",
            Category::ChatToken => "chat credentials; Slack tokens and webhook URLs",
            Category::ModelApiKey => "model provider credentials; OpenAI and Anthropic key formats",
            Category::Jwt => "a bearer credential; a JSON Web Token",
            Category::PrivateKey => "a private key; a PEM block",
            Category::ConnectionPassword => "a database or service password inside a connection URL",
            Category::AssignedSecret => "a random-looking value assigned to a name like password, token or api_key",
        }
    }

    /// Overlapping candidates are settled in this order (lower first): the more specific
    /// credential formats before generic ones, an IBAN before a card number inside it, checksummed
    /// numbers before phone numbers.
    fn precedence(self) -> u8 {
        match self {
            Category::PrivateKey => 0,
            Category::Jwt => 1,
            Category::ConnectionPassword => 2,
            Category::CloudAccessKey => 3,
            Category::SourceHostToken => 4,
            Category::ChatToken => 5,
            Category::ModelApiKey => 6,
            Category::AssignedSecret => 7,
            Category::Iban => 8,
            Category::CardNumber => 9,
            Category::UsSsn => 10,
            Category::Email => 11,
            Category::IpAddress => 12,
            Category::Phone => 13,
        }
    }
}

/// One detected value: where it is, in bytes and in characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub category: Category,
    pub bytes: Range<usize>,
    pub chars: Range<usize>,
}

/// A rule: a pattern (whose `value` group, if it has one, is the finding) and its check (of
/// the `tail` group if there is one: a key's random part after its fixed prefix).
struct Rule {
    category: Category,
    pattern: &'static str,
    check: Check,
}

enum Check {
    None,
    /// Its shape in context, then libphonenumber's metadata (within a budget per scan).
    Phone,
    Value(fn(&str) -> bool),
    InContext(fn(&str, &str, usize, usize) -> bool),
}

const RULES: &[Rule] = &[
    Rule {
        category: Category::Email,
        pattern: r"\b[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,8}\.[A-Za-z]{2,24}\b",
        check: Check::None,
    },
    Rule {
        category: Category::Phone,
        pattern: r"(?:\+\d{1,3}[ .\-]?|\b)(?:\(\d{1,4}\)[ .\-]?)?\d{1,10}(?:[ .\-]\d{1,8}){0,5}\b|\(\d{1,4}\)[ .\-]?\d{1,10}(?:[ .\-]\d{1,8}){0,5}\b",
        check: Check::Phone,
    },
    Rule {
        category: Category::CardNumber,
        pattern: r"\b\d(?:[ \-]?\d){12,18}\b",
        check: Check::Value(checks::card_number),
    },
    Rule {
        category: Category::Iban,
        pattern: r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
        check: Check::Value(checks::iban),
    },
    Rule {
        category: Category::UsSsn,
        pattern: r"\b\d{3}([\- ])\d{2}[\- ]\d{4}\b",
        check: Check::Value(checks::us_ssn),
    },
    Rule {
        category: Category::IpAddress,
        pattern: r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
        check: Check::InContext(checks::ipv4),
    },
    Rule {
        category: Category::IpAddress,
        pattern: r"(?:\b|::)[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\b|::)",
        check: Check::Value(checks::ipv6),
    },
    Rule {
        category: Category::CloudAccessKey,
        pattern: r"\b(?:(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}|AIza[0-9A-Za-z_\-]{35})\b",
        check: Check::None,
    },
    Rule {
        category: Category::SourceHostToken,
        pattern: r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22,}|glpat-[A-Za-z0-9_\-]{20,})\b",
        check: Check::None,
    },
    Rule {
        category: Category::ChatToken,
        pattern: r"\b(?:xox[abposr]-[A-Za-z0-9\-]{10,}|xapp-\d-[A-Za-z0-9\-]{10,})\b|https://hooks\.slack\.com/services/[A-Za-z0-9/]{20,}",
        check: Check::None,
    },
    Rule {
        category: Category::ModelApiKey,
        pattern: r"\bsk-(?:ant-(?:api\d{2}-)?|proj-|svcacct-|admin-)?(?P<tail>[A-Za-z0-9_\-]{20,})",
        check: Check::Value(checks::random_token),
    },
    Rule {
        category: Category::Jwt,
        pattern: r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
        check: Check::None,
    },
    Rule {
        category: Category::PrivateKey,
        pattern: r"-----BEGIN (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY(?: BLOCK)?-----(?s:.)*?-----END (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY(?: BLOCK)?-----",
        check: Check::None,
    },
    Rule {
        category: Category::ConnectionPassword,
        pattern: r"\b[A-Za-z][A-Za-z0-9+.\-]{1,20}://[^\s:/@]*:(?P<value>[^\s@/]+)@[A-Za-z0-9\-.\[\]]+",
        check: Check::Value(|password| !password.bytes().all(|byte| byte == b'*') && !password.starts_with("${")),
    },
    Rule {
        category: Category::AssignedSecret,
        pattern: r#"(?i)\b(?:[a-z0-9]{1,20}[_\-]){0,4}(?:password|passwd|pwd|secret|token|api[_\-]?key|apikey|access[_\-]?key|secret[_\-]?key|client[_\-]?secret|auth[_\-]?token|private[_\-]?key)(?:[_\-][a-z0-9]{1,20}){0,3}["']?\s{0,4}(?::|=|=>)\s{0,4}["']?(?P<value>[^\s"'`,;\[\]{}()<>]{8,})"#,
        check: Check::Value(checks::assigned_secret),
    },
];

struct Compiled {
    rules: Vec<Regex>,
}

static COMPILED: LazyLock<Compiled> = LazyLock::new(|| {
    // Word boundaries and digits are ASCII: Unicode word boundaries would take the regex
    // engine off its fast automaton on non-ASCII text, and other scripts' digits are not card
    // or phone numbers. The patterns are constants of this file; a unit test compiles them.
    let patterns: Vec<String> =
        RULES.iter().map(|rule| rule.pattern.replace(r"\b", r"(?-u:\b)").replace(r"\d", "[0-9]")).collect();
    // Each rule runs on its own automaton (with its literal prefilter): a set of all the rules
    // measured forty times slower, falling back to the PikeVM over the whole text.
    Compiled {
        rules: patterns.iter().map(|pattern| Regex::new(pattern).expect("a detection pattern compiles")).collect(),
    }
});

/// Every detected value in `text`, in order, none overlapping another.
pub fn scan(text: &str) -> Vec<Finding> {
    let compiled = &*COMPILED;
    let mut candidates: Vec<(Category, Range<usize>)> = Vec::new();
    let mut phone_checks = 0usize;
    for (rule, regex) in RULES.iter().zip(&compiled.rules) {
        for captures in regex.captures_iter(text) {
            let Some(whole) = captures.get(0) else { continue };
            let value = captures.name("value").unwrap_or(whole);
            let checked = captures.name("tail").unwrap_or(value);
            let confirmed = match rule.check {
                Check::Phone => {
                    checks::phone_shape_in_context(value.as_str(), text, value.start(), value.end()) && {
                        // Past the budget, a number of the right shape is taken as one unchecked.
                        phone_checks += 1;
                        phone_checks > PHONE_CHECKS_PER_SCAN_MAX || checks::phone(value.as_str())
                    }
                }
                Check::None => true,
                Check::Value(check) => check(checked.as_str()),
                Check::InContext(check) => check(value.as_str(), text, value.start(), value.end()),
            };
            if confirmed {
                candidates.push((rule.category, value.range()));
            }
        }
    }
    settle(text, candidates)
}

/// Keeps, of overlapping candidates, the one of first precedence (then the longer), and
/// reports the rest in text order with character offsets.
fn settle(text: &str, mut candidates: Vec<(Category, Range<usize>)>) -> Vec<Finding> {
    candidates.sort_by_key(|(category, range)| (category.precedence(), std::cmp::Reverse(range.len()), range.start));
    let mut kept: std::collections::BTreeMap<usize, (usize, Category)> = std::collections::BTreeMap::new();
    for (category, range) in candidates {
        let overlaps_before = kept.range(..range.end).next_back().is_some_and(|(_, (end, _))| *end > range.start);
        if !overlaps_before && !range.is_empty() {
            kept.insert(range.start, (range.end, category));
        }
    }
    let mut findings = Vec::with_capacity(kept.len());
    let (mut byte, mut char_count) = (0usize, 0usize);
    let mut advance_to = |target: usize| {
        char_count += text[byte..target].chars().count();
        byte = target;
        char_count
    };
    for (start, (end, category)) in kept {
        let char_start = advance_to(start);
        let char_end = advance_to(end);
        findings.push(Finding { category, bytes: start..end, chars: char_start..char_end });
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(Category, &str)> {
        scan(text).into_iter().map(|finding| (finding.category, &text[finding.bytes])).collect()
    }

    #[test]
    fn every_pattern_compiles() {
        assert_eq!(COMPILED.rules.len(), RULES.len());
        for category in Category::ALL {
            assert!(RULES.iter().any(|rule| rule.category == category), "{category:?} has a rule");
            assert_eq!(Category::from_name(category.name()), Some(category));
        }
    }

    #[test]
    fn each_category_in_prose() {
        let cases = [
            ("write to ana.lopez@example.org today", Category::Email, "ana.lopez@example.org"),
            ("call me at +44 20 7946 0958 tonight", Category::Phone, "+44 20 7946 0958"),
            ("card 4111 1111 1111 1111 exp 12/29", Category::CardNumber, "4111 1111 1111 1111"),
            ("pay to DE89 3704 0044 0532 0130 00 please", Category::Iban, "DE89 3704 0044 0532 0130 00"),
            ("my SSN is 123-45-6789.", Category::UsSsn, "123-45-6789"),
            ("from 203.0.113.9 at noon", Category::IpAddress, "203.0.113.9"),
            ("from 2001:db8::8a2e:370:7334 too", Category::IpAddress, "2001:db8::8a2e:370:7334"),
            ("key AKIAIOSFODNN7EXAMPLE here", Category::CloudAccessKey, "AKIAIOSFODNN7EXAMPLE"),
            (
                "token ghp_abcdefghijklmnopqrstuvwxyz0123456789 ok",
                Category::SourceHostToken,
                "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            ),
            ("slack xoxb-123456789012-abcdefABCDEF ok", Category::ChatToken, "xoxb-123456789012-abcdefABCDEF"),
            ("db at postgres://app:s3cr3t-Pa55@db.internal:5432/x", Category::ConnectionPassword, "s3cr3t-Pa55"),
            ("config: password = 'Xk9#mQ2!vL7p'", Category::AssignedSecret, "Xk9#mQ2!vL7p"),
        ];
        for (text, category, value) in cases {
            assert_eq!(found(text), vec![(category, value)], "{text}");
        }
    }

    #[test]
    fn model_keys_jwts_and_private_keys() {
        let text = "OPENAI sk-proj-Ab3dE5fG7hJ9kL1mN3pQ5rS7 and a jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig_n4ture \
                    -----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY----- end";
        let categories: Vec<Category> = found(text).into_iter().map(|(category, _)| category).collect();
        assert_eq!(categories, vec![Category::ModelApiKey, Category::Jwt, Category::PrivateKey]);
    }

    #[test]
    fn look_alikes_are_not_found() {
        for text in [
            "order 4111 1111 1111 1112 shipped",
            "ref DE89 3704 0044 0532 0130 01",
            "running version 10.0.0.1 and v1.2.3.4, OID 1.3.6.1.4.1",
            "the meeting is at 12:30:45",
            "sk-learn-is-a-library-for-machine-learning",
            "password = changeme",
            "released 2024-01-15",
            // Found by the comparison corpus (clients/python/benchmarks/detection.py):
            "[2024-03-01 10:22] user wrote: hello",
            "invoice INV-2024-845865, total EUR 4310.48",
        ] {
            assert_eq!(found(text), vec![], "{text}");
        }
    }

    /// Found by a held-out corpus a reviewer wrote without reading these rules: secret names in
    /// snake case (`AWS_SECRET_ACCESS_KEY=`), and a connection URL without a user name.
    #[test]
    fn what_the_held_out_corpus_found() {
        assert_eq!(
            found("export AWS_SECRET_ACCESS_KEY=oRJDFkNfdTkNSwHVBFEsojnx1wng4Ttu4HzlGFLQ"),
            vec![(Category::AssignedSecret, "oRJDFkNfdTkNSwHVBFEsojnx1wng4Ttu4HzlGFLQ")]
        );
        assert_eq!(
            found("  secret_access_key: ygUNCDl73WBniJpt9LTYl"),
            vec![(Category::AssignedSecret, "ygUNCDl73WBniJpt9LTYl")]
        );
        assert_eq!(
            found("REDIS_URL=redis://:Pz8Ovn21vyHZen3m1@cache.example.net:6379/0"),
            vec![(Category::ConnectionPassword, "Pz8Ovn21vyHZen3m1")]
        );
    }

    /// Regressions found by the comparison corpus: a card number inside an IBAN, a random
    /// letters-only password, a US number whose groups look like a date.
    #[test]
    fn what_the_comparison_corpus_found() {
        assert_eq!(
            found("pay FR53 4582 0387 6584 1620 8900 336 now"),
            vec![(Category::Iban, "FR53 4582 0387 6584 1620 8900 336")]
        );
        assert_eq!(
            found(r#"password = "GeIKMaidOnfvmLBzwdJY""#),
            vec![(Category::AssignedSecret, "GeIKMaidOnfvmLBzwdJY")]
        );
        assert_eq!(found("call +1 840-933-6659 today"), vec![(Category::Phone, "+1 840-933-6659")]);
    }

    /// Past its budget of numbering-plan checks, a scan takes digit runs of a phone number's
    /// shape as phone numbers (masked, never sent) instead of spending seconds on them.
    #[test]
    fn a_text_full_of_digit_runs_fails_closed() {
        let text = "0000000, ".repeat(PHONE_CHECKS_PER_SCAN_MAX + 500);
        let phones = scan(&text).iter().filter(|finding| finding.category == Category::Phone).count();
        assert_eq!(phones, 500, "the first {PHONE_CHECKS_PER_SCAN_MAX} are checked (and fail), the rest taken");
    }

    #[test]
    fn offsets_are_in_characters_too() {
        let text = "héllo ✉ ana@example.org";
        let finding = &scan(text)[0];
        assert_eq!(&text[finding.bytes.clone()], "ana@example.org");
        assert_eq!(
            text.chars().skip(finding.chars.start).take(finding.chars.len()).collect::<String>(),
            "ana@example.org"
        );
    }

    #[test]
    fn a_password_inside_a_url_is_not_also_an_email() {
        assert_eq!(found("redis://user:Zq81LmPx@cache.example.com"), vec![(Category::ConnectionPassword, "Zq81LmPx")]);
    }
}
