//! Per-principal limits (ATTACKS.md 42): a flooding user is limited; other users are not. And
//! connection limits (ATTACKS.md 52): connections that never send a request are dropped.

use reqwest::StatusCode;
use sealroom_server::config::ServerConfig;
use sealroom_server::limiter::PrincipalLimits;
use sealroom_server::listener::ConnectionLimits;

use crate::support::spawn_with;

#[tokio::test]
async fn a_flooding_user_is_limited_and_others_are_not() {
    let directory = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::development(directory.path().join("data"), "127.0.0.1:0".parse().unwrap());
    config.limits.principal = PrincipalLimits { requests_per_sec: 20.0, burst: 20.0, in_flight_max: 4 };
    let app = spawn_with(config).await;
    let mallory = app.user("mallory");
    let alice = app.user("alice");
    let flood: Vec<_> = (0..200)
        .map(|_| {
            let mallory = mallory.clone();
            tokio::spawn(async move { mallory.get("/v1/me").await })
        })
        .collect();
    let mut alice_statuses = Vec::new();
    for _ in 0..10 {
        alice_statuses.push(alice.get("/v1/threads").await.status);
    }
    let mut limited = 0;
    for task in flood {
        let reply = task.await.unwrap();
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
            assert!(reply.headers.get("retry-after").is_some());
            assert_eq!(reply.error_code(), "rate_limited");
        }
    }
    assert!(limited >= 100, "only {limited} of 200 flooding requests were limited");
    assert!(alice_statuses.iter().all(|status| *status == StatusCode::OK), "{alice_statuses:?}");
}

/// Opens `count` connections to `server` from `local` that send nothing, or half a request
/// head, and never finish it.
async fn hold_connections(
    server: std::net::SocketAddr,
    local: std::net::IpAddr,
    count: usize,
) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut held = Vec::with_capacity(count);
    for index in 0..count {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(std::net::SocketAddr::new(local, 0)).unwrap();
        let mut stream = socket.connect(server).await.unwrap();
        if index % 2 == 1 {
            stream.write_all(b"GET /v1/me HTTP/1.1\r\nHost: sealroom\r\nAuthori").await.unwrap();
        }
        held.push(stream);
    }
    held
}

/// Whether the server has closed `stream` (read returns end of file or an error) within `wait`.
async fn closed_within(stream: &mut tokio::net::TcpStream, wait: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 512];
    loop {
        match tokio::time::timeout(wait, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A 408 or an error page may come first; what matters is that the connection ends.
            Ok(Ok(_)) => continue,
        }
    }
}

/// Regression (issue 14, finding 5): connections that never sent a complete request head held
/// every connection slot forever, and authenticated users timed out behind them.
#[tokio::test]
async fn attack_52_idle_and_half_sent_connections_are_dropped_and_users_served() {
    let directory = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::development(directory.path().join("data"), "127.0.0.1:0".parse().unwrap());
    config.limits.connections =
        ConnectionLimits { connections_max: 40, connections_per_address_max: 1_000, header_read_timeout_secs: 1 };
    let app = spawn_with(config).await;
    let alice = app.user("alice");
    // Every slot is taken by connections that will never send a request.
    let mut held = hold_connections(app.address, "127.0.0.1".parse().unwrap(), 40).await;
    let served = tokio::time::timeout(std::time::Duration::from_secs(20), alice.get("/v1/me")).await;
    assert_eq!(served.expect("alice was served once the idle connections were dropped").status, StatusCode::OK);
    for stream in &mut held {
        assert!(closed_within(stream, std::time::Duration::from_secs(10)).await, "a slow connection was kept");
    }
}

/// A client address holds at most its share of connections; more are closed at once, and
/// other addresses are served without waiting.
#[tokio::test]
async fn attack_52_one_address_holds_at_most_its_share_of_connections() {
    let directory = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::development(directory.path().join("data"), "127.0.0.1:0".parse().unwrap());
    config.limits.connections =
        ConnectionLimits { connections_max: 64, connections_per_address_max: 8, header_read_timeout_secs: 30 };
    let app = spawn_with(config).await;
    let alice = app.user("alice");
    let mut held = hold_connections(app.address, "127.0.0.2".parse().unwrap(), 100).await;
    // Alice, from another address, does not wait for the header timeout.
    let served = tokio::time::timeout(std::time::Duration::from_secs(5), alice.get("/v1/me")).await;
    assert_eq!(served.expect("alice was served at once").status, StatusCode::OK);
    let mut open = 0;
    for stream in &mut held {
        if !closed_within(stream, std::time::Duration::from_millis(300)).await {
            open += 1;
        }
    }
    assert_eq!(open, 8, "one address keeps exactly its share");
}

/// Reads one HTTP/1.1 response from a kept-alive connection: its status, headers (lowercase)
/// and body; `None` if the connection ended first.
async fn read_response(stream: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> Option<(u16, String, String)> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut status_line = String::new();
    if stream.read_line(&mut status_line).await.ok()? == 0 {
        return None;
    }
    let status = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let mut headers = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await.ok()?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            length = value.trim().parse().ok()?;
        }
        headers.push_str(&lower);
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.ok()?;
    Some((status, headers, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test]
async fn a_refusal_before_the_body_is_read_keeps_the_client_informed() {
    use tokio::io::AsyncWriteExt;
    let directory = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::development(directory.path().join("data"), "127.0.0.1:0".parse().unwrap());
    config.limits.principal = PrincipalLimits { requests_per_sec: 0.5, burst: 1.0, in_flight_max: 4 };
    let app = spawn_with(config).await;
    let alice = app.user("alice");
    let body = format!("{{\"value\": \"{}\"}}", "x".repeat(200_000));
    let request = format!(
        "PUT /v1/items/notes/n HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        alice.token,
        body.len()
    );
    let stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    let mut stream = tokio::io::BufReader::new(stream);
    stream.get_mut().write_all(request.as_bytes()).await.unwrap();
    let (status, _, _) = read_response(&mut stream).await.expect("the first request is answered");
    assert_eq!(status, 200);
    // The second is refused by the rate limit before its body is read: the client has sent the
    // head and part of the body when the answer comes (as a client streaming a large body has).
    let (head, rest) = request.split_at(request.len() - 100_000);
    stream.get_mut().write_all(head.as_bytes()).await.unwrap();
    let (status, headers, body) = read_response(&mut stream).await.expect("the refusal is answered");
    assert_eq!(status, 429, "{body}");
    // Either the refusal says the connection ends, or the connection answers the next request.
    if !headers.contains("connection: close") {
        let _ = stream.get_mut().write_all(rest.as_bytes()).await;
        let next = "GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n";
        let _ = stream.get_mut().write_all(next.as_bytes()).await;
        assert!(read_response(&mut stream).await.is_some(), "the connection ended without saying so");
    }
    // A refusal after the body was read keeps the connection: a bad body is a 400, then served.
    let stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    let mut stream = tokio::io::BufReader::new(stream);
    let bad = "GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n".to_owned();
    stream.get_mut().write_all(bad.as_bytes()).await.unwrap();
    let (_, headers, _) = read_response(&mut stream).await.unwrap();
    assert!(!headers.contains("connection: close"));
    app.assert_logs_clean();
}
