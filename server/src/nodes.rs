//! Registered nodes and the authentication of their requests (DESIGN rule 6).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ncf_shared::Prefecture;
use ncf_shared::db::DbConn;
use ncf_shared::federation::{self, NodePublicKey, SignatureError};

use crate::error::{AppError, ErrorKind};
use crate::schema::{federation_nonces, nodes};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = nodes)]
pub struct NodeRecord {
    pub key_id: String,
    pub prefecture: String,
    pub public_key: String,
    pub added_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

/// The node a verified request came from.
#[derive(Debug, Clone)]
pub struct AuthenticatedNode {
    pub key_id: String,
    pub prefecture: Prefecture,
}

#[derive(Debug, thiserror::Error)]
pub enum AddNodeError {
    #[error("invalid public key: {0}")]
    Key(String),
    #[error("this public key is already registered (key id {0})")]
    Duplicate(String),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

pub fn add(conn: &mut DbConn, prefecture: Prefecture, public_key: &str) -> Result<NodeRecord, AddNodeError> {
    let key = NodePublicKey::parse(public_key).map_err(AddNodeError::Key)?;
    let record = NodeRecord {
        key_id: key.key_id(),
        prefecture: prefecture.code(),
        public_key: key.to_base64(),
        added_at: ncf_shared::time::now_utc(),
        revoked_at: None,
    };
    let inserted = diesel::insert_into(nodes::table)
        .values((
            nodes::key_id.eq(&record.key_id),
            nodes::prefecture.eq(&record.prefecture),
            nodes::public_key.eq(&record.public_key),
            nodes::added_at.eq(record.added_at),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(record),
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            Err(AddNodeError::Duplicate(record.key_id))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RevokeNodeError {
    #[error("no node key {0:?} is registered (see `national-server nodes list`)")]
    Unknown(String),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

/// Revokes a node's key: from now on its signed requests are refused (403 `node_revoked`). A key
/// already revoked keeps its first revocation time.
pub fn revoke(conn: &mut DbConn, key_id: &str) -> Result<NodeRecord, RevokeNodeError> {
    let key_id = key_id.trim();
    diesel::update(nodes::table.find(key_id).filter(nodes::revoked_at.is_null()))
        .set(nodes::revoked_at.eq(ncf_shared::time::now_utc()))
        .execute(conn)?;
    nodes::table
        .find(key_id)
        .select(NodeRecord::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| RevokeNodeError::Unknown(key_id.to_string()))
}

pub fn list(conn: &mut DbConn) -> QueryResult<Vec<NodeRecord>> {
    nodes::table.order((nodes::prefecture, nodes::added_at)).select(NodeRecord::as_select()).load(conn)
}

/// The signature headers and what they sign, as received.
pub struct SignedParts<'a> {
    pub key_id: &'a str,
    pub timestamp: &'a str,
    pub nonce: &'a str,
    pub signature: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
}

/// Verifies a federation request: known key, good signature, fresh timestamp, unused nonce.
/// The nonce is recorded only once everything else holds, so a forged request cannot burn one.
pub fn authenticate(
    conn: &mut DbConn,
    req: &SignedParts<'_>,
    now: NaiveDateTime,
) -> Result<AuthenticatedNode, AppError> {
    match verify(conn, req, now)? {
        Ok(node) => Ok(node),
        Err(Refusal::Revoked) => {
            tracing::warn!(
                key_id = req.key_id,
                path = req.path,
                "federation request from a revoked node key refused"
            );
            Err(AppError::new(
                ErrorKind::NodeRevoked,
                "this node's key has been revoked at the national server; register a new key",
            ))
        }
        Err(Refusal::Signature(e)) => {
            tracing::warn!(key_id = req.key_id, path = req.path, reason = %e, "federation request refused");
            let kind =
                if e == SignatureError::Replayed { ErrorKind::Conflict } else { ErrorKind::Unauthorized };
            Err(AppError::new(kind, e.to_string()))
        }
    }
}

/// Why a request was refused: its signature, or a revoked key. Revocation is told only to a
/// request that the key really signed, so it reveals nothing to anyone else.
enum Refusal {
    Signature(SignatureError),
    Revoked,
}

impl From<SignatureError> for Refusal {
    fn from(e: SignatureError) -> Self {
        Self::Signature(e)
    }
}

fn verify(
    conn: &mut DbConn,
    req: &SignedParts<'_>,
    now: NaiveDateTime,
) -> QueryResult<Result<AuthenticatedNode, Refusal>> {
    let timestamp: i64 = match req.timestamp.parse() {
        Ok(t) => t,
        Err(_) => return Ok(Err(SignatureError::Malformed(federation::HEADER_TIMESTAMP).into())),
    };
    if !federation::nonce_is_well_formed(req.nonce) {
        return Ok(Err(SignatureError::Malformed(federation::HEADER_NONCE).into()));
    }
    let node = nodes::table.find(req.key_id).select(NodeRecord::as_select()).first(conn).optional()?;
    let checked = node.ok_or(Refusal::from(SignatureError::UnknownKey)).and_then(|node| {
        let key = NodePublicKey::parse(&node.public_key).map_err(|_| SignatureError::UnknownKey)?;
        key.verify(req.method, req.path, req.body, timestamp, req.nonce, req.signature)?;
        federation::check_freshness(timestamp, now.and_utc().timestamp())?;
        if node.revoked_at.is_some() {
            return Err(Refusal::Revoked);
        }
        let prefecture = Prefecture::from_code(&node.prefecture).ok_or(SignatureError::UnknownKey)?;
        Ok(AuthenticatedNode { key_id: node.key_id, prefecture })
    });
    let node = match checked {
        Ok(node) => node,
        Err(e) => return Ok(Err(e)),
    };
    // Nonces older than the freshness window can never be replayed successfully: forget them.
    let horizon = now - chrono::Duration::seconds(2 * federation::MAX_CLOCK_SKEW_SECS);
    let recorded = conn.transaction(|conn| {
        diesel::delete(federation_nonces::table.filter(federation_nonces::seen_at.lt(horizon)))
            .execute(conn)?;
        diesel::insert_into(federation_nonces::table)
            .values((
                federation_nonces::key_id.eq(&node.key_id),
                federation_nonces::nonce.eq(req.nonce),
                federation_nonces::seen_at.eq(now),
            ))
            .execute(conn)
    });
    match recorded {
        Ok(_) => Ok(Ok(node)),
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            Ok(Err(SignatureError::Replayed.into()))
        }
        Err(e) => Err(e),
    }
}
