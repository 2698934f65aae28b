//! The national shared server (共通サーバー): registry and resident imports, identity links with
//! agency-specific codes, and the federation endpoints the prefecture nodes call.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod cli;
pub mod error;
pub mod figures;
pub mod http;
pub mod identity;
pub mod imports;
pub mod latent;
pub mod map;
pub mod matches;
pub mod matching;
pub mod nodes;
pub mod notices;
pub mod operations;
pub mod postings;
pub mod proofing;
pub mod provisions;
pub mod queue;
pub mod reminders;
pub mod routing;
pub mod schema;
pub mod sync;
pub mod synthetic;
pub mod training;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/national/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/national/postgres");

/// Applies the national server's pending migrations.
pub fn migrate(conn: &mut ncf_shared::db::DbConn) -> Result<Vec<String>, ncf_shared::db::DbError> {
    ncf_shared::db::run_migrations(conn, SQLITE_MIGRATIONS, POSTGRES_MIGRATIONS)
}
