//! The schema sealroom keeps in PostgreSQL, created by the owner role: the tables, their forced
//! row-level security, the few `SECURITY DEFINER` functions for cross-room admin reads, and the
//! grants of the application role.

use super::PgOpenError;

/// A role name safe to interpolate into DDL (which cannot take parameters).
pub(super) fn checked_identifier(name: &str) -> Result<&str, PgOpenError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|character: char| character.is_ascii_lowercase() || character == '_')
        && name
            .chars()
            .all(|character| character.is_ascii_lowercase() || character.is_ascii_digit() || character == '_');
    if valid {
        Ok(name)
    } else {
        Err(PgOpenError::Migration(format!("role name {name:?} must match [a-z_][a-z0-9_]*")))
    }
}

/// The tables holding room data: each gets row-level security, enabled and forced.
pub const ROOM_TABLES: [&str; 4] = ["rooms", "records", "usage", "erasures"];

pub(super) fn migration_v1(owner: &str, app: &str) -> String {
    let mut sql = String::from(
        "CREATE SCHEMA IF NOT EXISTS sealroom;
         CREATE TABLE sealroom.meta (name text PRIMARY KEY, value bytea NOT NULL);
         CREATE TABLE sealroom.rooms (
             room text PRIMARY KEY, master_key_id bytea NOT NULL, key_id bytea NOT NULL,
             wrapped_key bytea NOT NULL, created_at bigint NOT NULL, version bigint NOT NULL);
         CREATE TABLE sealroom.records (
             room text NOT NULL, collection smallint NOT NULL, key bytea NOT NULL, value bytea NOT NULL,
             version bigint NOT NULL, expires_at bigint, updated_at bigint NOT NULL,
             PRIMARY KEY (room, collection, key));
         CREATE INDEX records_expiry ON sealroom.records (expires_at) WHERE expires_at IS NOT NULL;
         CREATE TABLE sealroom.usage (
             room text NOT NULL, collection smallint NOT NULL, records bigint NOT NULL, bytes bigint NOT NULL,
             version bigint NOT NULL, PRIMARY KEY (room, collection));
         CREATE TABLE sealroom.erasures (
             sequence bigserial PRIMARY KEY, room text NOT NULL, erased_at bigint NOT NULL, purged boolean NOT NULL);
        ",
    );
    for table in ROOM_TABLES {
        sql.push_str(&format!(
            "ALTER TABLE sealroom.{table} ENABLE ROW LEVEL SECURITY;
             ALTER TABLE sealroom.{table} FORCE ROW LEVEL SECURITY;
             CREATE POLICY room_isolation ON sealroom.{table}
                 USING (room = NULLIF(current_setting('sealroom.room', true), ''))
                 WITH CHECK (room = NULLIF(current_setting('sealroom.room', true), ''));
             CREATE POLICY maintenance ON sealroom.{table} TO {owner} USING (true) WITH CHECK (true);
            "
        ));
    }
    sql.push_str(&format!(
        "CREATE FUNCTION sealroom.rooms_page(after_room text, page_size integer)
             RETURNS TABLE (room text, created_at bigint, version bigint, records bigint, bytes bigint)
             LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
             SELECT r.room, r.created_at, r.version, coalesce(sum(u.records), 0)::bigint, coalesce(sum(u.bytes), 0)::bigint
             FROM sealroom.rooms r LEFT JOIN sealroom.usage u ON u.room = r.room
             WHERE after_room IS NULL OR r.room > after_room
             GROUP BY r.room ORDER BY r.room LIMIT page_size $$;
         CREATE FUNCTION sealroom.erasures_page(after_sequence bigint, page_size integer)
             RETURNS TABLE (room text, erased_at bigint, purged boolean)
             LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
             SELECT room, erased_at, purged FROM sealroom.erasures WHERE sequence > after_sequence
             ORDER BY sequence LIMIT page_size $$;
         CREATE FUNCTION sealroom.sweep_expired(now_secs bigint, batch integer) RETURNS bigint
             LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
             WITH expired AS (
                 DELETE FROM sealroom.records WHERE ctid IN (
                     SELECT ctid FROM sealroom.records
                     WHERE expires_at IS NOT NULL AND expires_at <= now_secs LIMIT batch)
                 RETURNING room, collection, octet_length(value) + octet_length(key) AS bytes),
             totals AS (
                 SELECT room, collection, count(*) AS records, sum(bytes) AS bytes FROM expired GROUP BY room, collection),
             adjusted AS (
                 UPDATE sealroom.usage u SET records = u.records - t.records, bytes = u.bytes - t.bytes
                 FROM totals t WHERE u.room = t.room AND u.collection = t.collection RETURNING 1)
             SELECT count(*) FROM expired $$;
         REVOKE ALL ON SCHEMA sealroom FROM PUBLIC;
         REVOKE ALL ON ALL TABLES IN SCHEMA sealroom FROM PUBLIC;
         REVOKE ALL ON ALL FUNCTIONS IN SCHEMA sealroom FROM PUBLIC;
         GRANT USAGE ON SCHEMA sealroom TO {app};
         GRANT SELECT ON sealroom.meta TO {app};
         GRANT SELECT, INSERT, UPDATE, DELETE ON sealroom.rooms, sealroom.records, sealroom.usage TO {app};
         GRANT SELECT, INSERT, UPDATE ON sealroom.erasures TO {app};
         GRANT USAGE ON SEQUENCE sealroom.erasures_sequence_seq TO {app};
         GRANT EXECUTE ON FUNCTION sealroom.rooms_page(text, integer), sealroom.erasures_page(bigint, integer),
             sealroom.sweep_expired(bigint, integer) TO {app};
        "
    ));
    sql
}
