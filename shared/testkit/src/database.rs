use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection};

/// A database created for one test, migrated, and dropped when the value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    pub pool: PgPool,
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub fn server_url() -> String {
        std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    /// Creates an empty database and runs `migrators` on it, in order.
    pub async fn create(migrators: &[&Migrator]) -> Self {
        let name = format!("test_{}", crate::unique_suffix());
        let mut admin = PgConnection::connect(&Self::server_url()).await.expect("postgres is not reachable");
        admin.execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#))).await.unwrap();
        let options: PgConnectOptions = Self::server_url().parse::<PgConnectOptions>().unwrap().database(&name);
        let url = format!("{}/{name}", Self::server_url().rsplit_once('/').unwrap().0);
        let pool = PgPoolOptions::new().max_connections(10).connect_with(options).await.unwrap();
        for migrator in migrators {
            migrator.run(&pool).await.unwrap();
        }
        Self { pool, name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside a runtime that is blocked on us: use a thread of its own,
        // and leave the pool alone (its connections belong to that runtime).
        // `WITH (FORCE)` ends the pool's sessions on the server side.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&Self::server_url()).await {
                    let _ = admin
                        .execute(sqlx::AssertSqlSafe(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#)))
                        .await;
                }
            });
        })
        .join();
    }
}
