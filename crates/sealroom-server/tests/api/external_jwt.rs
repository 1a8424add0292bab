//! Tokens minted by an independent library (Python's PyJWT) with keys served from a separate
//! JWKS process, so the verifier is checked against an implementation this project did not
//! write. The Python interpreter comes from `SEALROOM_TEST_PYTHON` (set by `scripts/test`,
//! which installs PyJWT into a virtual environment); without it the test fails, it does not skip.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use reqwest::StatusCode;
use sealroom::identity::{Algorithm, IssuerConfig, KeySource};
use sealroom_server::config::ServerConfig;
use serde_json::Value;

use crate::support::spawn_with;

const ISSUER: &str = "https://pyjwt.test";
const AUDIENCE: &str = "sealroom-api";

pub fn test_python() -> String {
    std::env::var("SEALROOM_TEST_PYTHON")
        .expect("SEALROOM_TEST_PYTHON is not set: run ./scripts/test, which installs the Python test dependencies")
}

struct PythonIssuer {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl PythonIssuer {
    fn start() -> (PythonIssuer, Value) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/external/pyjwt_issuer.py");
        let mut child = Command::new(test_python())
            .args([script, ISSUER, AUDIENCE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the Python issuer starts");
        let input = child.stdin.take().unwrap();
        let mut issuer = PythonIssuer { output: BufReader::new(child.stdout.take().unwrap()), input, child };
        let first = issuer.read_line();
        (issuer, first)
    }

    fn read_line(&mut self) -> Value {
        let mut line = String::new();
        self.output.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("the Python issuer printed {line:?}"))
    }

    fn command(&mut self, command: &str) -> Value {
        writeln!(self.input, "{command}").unwrap();
        self.input.flush().unwrap();
        self.read_line()
    }
}

impl Drop for PythonIssuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn tokens_from_an_independent_library_and_jwks_server() {
    let (mut python, started) = PythonIssuer::start();
    let port = started["port"].as_u64().unwrap();
    let tokens = &started["tokens"];
    let directory = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::development(directory.path().join("data"), "127.0.0.1:0".parse().unwrap());
    config.issuers.push(IssuerConfig {
        issuer: ISSUER.into(),
        audiences: vec![AUDIENCE.into()],
        keys: KeySource::JwksUrl(format!("http://127.0.0.1:{port}/jwks.json")),
        algorithms: vec![Algorithm::RS256, Algorithm::ES256],
        leeway_secs: 30,
        tenant_claim: Some("org".into()),
        roles_claim: Some("roles".into()),
    });
    config.jwks_refresh_cooldown_secs = 1;
    let app = spawn_with(config).await;
    let as_user = |name: &str, token: &str| app.user(name).with_token(token);

    let alice = as_user("alice", tokens["alice_rs256"].as_str().unwrap());
    let me = alice.get("/v1/me").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    let me = me.json();
    assert_eq!(me["issuer"], ISSUER);
    assert_eq!(me["subject"], "alice");
    assert_eq!(me["tenant"], "acme");
    assert_eq!(me["tenant_writer"], true);
    let bob = as_user("bob", tokens["bob_es256"].as_str().unwrap());
    assert_eq!(bob.get("/v1/me").await.status, StatusCode::OK);

    // Isolation between the independent issuer's users, and from the same subject elsewhere.
    alice.seed().await;
    assert_eq!(bob.get("/v1/items/memories/private/diary").await.status, StatusCode::NOT_FOUND);
    let local_alice = app.user("alice-local").with_token(&app.token("alice", None, &[]));
    assert_ne!(
        local_alice.get("/v1/me").await.json()["room_id"],
        me["room_id"],
        "the same sub under two issuers is two rooms"
    );
    assert_eq!(local_alice.get("/v1/items/memories/private/diary").await.status, StatusCode::NOT_FOUND);
    // Tenant room shared between the two members of "acme" at this issuer.
    assert_eq!(
        alice.put("/v1/tenant/items/shared/doc", serde_json::json!({"value": "team notes"})).await.status,
        StatusCode::OK
    );
    assert_eq!(bob.get("/v1/tenant/items/shared/doc").await.json()["value"], "team notes");

    for name in ["expired", "wrong_audience", "unknown_kid", "wrong_key_for_kid", "exp_as_string", "none"] {
        let reply = as_user("mallory", tokens[name].as_str().unwrap()).get("/v1/me").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{name}: {}", reply.text);
    }

    // The provider rotates its RSA key; after the cooldown one refresh picks it up.
    let rotated = python.command("rotate");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let carol = as_user("carol", rotated["token"].as_str().unwrap());
    assert_eq!(carol.get("/v1/me").await.status, StatusCode::OK);
    let fetches = python.command("requests")["requests"].as_u64().unwrap();
    assert!(fetches <= 4, "{fetches} JWKS fetches");
    app.assert_logs_clean();
}
