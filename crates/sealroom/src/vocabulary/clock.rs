//! The one clock: Unix seconds, as every layer stamps and compares times.

/// Unix seconds now. The store stamps times itself so every node agrees on one clock source
/// per backend (the machine's for SQLite, and the same for each PostgreSQL node).
pub fn unix_now_secs() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    i64::try_from(now).unwrap_or(i64::MAX)
}
