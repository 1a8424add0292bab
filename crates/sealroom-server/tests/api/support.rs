//! `spawn_app()` and its helpers: users with canaries, a client that checks every response
//! against other users' canaries, and log capture.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use reqwest::{Method, StatusCode};
use sealroom::identity::DevTokenRequest;
use sealroom::room_id::RoomIdDeriver;
use sealroom::secrets::Secret32;
use sealroom::store::postgres::testing::{APP_ROLE, TestDatabase};
use sealroom_server::app::App;
use sealroom_server::config::{ServerConfig, StorageConfig};
use serde_json::Value;

/// Every log line of every server in this test process.
fn captured_logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| Mutex::new(Vec::new()))
}

#[derive(Clone)]
struct CaptureWriter;

impl Write for CaptureWriter {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        captured_logs().lock().unwrap().extend_from_slice(buffer);
        Ok(buffer.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_log_capture() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        // Everything the server logs at any level, less only what production can never log.
        let _ = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(|| CaptureWriter)
            .finish()
            .with(sealroom_server::telemetry::payload_guard())
            .try_init();
    });
}

pub fn logs_text() -> String {
    String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned()
}

/// A running server and what tests need to talk to it.
pub struct TestApp {
    pub address: SocketAddr,
    /// The private metrics address, when the configuration names one.
    pub metrics_address: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub state: sealroom_server::state::AppState,
    pub http: reqwest::Client,
    /// (user name, canary) of every user made by this app.
    canaries: Arc<Mutex<Vec<(String, String)>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _directory: Option<tempfile::TempDir>,
}

pub async fn spawn_app() -> TestApp {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    let mut app = spawn_with(ServerConfig::development(data_dir, "127.0.0.1:0".parse().unwrap())).await;
    app._directory = Some(directory);
    app
}

/// A server over a fresh PostgreSQL database (connected as the application role).
pub async fn spawn_app_postgres() -> TestApp {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let (secret, _) = Secret32::load_or_generate(&data_dir.join(sealroom_server::app::ROOM_ID_SECRET_FILE)).unwrap();
    let database = TestDatabase::create(&RoomIdDeriver::new(&secret).fingerprint()).await;
    let mut config = ServerConfig::development(data_dir, "127.0.0.1:0".parse().unwrap());
    config.storage =
        StorageConfig::Postgres { url: database.app_url, pool_size: 4, owner_url: None, app_role: APP_ROLE.into() };
    let mut app = spawn_with(config).await;
    app._directory = Some(directory);
    app
}

