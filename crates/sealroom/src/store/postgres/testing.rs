//! Test support: throwaway databases on the cluster `SEALROOM_TEST_POSTGRES_URL` names, each
//! migrated with the owner and application roles the tests use (only with `test-hooks`).

use super::PgBackend;

/// The owner and application roles the tests use, created once per cluster.
pub const OWNER_ROLE: &str = "sealroom_test_owner";
pub const APP_ROLE: &str = "sealroom_test_app";

/// A migrated database and the URLs of its roles.
#[derive(Clone, Debug)]
pub struct TestDatabase {
    pub name: String,
    pub admin_url: String,
    pub owner_url: String,
    pub app_url: String,
}

pub fn admin_url() -> String {
    std::env::var("SEALROOM_TEST_POSTGRES_URL").expect(
        "SEALROOM_TEST_POSTGRES_URL is not set: run ./scripts/test, which starts a throwaway PostgreSQL cluster",
    )
}

fn url_for(admin_url: &str, role: &str, database: &str) -> String {
    let mut url = reqwest::Url::parse(admin_url).expect("SEALROOM_TEST_POSTGRES_URL is a URL");
    url.set_username(role).expect("the URL takes a user name");
    url.set_path(&format!("/{database}"));
    url.to_string()
}

async fn admin_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect to the test cluster");
    tokio::spawn(connection);
    client
}

impl TestDatabase {
    /// Creates the roles if needed, a new database owned by the owner role, and migrates it.
    pub async fn create(deployment_fingerprint: &[u8; 32]) -> TestDatabase {
        let admin_url = admin_url();
        let admin = admin_client(&admin_url).await;
        for (role, attributes) in [
            (OWNER_ROLE, "LOGIN NOSUPERUSER NOBYPASSRLS"),
            (APP_ROLE, "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"),
        ] {
            admin
                .batch_execute(&format!(
                    "DO $$ BEGIN CREATE ROLE {role} {attributes};
                     EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
                ))
                .await
                .expect("create test role");
        }
        let name = format!("sealroom_test_{}", uuid::Uuid::new_v4().simple());
        admin.batch_execute(&format!("CREATE DATABASE {name} OWNER {OWNER_ROLE}")).await.expect("create test database");
        let database = TestDatabase {
            owner_url: url_for(&admin_url, OWNER_ROLE, &name),
            app_url: url_for(&admin_url, APP_ROLE, &name),
            admin_url: url_for(&admin_url, "postgres", &name),
            name,
        };
        PgBackend::migrate(&database.owner_url, APP_ROLE, deployment_fingerprint)
            .await
            .expect("migrate the test database");
        database
    }
}
