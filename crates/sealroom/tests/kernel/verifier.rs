//! Token attacks at the verifier (ATTACKS.md 1–12 and 43), with tokens forged by the test's own
//! keys and a local JWKS endpoint that counts what it is asked.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sealroom::identity::{Algorithm, AuthError, IssuerConfig, KeySource, Verifier, VerifierConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ISSUER_A: &str = "https://idp-a.example";
const ISSUER_B: &str = "https://idp-b.example";
const AUDIENCE: &str = "sealroom-tests";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// An Ed25519 signing key with its JWK.
struct TestKey {
    pair: Ed25519KeyPair,
    kid: String,
}

impl TestKey {
    fn new(kid: &str) -> TestKey {
        let document = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        TestKey { pair: Ed25519KeyPair::from_pkcs8(document.as_ref()).unwrap(), kid: kid.to_owned() }
    }

    fn public(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    fn jwk(&self) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": self.kid, "x": URL_SAFE_NO_PAD.encode(self.public())})
    }

    fn spki_der(&self) -> Vec<u8> {
        let mut der = hex_bytes("302a300506032b6570032100");
        der.extend_from_slice(self.public());
        der
    }

    fn pem(&self) -> String {
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(self.spki_der()))
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let message = signing_input(header, claims);
        let signature = self.pair.sign(message.as_bytes());
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    fn token(&self, claims: &Value) -> String {
        self.sign(&json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid}), claims)
    }
}

fn hex_bytes(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|index| u8::from_str_radix(&text[index..index + 2], 16).unwrap()).collect()
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
}

fn claims(issuer: &str, subject: &str) -> Value {
    json!({"iss": issuer, "sub": subject, "aud": AUDIENCE, "exp": now() + 300, "iat": now(), "nbf": now(), "tenant": "acme", "roles": ["tenant-writer"]})
}

fn inline_issuer(issuer: &str, keys: &[&TestKey]) -> IssuerConfig {
    IssuerConfig {
        issuer: issuer.into(),
        audiences: vec![AUDIENCE.into()],
        keys: KeySource::InlineJwks(keys.iter().map(|key| key.jwk().to_string()).collect()),
        algorithms: vec![Algorithm::EdDSA, Algorithm::ES256],
        leeway_secs: 30,
        tenant_claim: Some("tenant".into()),
        roles_claim: Some("roles".into()),
    }
}

fn verifier(issuers: Vec<IssuerConfig>) -> Verifier {
    Verifier::new(VerifierConfig::new(issuers)).unwrap()
}

async fn refused(verifier: &Verifier, token: &str) -> AuthError {
    match verifier.verify(token).await {
        Ok(_) => panic!("token accepted: {token:.60}"),
        Err(error) => error,
    }
}

#[tokio::test]
async fn valid_token_yields_its_principal() {
    let key = TestKey::new("a1");
    let verifier = verifier(vec![inline_issuer(ISSUER_A, &[&key])]);
    let principal = verifier.verify(&key.token(&claims(ISSUER_A, "alice"))).await.unwrap();
    assert_eq!(principal.issuer(), ISSUER_A);
    assert_eq!(principal.subject(), "alice");
    assert_eq!(principal.tenant(), Some("acme"));
    assert!(principal.has_role("tenant-writer"));
    assert!(!format!("{principal:?}").contains("alice"), "Debug must not print the subject");
}

#[tokio::test]
async fn attack_01_alg_none_and_missing_signatures() {
    let key = TestKey::new("a1");
    let verifier = verifier(vec![inline_issuer(ISSUER_A, &[&key])]);
    let body = claims(ISSUER_A, "alice");
    for alg in ["none", "None", "NONE", "nOnE"] {
        let input = signing_input(&json!({"alg": alg, "typ": "JWT"}), &body);
        refused(&verifier, &format!("{input}.")).await;
        refused(&verifier, &input).await;
        refused(&verifier, &format!("{input}.AAAA")).await;
    }
    let valid = key.token(&body);
    let (unsigned, _) = valid.rsplit_once('.').unwrap();
    refused(&verifier, &format!("{unsigned}.")).await;
    refused(&verifier, unsigned).await;
}

