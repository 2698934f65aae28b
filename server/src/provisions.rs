//! 情報提供等記録 (DESIGN rule 5): every provision of a person's data between the national server
//! and a node, append-only, each entry hashing the previous one, so that any later edit or deletion
//! is found by `audit verify`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ncf_shared::Prefecture;
use ncf_shared::contract::ProvisionPurpose;
use ncf_shared::db::DbConn;
use sha2::{Digest, Sha256};

use crate::schema::{provisions, sequences};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = provisions)]
pub struct ProvisionEntry {
    pub seq: i64,
    pub recorded_at: NaiveDateTime,
    /// `national` or `node:NN`.
    pub source: String,
    pub recipient: String,
    pub prefecture: String,
    pub agency_code: String,
    /// Comma-separated names of what was provided.
    pub fields: String,
    pub purpose: String,
    pub prev_hash: String,
    pub hash: String,
}

impl ProvisionEntry {
    fn compute_hash(&self) -> String {
        let content = format!(
            "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.prev_hash,
            self.seq,
            self.recorded_at.format("%Y-%m-%dT%H:%M:%S%.6f"),
            self.source,
            self.recipient,
            self.prefecture,
            self.agency_code,
            self.fields,
            self.purpose
        );
        ncf_shared::encoding::hex(&Sha256::digest(content.as_bytes()))
    }
}

/// What was provided, by whom, to whom, about whom and why.
pub struct Provision<'a> {
    pub source: String,
    pub recipient: String,
    pub prefecture: Prefecture,
    pub agency_code: &'a str,
    pub fields: &'a [&'a str],
    pub purpose: ProvisionPurpose,
}

impl<'a> Provision<'a> {
    /// Data a node provided to the national server.
    pub fn from_node(
        node: Prefecture,
        agency_code: &'a str,
        fields: &'a [&'a str],
        purpose: ProvisionPurpose,
    ) -> Self {
        Self {
            source: format!("node:{node}"),
            recipient: "national".into(),
            prefecture: node,
            agency_code,
            fields,
            purpose,
        }
    }

    /// Data the national server provided to a node.
    pub fn to_node(
        node: Prefecture,
        agency_code: &'a str,
        fields: &'a [&'a str],
        purpose: ProvisionPurpose,
    ) -> Self {
        Self {
            source: "national".into(),
            recipient: format!("node:{node}"),
            prefecture: node,
            agency_code,
            fields,
            purpose,
        }
    }
}

const CHAIN_LOCKS: &str = "chain_locks";

/// How many transactions have taken the chain's lock, as the caller's snapshot sees it.
pub fn lock_count(conn: &mut DbConn) -> QueryResult<i64> {
    sequences::table.find(CHAIN_LOCKS).select(sequences::last_value).first(conn)
}

/// Appends entries within one transaction: takes the chain's lock once (the `sequences` row, so
/// concurrent writers append one after the other), keeps the tip's hash in memory, and writes the
/// entries in one statement at [`ChainWriter::finish`] — a push of 500 events costs one insert, not
/// 500 round trips.
#[must_use = "entries are written only by finish()"]
pub struct ChainWriter {
    next_seq: i64,
    prev_hash: String,
    pending: Vec<ProvisionEntry>,
    lock_count: i64,
}

impl ChainWriter {
    /// Locks the chain, then reads its tip. The lock is an update of the `chain_locks` row of
    /// `sequences`: on PostgreSQL it is a row lock held to the end of the transaction, and the tip
    /// read after it (READ COMMITTED: a fresh snapshot per statement) sees the previous writer's
    /// committed entry; on SQLite it takes the database's write lock. Outside a transaction the
    /// lock would end with the statement and two writers would take the same sequence number, so
    /// that is refused.
    ///
    /// The update counts: every transaction that changes what the national server derives takes
    /// this lock (pushes, identity links, proofing by post, imports through `routing::refresh`),
    /// so a count that
    /// moved by exactly one's own transactions since a read proves that nobody else changed
    /// anything meanwhile ([`ChainWriter::lock_count`]; rematch relies on it).
    pub fn begin(conn: &mut DbConn) -> QueryResult<Self> {
        if !ncf_shared::db::in_transaction(conn) {
            return Err(diesel::result::Error::NotInTransaction);
        }
        diesel::update(sequences::table.find(CHAIN_LOCKS))
            .set(sequences::last_value.eq(sequences::last_value + 1))
            .execute(conn)?;
        let lock_count = lock_count(conn)?;
        let last: i64 = sequences::table.find("provisions").select(sequences::last_value).first(conn)?;
        let prev_hash = if last == 0 {
            GENESIS.to_string()
        } else {
            provisions::table.find(last).select(provisions::hash).first(conn)?
        };
        Ok(Self { next_seq: last + 1, prev_hash, pending: Vec::new(), lock_count })
    }

    /// How many transactions have taken the chain's lock, this one included.
    pub fn lock_count(&self) -> i64 {
        self.lock_count
    }

    /// Adds an entry after the previous one; returns its sequence number.
    pub fn append(&mut self, p: &Provision<'_>) -> i64 {
        let mut entry = ProvisionEntry {
            seq: self.next_seq,
            recorded_at: ncf_shared::time::now_utc(),
            source: p.source.clone(),
            recipient: p.recipient.clone(),
            prefecture: p.prefecture.code(),
            agency_code: p.agency_code.to_string(),
            fields: p.fields.join(","),
            purpose: p.purpose.as_str().to_string(),
            prev_hash: std::mem::take(&mut self.prev_hash),
            hash: String::new(),
        };
        entry.hash = entry.compute_hash();
        self.prev_hash = entry.hash.clone();
        self.next_seq += 1;
        let seq = entry.seq;
        self.pending.push(entry);
        seq
    }

