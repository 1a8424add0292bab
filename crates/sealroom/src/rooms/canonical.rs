//! The canonical form of JSON that cache keys are derived from: equal values give equal bytes,
//! different values different bytes.
//!
//! The rule: object members sorted by their names' UTF-16 code units (as RFC 8785), no
//! whitespace, strings with the minimal escapes (as RFC 8785), and numbers **by their exact
//! decimal value**: `1`, `1.0`, `10e-1` and `0.1e1` are one number, `-0` is `0`, and
//! `12345678901234567890` is not `12345678901234567000`. RFC 8785 writes numbers as IEEE
//! doubles instead, which makes integers beyond 2^53 that differ only in their last digits one
//! key (ATTACKS.md 55): two different tool calls would share one cached result. A number is
//! written as its significant digits without trailing zeros, then `e` and the exponent when it
//! is not zero (`15e-1` for 1.5, `1e2` for 100).
//!
//! The canonical form is read from the JSON text itself (so no number is rounded on the way),
//! and bounded: nesting, exponents and the canonical size all have limits.

use crate::limits::{CANONICAL_EXPONENT_MAX, CANONICAL_JSON_BYTES_MAX, JSON_DEPTH_MAX};
use crate::vocabulary::names::InputError;

/// The canonical form of one JSON text (see the module comment). `field` names the input in
/// errors.
pub fn canonical_json_text(text: &str, field: &'static str) -> Result<Vec<u8>, InputError> {
    let mut reader = Reader { bytes: text.as_bytes(), position: 0, field };
    let mut out = Vec::with_capacity(text.len());
    reader.skip_whitespace();
    reader.value(&mut out, 0)?;
    reader.skip_whitespace();
    if reader.position != reader.bytes.len() {
        return Err(reader.invalid("is not one JSON value"));
    }
    if out.len() > CANONICAL_JSON_BYTES_MAX {
        return Err(InputError::new(field, format!("may be at most {CANONICAL_JSON_BYTES_MAX} bytes canonicalized")));
    }
    Ok(out)
}

/// The canonical form of a parsed value. Numbers of a parsed value are already 64-bit integers
/// or doubles; they are taken at the exact value of their shortest decimal spelling.
pub fn canonical_json(value: &serde_json::Value, field: &'static str) -> Result<Vec<u8>, InputError> {
    canonical_json_text(&value.to_string(), field)
}

struct Reader<'text> {
    bytes: &'text [u8],
    position: usize,
    field: &'static str,
}