#[tokio::test]
async fn attack_02_hmac_keyed_with_the_public_key() {
    let key = TestKey::new("a1");
    let verifier = verifier(vec![inline_issuer(ISSUER_A, &[&key])]);
    let body = claims(ISSUER_A, "alice");
    let secrets: Vec<Vec<u8>> =
        vec![key.pem().into_bytes(), key.spki_der(), key.jwk().to_string().into_bytes(), key.public().to_vec()];
    for secret in secrets {
        for alg in ["HS256", "HS384", "HS512"] {
            let algorithm = match alg {
                "HS256" => aws_lc_rs::hmac::HMAC_SHA256,
                "HS384" => aws_lc_rs::hmac::HMAC_SHA384,
                _ => aws_lc_rs::hmac::HMAC_SHA512,
            };
            let input = signing_input(&json!({"alg": alg, "typ": "JWT", "kid": "a1"}), &body);
            let tag = aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(algorithm, &secret), input.as_bytes());
            let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
            assert_eq!(refused(&verifier, &token).await, AuthError::UnsupportedAlgorithm);
        }
    }
}

#[tokio::test]
async fn attack_03_stripped_truncated_or_flipped_signatures() {
    let key = TestKey::new("a1");
    let verifier = verifier(vec![inline_issuer(ISSUER_A, &[&key])]);
    let token = key.token(&claims(ISSUER_A, "alice"));
    let (input, signature) = token.rsplit_once('.').unwrap();
    let mut raw = URL_SAFE_NO_PAD.decode(signature).unwrap();
    refused(&verifier, &format!("{input}.{}", URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 1]))).await;
    refused(&verifier, &format!("{input}.{}", &signature[..signature.len() / 2])).await;
    raw[5] ^= 0x01;
    refused(&verifier, &format!("{input}.{}", URL_SAFE_NO_PAD.encode(&raw))).await;
    // A payload changed under a valid signature.
    let forged = signing_input(&json!({"alg": "EdDSA", "typ": "JWT", "kid": "a1"}), &claims(ISSUER_A, "bob"));
    refused(&verifier, &format!("{forged}.{signature}")).await;
}

#[tokio::test]
async fn attack_04_token_supplied_keys_and_key_urls() {
    let trusted = TestKey::new("a1");
    let attacker = TestKey::new("evil");
    let jwks = FakeJwks::start(json!({"keys": [attacker.jwk()]})).await;
    let verifier = verifier(vec![inline_issuer(ISSUER_A, &[&trusted])]);
    let body = claims(ISSUER_A, "alice");
    let headers = [
        json!({"alg": "EdDSA", "jwk": attacker.jwk()}),
        json!({"alg": "EdDSA", "x5c": [STANDARD.encode(attacker.spki_der())]}),
        json!({"alg": "EdDSA", "jku": jwks.url("/attacker-keys"), "kid": "evil"}),
        json!({"alg": "EdDSA", "x5u": jwks.url("/attacker-cert"), "kid": "evil"}),
    ];
    for header in headers {
        assert!(matches!(refused(&verifier, &attacker.sign(&header, &body)).await, AuthError::ForbiddenHeader(_)));
    }
    assert_eq!(jwks.requests(), 0, "no URL from a token is ever fetched");
}

#[tokio::test]
async fn attack_05_hostile_key_ids() {
    let key = TestKey::new("a1");
    let jwks = FakeJwks::start(json!({"keys": [key.jwk()]})).await;
    let verifier = jwks_verifier(&jwks, 3600);
    let body = claims(ISSUER_A, "alice");
    verifier.verify(&key.token(&body)).await.unwrap();
    let fetches_before = verifier.jwks_fetches(ISSUER_A);
    for kid in ["../../../../dev/null", "' OR 1=1 --", &"k".repeat(10 * 1024), "a\u{0}b", "unknown"] {
        let token = key.sign(&json!({"alg": "EdDSA", "kid": kid}), &body);
        refused(&verifier, &token).await;
    }
    assert_eq!(verifier.jwks_fetches(ISSUER_A), fetches_before, "no fetch within the cooldown");
}