    /// Writes the appended entries and moves the chain's sequence past them.
    pub fn finish(self, conn: &mut DbConn) -> QueryResult<()> {
        let Some(last) = self.pending.last().map(|e| e.seq) else {
            return Ok(());
        };
        ncf_shared::insert_many!(&mut *conn, self.pending, |c, values| diesel::insert_into(
            provisions::table
        )
        .values(values)
        .execute(c));
        diesel::update(sequences::table.find("provisions"))
            .set(sequences::last_value.eq(last))
            .execute(conn)?;
        Ok(())
    }
}

/// Appends one entry; call inside the transaction that provides the data (refused outside one).
pub fn record(conn: &mut DbConn, p: &Provision<'_>) -> QueryResult<i64> {
    let mut chain = ChainWriter::begin(conn)?;
    let seq = chain.append(p);
    chain.finish(conn)?;
    Ok(seq)
}

/// The first entry that does not hold, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub seq: i64,
    pub reason: String,
}

/// Walks the whole chain; returns how many entries hold, or the first broken one.
pub fn verify(conn: &mut DbConn) -> QueryResult<Result<i64, Broken>> {
    const PAGE: i64 = 10_000;
    let mut expected_seq = 1;
    let mut prev_hash = GENESIS.to_string();
    loop {
        let page: Vec<ProvisionEntry> = provisions::table
            .filter(provisions::seq.ge(expected_seq))
            .order(provisions::seq)
            .limit(PAGE)
            .select(ProvisionEntry::as_select())
            .load(conn)?;
        if page.is_empty() {
            let last: i64 = sequences::table.find("provisions").select(sequences::last_value).first(conn)?;
            if last >= expected_seq {
                return Ok(Err(Broken { seq: expected_seq, reason: "entry missing (deleted)".into() }));
            }
            return Ok(Ok(expected_seq - 1));
        }
        for entry in page {
            if entry.seq != expected_seq {
                return Ok(Err(Broken { seq: expected_seq, reason: "entry missing (deleted)".into() }));
            }
            if entry.prev_hash != prev_hash {
                return Ok(Err(Broken {
                    seq: entry.seq,
                    reason: "does not link to the previous entry".into(),
                }));
            }
            if entry.compute_hash() != entry.hash {
                return Ok(Err(Broken {
                    seq: entry.seq,
                    reason: "content does not match its hash (altered)".into(),
                }));
            }
            prev_hash = entry.hash;
            expected_seq += 1;
        }
    }
}

/// A nurse's entries (for her page), oldest first: those about the asking link and, when that
/// link is proofed, about the links she was handed over from or to (confirmed hand-overs, in
/// either direction, followed through), so that her history survives a move. A registration she
/// keeps at another node for any other reason is not shown: the entries would tell this node
/// where else she is registered, and what those nodes were told (her residence among it).
pub fn for_nurse(
    conn: &mut DbConn,
    prefecture: Prefecture,
    agency_code: &str,
) -> QueryResult<Vec<ProvisionEntry>> {
    use crate::schema::{identity_links, transfers};
    let asking: Option<Option<NaiveDateTime>> = identity_links::table
        .find((prefecture.code(), agency_code))
        .select(identity_links::proofed_at)
        .first(conn)
        .optional()?;
    let Some(proofed_at) = asking else { return Ok(Vec::new()) };
    let mut links: Vec<(String, String)> = vec![(prefecture.code(), agency_code.to_string())];
    if proofed_at.is_some() {
        let mut i = 0;
        while i < links.len() {
            let (p, code) = links[i].clone();
            let joined: Vec<(String, String, String, Option<String>)> = transfers::table
                .filter(transfers::state.eq("confirmed"))
                .filter(
                    (transfers::from_prefecture.eq(&p).and(transfers::from_agency_code.eq(&code)))
                        .or(transfers::to_prefecture.eq(&p).and(transfers::to_agency_code.eq(&code))),
                )
                .select((
                    transfers::from_prefecture,
                    transfers::from_agency_code,
                    transfers::to_prefecture,
                    transfers::to_agency_code,
                ))
                .load(conn)?;
            for (fp, fc, tp, tc) in joined {
                for link in [(fp, fc), (tp, tc.unwrap_or_default())] {
                    if !link.1.is_empty() && !links.contains(&link) {
                        links.push(link);
                    }
                }
            }
            i += 1;
        }
    }
    // The codes holding nodes of training she asked to attend know her by: what went there is
    // hers to see too.
    if proofed_at.is_some() {
        use crate::schema::training_wishes;
        let homes = links.clone();
        for (p, code) in homes {
            let held: Vec<(String, Option<String>)> = training_wishes::table
                .filter(training_wishes::home_prefecture.eq(&p))
                .filter(training_wishes::home_agency_code.eq(&code))
                .filter(training_wishes::publisher_agency_code.is_not_null())
                .select((training_wishes::publishing_prefecture, training_wishes::publisher_agency_code))
                .load(conn)?;
            for (holder, code) in held {
                let link = (holder, code.unwrap_or_default());
                if !links.contains(&link) {
                    links.push(link);
                }
            }
        }
    }
    let mut entries = Vec::new();
    for (p, code) in links {
        entries.extend(
            provisions::table
                .filter(provisions::prefecture.eq(&p).and(provisions::agency_code.eq(&code)))
                .select(ProvisionEntry::as_select())
                .load::<ProvisionEntry>(conn)?,
        );
    }
    entries.sort_by_key(|e| e.seq);
    Ok(entries)
}