/// Two servers (nodes) over one fresh PostgreSQL database, with the same secrets and the same
/// development issuer, as an operator runs several nodes behind a load balancer.
pub async fn spawn_two_postgres_nodes() -> (TestApp, TestApp) {
    let first = spawn_app_postgres().await;
    let StorageConfig::Postgres { url, .. } = &first.state.config().storage else { unreachable!() };
    let url = url.clone();
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    for entry in std::fs::read_dir(&first.data_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, data_dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    let mut config = ServerConfig::development(data_dir, "127.0.0.1:0".parse().unwrap());
    config.storage = StorageConfig::Postgres { url, pool_size: 4, owner_url: None, app_role: APP_ROLE.into() };
    let mut second = spawn_with(config).await;
    second._directory = Some(directory);
    (first, second)
}

/// One server per backend, for tests that must hold on both.
pub async fn spawn_apps() -> Vec<TestApp> {
    vec![spawn_app().await, spawn_app_postgres().await]
}

pub async fn spawn_with(config: ServerConfig) -> TestApp {
    init_log_capture();
    let data_dir = config.data_dir.clone();
    let app = App::build(config).await.unwrap();
    let address = app.address();
    let metrics_address = app.metrics_address();
    let state = app.state().clone();
    let (shutdown, receiver) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = receiver.await;
    }));
    TestApp {
        address,
        metrics_address,
        data_dir,
        state,
        http: reqwest::Client::builder().pool_max_idle_per_host(8).build().unwrap(),
        canaries: Arc::new(Mutex::new(Vec::new())),
        shutdown: Some(shutdown),
        server: Some(server),
        _directory: None,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Mints a development token.
    pub fn token(&self, subject: &str, tenant: Option<&str>, roles: &[&str]) -> String {
        let request = DevTokenRequest {
            audience: None,
            subject: subject.to_owned(),
            tenant: tenant.map(str::to_owned),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
            ttl_secs: 600,
        };
        self.state.dev_issuer().unwrap().mint(&request).unwrap()
    }

    /// Signs arbitrary claims with the development issuer's key (for tokens the issuer would
    /// never mint: expired, wrongly typed claims).
    pub fn sign_dev(&self, claims: &Value) -> String {
        let pkcs8 = std::fs::read(self.data_dir.join("dev-issuer-ed25519.pk8")).unwrap();
        let kid = self.state.dev_issuer().unwrap().public_jwk()["kid"].as_str().unwrap().to_owned();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(kid);
        jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_ed_der(&pkcs8)).unwrap()
    }

    /// A user with a unique canary registered for the oracle.
    pub fn user(&self, name: &str) -> TestUser {
        self.user_with(name, None, &[])
    }

    /// The admin credential of a development install.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join(sealroom_server::app::ADMIN_TOKEN_FILE)).unwrap().trim().to_owned()
    }

    /// `user` (made by another node's app: same token, canary and oracle) sending its requests
    /// to this node.
    pub fn on(&self, user: &TestUser) -> TestUser {
        let app = AppHandle { address: self.address, http: self.http.clone(), canaries: user.app.canaries.clone() };
        TestUser { app, ..user.clone() }
    }

    pub fn user_with(&self, name: &str, tenant: Option<&str>, roles: &[&str]) -> TestUser {
        let canary = format!("canary-{}-{name}", uuid::Uuid::new_v4().simple());
        self.canaries.lock().unwrap().push((name.to_owned(), canary.clone()));
        TestUser { name: name.to_owned(), token: self.token(name, tenant, roles), canary, app: self.handle() }
    }

    fn handle(&self) -> AppHandle {
        AppHandle { address: self.address, http: self.http.clone(), canaries: self.canaries.clone() }
    }

    /// A request without credentials.
    pub async fn anonymous(&self, method: Method, path: &str) -> Reply {
        let response = self.http.request(method, self.url(path)).send().await.unwrap();
        Reply::read(response).await
    }

    /// No canary of any user appears in the server's logs.
    pub fn assert_logs_clean(&self) {
        let logs = logs_text();
        for (user, canary) in self.canaries.lock().unwrap().iter() {
            assert!(!logs.contains(canary.as_str()), "the logs contain {user}'s canary");
        }
    }

    /// Stops the server and waits until it has released the data directory.
    pub async fn stop(mut self) -> PathBuf {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
        self.data_dir.clone()
    }

    /// Stops and keeps the temporary directory alive for a restart on it.
    pub async fn stop_keeping_directory(mut self) -> (PathBuf, Option<tempfile::TempDir>) {
        let directory = self._directory.take();
        (self.stop().await, directory)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

#[derive(Clone)]
struct AppHandle {
    address: SocketAddr,
    http: reqwest::Client,
    canaries: Arc<Mutex<Vec<(String, String)>>>,
}

/// A user with a token and a canary; every reply it receives is checked against every other
/// user's canary.
#[derive(Clone)]
pub struct TestUser {
    pub name: String,
    pub token: String,
    pub canary: String,
    app: AppHandle,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    async fn read(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        Reply { status, headers, text }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.text))
    }

    pub fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
    }
}

impl TestUser {
    /// The same user (name and canary) presenting another token.
    pub fn with_token(&self, token: &str) -> TestUser {
        TestUser { token: token.to_owned(), ..self.clone() }
    }

    pub async fn request(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.request_with(method, path, body, &[]).await
    }

    pub async fn request_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request =
            self.app.http.request(method, format!("http://{}{path}", self.app.address)).bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply = Reply::read(request.send().await.unwrap()).await;
        self.check_oracle(&reply);
        reply
    }

    /// The canary oracle: nothing served to this user carries another user's canary.
    fn check_oracle(&self, reply: &Reply) {
        let headers = format!("{:?}", reply.headers);
        for (user, canary) in self.app.canaries.lock().unwrap().iter() {
            if *user != self.name {
                assert!(!reply.text.contains(canary.as_str()), "{} was served {user}'s canary", self.name);
                assert!(!headers.contains(canary.as_str()), "{} got {user}'s canary in a header", self.name);
            }
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.request(Method::PUT, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Reply {
        self.request(Method::DELETE, path, None).await
    }

    /// Stores a thread with one canary message and an item holding the canary; returns the
    /// thread id.
    pub async fn seed(&self) -> String {
        let thread = self.post("/v1/threads", serde_json::json!({"title": format!("title {}", self.canary)})).await;
        assert_eq!(thread.status, StatusCode::CREATED, "{}", thread.text);
        let id = thread.json()["id"].as_str().unwrap().to_owned();
        let appended = self
            .post(
                &format!("/v1/threads/{id}/messages"),
                serde_json::json!({"messages": [{"role": "user", "content": format!("my secret is {}", self.canary)}]}),
            )
            .await;
        assert_eq!(appended.status, StatusCode::CREATED, "{}", appended.text);
        let item = self
            .put(
                "/v1/items/memories/private/diary",
                serde_json::json!({"value": {"note": self.canary}, "text": format!("diary {}", self.canary)}),
            )
            .await;
        assert_eq!(item.status, StatusCode::OK, "{}", item.text);
        id
    }
}