#[tokio::test]
async fn attack_06_kid_floods_and_key_rotation() {
    let old_key = TestKey::new("old");
    let jwks = FakeJwks::start(json!({"keys": [old_key.jwk()]})).await;
    let verifier = Arc::new(jwks_verifier(&jwks, 2));
    let body = claims(ISSUER_A, "alice");
    verifier.verify(&old_key.token(&body)).await.unwrap();
    assert_eq!(jwks.requests(), 1);
    let mut tasks = Vec::new();
    for index in 0..1000 {
        let verifier = verifier.clone();
        let token = old_key.sign(&json!({"alg": "EdDSA", "kid": format!("random-{index}")}), &body);
        tasks.push(tokio::spawn(async move { verifier.verify(&token).await.is_err() }));
    }
    for task in tasks {
        assert!(task.await.unwrap());
    }
    assert!(jwks.requests() <= 2, "{} fetches for 1000 unknown kids", jwks.requests());
    verifier.verify(&old_key.token(&body)).await.expect("valid tokens keep working during the flood");

    // The provider rotates to a new key; after the cooldown one refresh picks it up.
    let new_key = TestKey::new("new");
    jwks.set(json!({"keys": [new_key.jwk()]}));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = jwks.requests();
    verifier.verify(&new_key.token(&body)).await.expect("rotated key accepted");
    assert_eq!(jwks.requests(), before + 1);
}

#[tokio::test]
async fn attack_07_key_of_one_issuer_claiming_another() {
    let key_a = TestKey::new("a1");
    let key_b = TestKey::new("b1");
    let verifier = verifier(vec![inline_issuer(ISSUER_A, &[&key_a]), inline_issuer(ISSUER_B, &[&key_b])]);
    // Signed by A's key but claiming B (with A's kid and with B's kid).
    refused(&verifier, &key_a.token(&claims(ISSUER_B, "alice"))).await;
    let header = json!({"alg": "EdDSA", "kid": "b1"});
    refused(&verifier, &key_a.sign(&header, &claims(ISSUER_B, "alice"))).await;
    verifier.verify(&key_b.token(&claims(ISSUER_B, "alice"))).await.unwrap();
}

#[tokio::test]
async fn attack_08_same_subject_under_two_issuers_is_two_principals() {
    let key_a = TestKey::new("a1");
    let key_b = TestKey::new("b1");
    let verifier = verifier(vec![inline_issuer(ISSUER_A, &[&key_a]), inline_issuer(ISSUER_B, &[&key_b])]);
    let from_a = verifier.verify(&key_a.token(&claims(ISSUER_A, "alice"))).await.unwrap();
    let from_b = verifier.verify(&key_b.token(&claims(ISSUER_B, "alice"))).await.unwrap();
    assert_ne!(from_a, from_b);
    let store = crate::support::sqlite_store(sealroom::RoomsSettings::standard()).await;
    assert_ne!(store.rooms.room(&from_a).id(), store.rooms.room(&from_b).id());
}

#[tokio::test]
async fn attack_09_audience_issuer_and_subject() {
    let key = TestKey::new("a1");
    let verifier = verifier(vec![inline_issuer(ISSUER_A, &[&key])]);
    let mutations: Vec<(&str, Option<Value>)> = vec![
        ("aud", None),
        ("aud", Some(json!("someone-else"))),
        ("aud", Some(json!(["someone-else"]))),
        ("aud", Some(json!(7))),
        ("iss", None),
        ("iss", Some(json!("https://unknown.example"))),
        ("iss", Some(json!(5))),
        ("sub", None),
        ("sub", Some(json!(""))),
        ("sub", Some(json!(12345))),
        ("sub", Some(json!(["alice"]))),
        ("sub", Some(json!({"id": "alice"}))),
    ];
    for (name, value) in mutations {
        let mut body = claims(ISSUER_A, "alice");
        match value {
            Some(value) => body[name] = value,
            None => {
                body.as_object_mut().unwrap().remove(name);
            }
        }
        refused(&verifier, &key.token(&body)).await;
    }
}

#[tokio::test]
async fn attack_10_times_of_every_wrong_shape() {
    let key = TestKey::new("a1");
    let verifier = verifier(vec![inline_issuer(ISSUER_A, &[&key])]);
    let mutations: Vec<(&str, Option<Value>)> = vec![
        ("exp", Some(json!(now() - 3600))),
        ("exp", Some(json!(now() - 31))),
        ("exp", None),
        ("exp", Some(json!((now() + 300).to_string()))),
        ("exp", Some(json!((now() + 300) as f64 + 0.5))),
        ("exp", Some(json!(1e300))),
        ("exp", Some(json!(-1))),
        ("exp", Some(json!(i64::MAX))),
        ("exp", Some(json!(u64::MAX))),
        ("nbf", Some(json!(now() + 3600))),
        ("nbf", Some(json!((now() - 10).to_string()))),
        ("nbf", Some(json!((now() - 10) as f64 + 0.5))),
        ("nbf", Some(json!(-1e300))),
        ("iat", Some(json!("yesterday"))),
    ];
    for (name, value) in mutations {
        let mut body = claims(ISSUER_A, "alice");
        match value.clone() {
            Some(value) => body[name] = value,
            None => {
                body.as_object_mut().unwrap().remove(name);
            }
        }
        let error = refused(&verifier, &key.token(&body)).await;
        assert!(!matches!(error, AuthError::InvalidSignature), "{name}={value:?}: {error:?}");
    }
}