impl Reader<'_> {
    fn invalid(&self, problem: &str) -> InputError {
        InputError::new(self.field, problem.to_owned())
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.position += 1;
        }
    }

    fn expect_literal(&mut self, literal: &str, out: &mut Vec<u8>) -> Result<(), InputError> {
        if self.bytes[self.position..].starts_with(literal.as_bytes()) {
            self.position += literal.len();
            out.extend_from_slice(literal.as_bytes());
            Ok(())
        } else {
            Err(self.invalid("is not valid JSON"))
        }
    }

    fn value(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), InputError> {
        if depth > JSON_DEPTH_MAX {
            return Err(self.invalid(&format!("may be nested at most {JSON_DEPTH_MAX} levels")));
        }
        match self.peek() {
            Some(b'{') => self.object(out, depth),
            Some(b'[') => self.array(out, depth),
            Some(b'"') => {
                let text = self.string()?;
                write_string(&text, out);
                Ok(())
            }
            Some(b't') => self.expect_literal("true", out),
            Some(b'f') => self.expect_literal("false", out),
            Some(b'n') => self.expect_literal("null", out),
            Some(b'-' | b'0'..=b'9') => self.number(out),
            _ => Err(self.invalid("is not valid JSON")),
        }
    }

    fn object(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), InputError> {
        self.position += 1;
        let mut members: Vec<(String, Vec<u8>)> = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.position += 1;
        } else {
            loop {
                self.skip_whitespace();
                if self.peek() != Some(b'"') {
                    return Err(self.invalid("is not valid JSON"));
                }
                let name = self.string()?;
                self.skip_whitespace();
                if self.peek() != Some(b':') {
                    return Err(self.invalid("is not valid JSON"));
                }
                self.position += 1;
                self.skip_whitespace();
                let mut member = Vec::new();
                self.value(&mut member, depth + 1)?;
                members.push((name, member));
                self.skip_whitespace();
                match self.peek() {
                    Some(b',') => self.position += 1,
                    Some(b'}') => {
                        self.position += 1;
                        break;
                    }
                    _ => return Err(self.invalid("is not valid JSON")),
                }
            }
        }
        members.sort_by(|left, right| left.0.encode_utf16().cmp(right.0.encode_utf16()));
        if members.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            // Which of two equal names counts differs between parsers; a key must not depend on it.
            return Err(self.invalid("has an object with a repeated member name"));
        }
        out.push(b'{');
        for (index, (name, member)) in members.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_string(name, out);
            out.push(b':');
            out.extend_from_slice(member);
        }
        out.push(b'}');
        Ok(())
    }

    fn array(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), InputError> {
        self.position += 1;
        out.push(b'[');
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.position += 1;
            out.push(b']');
            return Ok(());
        }
        loop {
            self.skip_whitespace();
            self.value(out, depth + 1)?;
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => {
                    self.position += 1;
                    out.push(b',');
                }
                Some(b']') => {
                    self.position += 1;
                    out.push(b']');
                    return Ok(());
                }
                _ => return Err(self.invalid("is not valid JSON")),
            }
        }
    }

    /// A string token, decoded (escapes, surrogate pairs) by serde_json.
    fn string(&mut self) -> Result<String, InputError> {
        let start = self.position;
        self.position += 1;
        loop {
            match self.peek() {
                None => return Err(self.invalid("is not valid JSON")),
                Some(b'\\') => self.position += 2,
                Some(b'"') => {
                    self.position += 1;
                    break;
                }
                Some(_) => self.position += 1,
            }
        }
        let token = self.bytes.get(start..self.position).ok_or_else(|| self.invalid("is not valid JSON"))?;
        serde_json::from_slice(token).map_err(|_| self.invalid("holds an invalid string"))
    }

    /// A number token, written as its exact decimal value (see the module comment).
    fn number(&mut self, out: &mut Vec<u8>) -> Result<(), InputError> {
        let invalid = |reader: &Reader<'_>| reader.invalid("holds an invalid number");
        let negative = self.peek() == Some(b'-');
        if negative {
            self.position += 1;
        }
        let integer = self.digits();
        let integer_digits = &self.bytes[integer.clone()];
        if integer_digits.is_empty() || (integer_digits.len() > 1 && integer_digits[0] == b'0') {
            return Err(invalid(self));
        }
        let mut fraction = self.position..self.position;
        if self.peek() == Some(b'.') {
            self.position += 1;
            fraction = self.digits();
            if fraction.is_empty() {
                return Err(invalid(self));
            }
        }
        let mut exponent: i64 = 0;
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.position += 1;
            let sign = match self.peek() {
                Some(b'-') => {
                    self.position += 1;
                    -1
                }
                Some(b'+') => {
                    self.position += 1;
                    1
                }
                _ => 1,
            };
            let written = self.digits();
            if written.is_empty() {
                return Err(invalid(self));
            }
            let written = trim_leading_zeros(&self.bytes[written]);
            if written.len() > 7 {
                return Err(self.invalid("holds a number whose exponent is out of range"));
            }
            exponent = sign * written.iter().fold(0i64, |value, digit| value * 10 + i64::from(digit - b'0'));
        }
        let significant: Vec<u8> = self.bytes[integer].iter().chain(&self.bytes[fraction.clone()]).copied().collect();
        exponent -= i64::try_from(fraction.len()).map_err(|_| invalid(self))?;
        let significant = trim_leading_zeros(&significant);
        let trailing_zeros = significant.iter().rev().take_while(|digit| **digit == b'0').count();
        let digits = &significant[..significant.len() - trailing_zeros];
        if digits.is_empty() {
            out.push(b'0');
            return Ok(());
        }
        exponent += i64::try_from(trailing_zeros).map_err(|_| invalid(self))?;
        if exponent.abs() > CANONICAL_EXPONENT_MAX {
            return Err(self.invalid("holds a number whose exponent is out of range"));
        }
        if negative {
            out.push(b'-');
        }
        out.extend_from_slice(digits);
        if exponent != 0 {
            out.push(b'e');
            out.extend_from_slice(exponent.to_string().as_bytes());
        }
        Ok(())
    }

    /// The position range of the decimal digits at the cursor (possibly empty).
    fn digits(&mut self) -> std::ops::Range<usize> {
        let start = self.position;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.position += 1;
        }
        start..self.position
    }
}

fn trim_leading_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|digit| **digit == b'0').count();
    &digits[zeros..]
}

