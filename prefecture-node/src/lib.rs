//! A prefecture nurse-center node (都道府県ナースセンター): its nurses (known by this node's agency
//! code), their notices and consent records, and the outbox of events for the national server.
//!
//! The consent gate (DESIGN rule 3) is `consent::covers`: every event passes through it before it
//! is written to the outbox, in the same transaction as the change that caused it.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod auth;
pub mod bulk;
pub mod consent;
pub mod digests;
pub mod error;
pub mod life_events;
pub mod mail;
pub mod notices;
pub mod nurses;
pub mod opt_in;
pub mod outbox;
pub mod postings;
pub mod proofing;
pub mod proxy;
pub mod receipts;
pub mod schema;
pub mod staff;
pub mod sync;
pub mod training;
pub mod transfers;
pub mod uploads;
pub mod web;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/node/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/node/postgres");

/// Applies the node's pending migrations, then fills derived columns a migration cannot compute
/// in SQL (the staff search key of registrations from before it existed).
pub fn migrate(conn: &mut ncf_shared::db::DbConn) -> Result<Vec<String>, ncf_shared::db::DbError> {
    let applied = ncf_shared::db::run_migrations(conn, SQLITE_MIGRATIONS, POSTGRES_MIGRATIONS)?;
    nurses::backfill_search_keys(conn)?;
    Ok(applied)
}

/// Who entered a record: the nurse on the web page, or staff from a paper form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Web,
    Paper,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Paper => "paper",
        }
    }
}