#[tokio::test]
async fn attack_12_untrusted_issuers() {
    let trusted = TestKey::new("a1");
    let stranger = TestKey::new("s1");
    let verifier = verifier(vec![inline_issuer(ISSUER_A, &[&trusted])]);
    assert_eq!(
        refused(&verifier, &stranger.token(&claims("https://stranger.example", "alice"))).await,
        AuthError::UnknownIssuer
    );
    // A well-formed token of a trusted issuer name, signed by a key nobody trusts.
    refused(&verifier, &stranger.token(&claims(ISSUER_A, "alice"))).await;
    // There is no verifier without issuers.
    assert!(Verifier::new(VerifierConfig::new(Vec::new())).is_err());
}

#[tokio::test]
async fn other_algorithms_verify_with_their_own_keys_only() {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, document.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    let jwk = json!({"kty": "EC", "crv": "P-256", "kid": "ec1", "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])});
    let mut issuer = inline_issuer(ISSUER_A, &[]);
    issuer.keys = KeySource::InlineJwks(vec![jwk.to_string()]);
    let verifier = verifier(vec![issuer]);
    let body = claims(ISSUER_A, "alice");
    let sign = |header: &Value| {
        let input = signing_input(header, &body);
        let signature = pair.sign(&rng, input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    };
    verifier.verify(&sign(&json!({"alg": "ES256", "kid": "ec1"}))).await.unwrap();
    // The same key and signature under another header algorithm is refused.
    refused(&verifier, &sign(&json!({"alg": "EdDSA", "kid": "ec1"}))).await;
}

#[tokio::test]
async fn attack_43_identity_provider_down() {
    let key = TestKey::new("a1");
    let jwks = FakeJwks::start(json!({"keys": [key.jwk()]})).await;
    let verifier = jwks_verifier(&jwks, 1);
    let body = claims(ISSUER_A, "alice");
    verifier.verify(&key.token(&body)).await.unwrap();
    jwks.fail_with(503);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Unknown kids trigger at most one failing fetch; the cached key keeps working.
    for index in 0..50 {
        refused(&verifier, &key.sign(&json!({"alg": "EdDSA", "kid": format!("x{index}")}), &body)).await;
        verifier.verify(&key.token(&body)).await.expect("cached keys keep working");
    }
    assert!(jwks.requests() <= 3, "{} fetches", jwks.requests());
}

fn jwks_verifier(jwks: &FakeJwks, cooldown_secs: u64) -> Verifier {
    let mut issuer = inline_issuer(ISSUER_A, &[]);
    issuer.keys = KeySource::JwksUrl(jwks.url("/jwks.json"));
    let mut config = VerifierConfig::new(vec![issuer]);
    config.jwks_refresh_cooldown_secs = cooldown_secs;
    Verifier::new(config).unwrap()
}

/// A tiny HTTP server serving a JWKS document and counting every request.
struct FakeJwks {
    address: std::net::SocketAddr,
    document: Arc<Mutex<String>>,
    status: Arc<AtomicU16>,
    requests: Arc<AtomicU64>,
}

impl FakeJwks {
    async fn start(document: Value) -> FakeJwks {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = FakeJwks {
            address,
            document: Arc::new(Mutex::new(document.to_string())),
            status: Arc::new(AtomicU16::new(200)),
            requests: Arc::new(AtomicU64::new(0)),
        };
        let (document, status, requests) = (server.document.clone(), server.status.clone(), server.requests.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let (document, status, requests) = (document.clone(), status.clone(), requests.clone());
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 4096];
                    let mut read = 0;
                    while !buffer[..read].windows(4).any(|window| window == b"\r\n\r\n") {
                        match socket.read(&mut buffer[read..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(count) => read += count,
                        }
                    }
                    requests.fetch_add(1, Ordering::SeqCst);
                    let body = document.lock().unwrap().clone();
                    let code = status.load(Ordering::SeqCst);
                    let response = format!(
                        "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn set(&self, document: Value) {
        *self.document.lock().unwrap() = document.to_string();
    }

    fn fail_with(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}