/// A string with the minimal escapes of RFC 8785 (serde_json writes exactly those: `\"`, `\\`,
/// the short forms `\b \f \n \r \t`, and `\u00xx` for other control characters).
fn write_string(text: &str, out: &mut Vec<u8>) {
    let quoted = serde_json::to_string(text).expect("a string always serializes");
    out.extend_from_slice(quoted.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn canonical(text: &str) -> String {
        String::from_utf8(canonical_json_text(text, "args").expect("canonical")).expect("utf-8")
    }

    #[test]
    fn members_are_sorted_like_rfc_8785_and_strings_minimally_escaped() {
        assert_eq!(
            canonical(r#"{"b": 1, "a": 2, "aa": [3, {"z": 0, "y": 1}]}"#),
            r#"{"a":2,"aa":[3,{"y":1,"z":0}],"b":1}"#
        );
        // RFC 8785 §3.2.3: "\u20ac" sorts after "\r" and "1".
        assert_eq!(canonical("{\"\u{20ac}\": 1, \"\\r\": 2, \"1\": 3}"), "{\"\\r\":2,\"1\":3,\"\u{20ac}\":1}");
        assert_eq!(canonical(r#""\u0000\u001f\"\\\/é🙂\ud83d\ude42""#), "\"\\u0000\\u001f\\\"\\\\/é🙂🙂\"");
        assert_eq!(canonical(" [ true , false , null ] "), "[true,false,null]");
    }

    /// Regression (issue 14, finding 8): numbers went through doubles, so different large
    /// integers gave one cache key.
    #[test]
    fn attack_55_numbers_are_equal_exactly_when_their_values_are() {
        let equal = [
            ("12345678901234567000", "1.2345678901234567e19"),
            ("1", "1.0"),
            ("1", "10e-1"),
            ("100", "1e2"),
            ("0", "-0"),
            ("0", "0.000e5"),
            ("-1.5", "-15E-1"),
            ("0.001", "1e-3"),
        ];
        for (left, right) in equal {
            assert_eq!(canonical(left), canonical(right), "{left} = {right}");
        }
        let different = [
            ("12345678901234567890", "12345678901234567000"),
            ("12345678901234567890", "1.2345678901234567e19"),
            ("9007199254740993", "9007199254740992"),
            ("1", "-1"),
            ("0.1", "0.10000000000000001"),
            ("1e400", "1e401"),
        ];
        for (left, right) in different {
            assert_ne!(canonical(left), canonical(right), "{left} != {right}");
        }
        assert_eq!(canonical("100"), "1e2");
        assert_eq!(canonical("1.5"), "15e-1");
        assert_eq!(canonical("-0.0"), "0");
    }

    #[test]
    fn malformed_and_unbounded_input_is_refused() {
        for bad in ["", "01", "1.", "-", "1e", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "tru", "\"open", "1 2", "1e99999999"]
        {
            assert!(canonical_json_text(bad, "args").is_err(), "{bad:?}");
        }
        assert!(canonical_json_text(r#"{"a": 1, "a": 2}"#, "args").is_err(), "repeated names");
        let deep = "[".repeat(JSON_DEPTH_MAX + 2) + &"]".repeat(JSON_DEPTH_MAX + 2);
        assert!(canonical_json_text(&deep, "args").is_err());
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|number| serde_json::json!(number)),
            any::<u64>().prop_map(|number| serde_json::json!(number)),
            (-1e300f64..1e300).prop_map(|number| serde_json::json!(number)),
            "[a-z\\u{0}-\\u{1f}\\u{e9}\\u{1f642}\"\\\\]{0,6}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("[a-z\\u{e9}]{0,4}", inner, 0..6)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Spelling never matters: pretty-printed and compact forms of a value canonicalize alike;
        /// the canonical form is JSON, and canonicalizing it again changes nothing.
        #[test]
        fn the_canonical_form_depends_only_on_the_value(value in json_value()) {
            let compact = canonical_json_text(&value.to_string(), "args").expect("compact");
            let pretty = canonical_json_text(&serde_json::to_string_pretty(&value).expect("pretty"), "args").expect("pretty");
            prop_assert_eq!(&compact, &pretty);
            prop_assert_eq!(canonical_json(&value, "args").expect("value"), compact.clone());
            let text = std::str::from_utf8(&compact).expect("utf-8");
            prop_assert!(serde_json::from_str::<serde_json::Value>(text).is_ok(), "the canonical form is JSON");
            prop_assert_eq!(canonical_json_text(text, "args").expect("again"), compact, "canonicalizing is idempotent");
        }

        /// Two integers canonicalize alike exactly when they are equal, at any size.
        #[test]
        fn integers_are_compared_exactly(left in "-?[1-9][0-9]{0,40}", right in "-?[1-9][0-9]{0,40}", zeros in 0usize..5) {
            let padded = format!("{right}{}", ".0".repeat(zeros.min(1)));
            prop_assert_eq!(canonical_json_text(&left, "n").expect("left") == canonical_json_text(&padded, "n").expect("right"), left == right);
        }
    }
}
