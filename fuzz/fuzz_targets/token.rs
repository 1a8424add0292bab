//! Token verification on hostile input: raw strings, tokens assembled from arbitrary header,
//! claims and signature bytes, and tokens correctly signed by the trusted key over arbitrary
//! header and claims (which reaches the claim checks behind the signature). Nothing may panic,
//! and a principal comes out only for the configured issuer, with the signed subject.

#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use sealroom::identity::{Algorithm, IssuerConfig, KeySource, Verifier, VerifierConfig};

const ISSUER: &str = "https://idp.fuzz.example";
const AUDIENCE: &str = "sealroom-fuzz";
const KID: &str = "fuzz-1";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    verifier: Verifier,
    key: Ed25519KeyPair,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let document = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        let key = Ed25519KeyPair::from_pkcs8(document.as_ref()).unwrap();
        let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": KID,
            "x": URL_SAFE_NO_PAD.encode(key.public_key().as_ref())});
        let issuer = IssuerConfig {
            issuer: ISSUER.into(),
            audiences: vec![AUDIENCE.into()],
            keys: KeySource::InlineJwks(vec![jwk.to_string()]),
            algorithms: vec![Algorithm::EdDSA],
            leeway_secs: 30,
            tenant_claim: Some("tenant".into()),
            roles_claim: Some("roles".into()),
        };
        let verifier = Verifier::new(VerifierConfig::new(vec![issuer])).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Fixture { runtime, verifier, key }
    })
}

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    Raw(&'a str),
    Assembled {
        header: &'a [u8],
        claims: &'a [u8],
        signature: &'a [u8],
    },
    Signed {
        header: &'a [u8],
        claims: &'a [u8],
    },
    /// A well-formed header and claims object with fuzzed values, signed.
    SignedClaims {
        claims: Vec<(&'a str, Value<'a>)>,
        kid: Option<&'a str>,
    },
}

#[derive(Arbitrary, Debug)]
enum Value<'a> {
    Text(&'a str),
    Number(i64),
    Float(f64),
    Boolean(bool),
    Texts(Vec<&'a str>),
    Null,
    NowPlus(i32),
}

impl Value<'_> {
    fn json(&self) -> serde_json::Value {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        match self {
            Value::Text(text) => serde_json::json!(text),
            Value::Number(number) => serde_json::json!(number),
            Value::Float(float) => serde_json::json!(float),
            Value::Boolean(boolean) => serde_json::json!(boolean),
            Value::Texts(texts) => serde_json::json!(texts),
            Value::Null => serde_json::Value::Null,
            Value::NowPlus(offset) => serde_json::json!(now + i64::from(*offset)),
        }
    }
}

fn signed(key: &Ed25519KeyPair, header: &[u8], claims: &[u8]) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

fuzz_target!(|input: Input| {
    let fixture = fixture();
    let (token, signed_claims) = match &input {
        Input::Raw(text) => (text.to_string(), None),
        Input::Assembled { header, claims, signature } => (
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(claims),
                URL_SAFE_NO_PAD.encode(signature)
            ),
            None,
        ),
        Input::Signed { header, claims } => (signed(&fixture.key, header, claims), serde_json::from_slice(claims).ok()),
        Input::SignedClaims { claims, kid } => {
            let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": kid.unwrap_or(KID)});
            let claims: serde_json::Map<String, serde_json::Value> =
                claims.iter().map(|(name, value)| (name.to_string(), value.json())).collect();
            let claims = serde_json::Value::Object(claims);
            (signed(&fixture.key, header.to_string().as_bytes(), claims.to_string().as_bytes()), Some(claims))
        }
    };
    let outcome = fixture.runtime.block_on(fixture.verifier.verify(&token));
    if let Ok(principal) = outcome {
        // Only a token signed by the trusted key can pass, and then only with exactly the
        // configured issuer and audience and the subject it carries.
        let claims: serde_json::Value = signed_claims.expect("a principal from a token the fuzzer did not sign");
        assert_eq!(principal.issuer(), ISSUER);
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["sub"].as_str(), Some(principal.subject()));
        let audience_ok = claims["aud"] == AUDIENCE
            || claims["aud"].as_array().is_some_and(|audiences| audiences.iter().any(|aud| aud == AUDIENCE));
        assert!(audience_ok, "accepted without the audience: {claims}");
        assert!(claims["exp"].is_i64() || claims["exp"].is_u64(), "accepted without a numeric exp: {claims}");
    }
});
