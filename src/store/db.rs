//! The two backends behind one [`Store`](super::Store): which pool, which connection, which
//! dialect, and the timestamp type both share.
//!
//! Owns: the pool enum, the transaction type callers hold ([`Tx`]), the borrowed handles the
//! store's functions run statements on ([`Db`]), the [`on_db!`] macro that writes a body once
//! and compiles it for each backend, and [`Ts`], a UTC timestamp that is sortable text on
//! SQLite and `TIMESTAMPTZ` on PostgreSQL. Also [`no_nul`], which every text from outside
//! goes through before it is bound, so both backends store the same thing.
//!
//! A statement both dialects read the same way is one `&'static str`; one they read
//! differently is a pair, chosen inside the body by the [`Dialect`] the macro names.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteTypeInfo, SqliteValueRef};
use sqlx::{
    Database, Decode, Encode, PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool,
    Transaction, Type,
};

use super::StoreError;

/// One value per backend: a pool, a borrowed connection, a held connection.
#[derive(Debug)]
pub enum Db<S, P> {
    /// The SQLite file.
    Sqlite(S),
    /// The PostgreSQL server.
    Postgres(P),
}

/// The store's connection pool.
pub type Pool = Db<SqlitePool, PgPool>;
/// A borrowed pool, to run one statement on.
pub type Pools<'a> = Db<&'a SqlitePool, &'a PgPool>;
/// A borrowed connection (a transaction's, or one a caller holds).
pub type Conn<'a> = Db<&'a mut SqliteConnection, &'a mut PgConnection>;
/// A connection taken from the pool and held.
pub type Held = Db<PoolConnection<Sqlite>, PoolConnection<Postgres>>;

impl Clone for Pool {
    fn clone(&self) -> Self {
        match self {
            Db::Sqlite(p) => Db::Sqlite(p.clone()),
            Db::Postgres(p) => Db::Postgres(p.clone()),
        }
    }
}

impl Pool {
    /// The pool, borrowed.
    pub fn get(&self) -> Pools<'_> {
        match self {
            Db::Sqlite(p) => Db::Sqlite(p),
            Db::Postgres(p) => Db::Postgres(p),
        }
    }

    /// Takes a connection and holds it.
    pub async fn acquire(&self) -> Result<Held, StoreError> {
        Ok(match self {
            Db::Sqlite(p) => Db::Sqlite(p.acquire().await?),
            Db::Postgres(p) => Db::Postgres(p.acquire().await?),
        })
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }
}

impl Held {
    /// The held connection, borrowed.
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Db::Sqlite(c) => Db::Sqlite(&mut **c),
            Db::Postgres(c) => Db::Postgres(&mut **c),
        }
    }
}

/// Which SQL dialect a statement is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3.45 or later (bundled).
    Sqlite,
    /// PostgreSQL 13 or later.
    Postgres,
}

impl Dialect {
    /// The statement for this dialect.
    pub fn pick(self, sqlite: &'static str, postgres: &'static str) -> &'static str {
        match self {
            Dialect::Sqlite => sqlite,
            Dialect::Postgres => postgres,
        }
    }
}

/// Runs `$body` once per backend, with `$c` bound to that backend's handle (a pool, or a
/// connection) and, in the second form, `$d` to its [`Dialect`]. The body is written once and
/// type-checked for each backend, so it uses only what both drivers offer.
macro_rules! on_db {
    ($target:expr, |$c:ident| $body:expr) => {
        match $target {
            $crate::store::db::Db::Sqlite($c) => $body,
            $crate::store::db::Db::Postgres($c) => $body,
        }
    };
    ($target:expr, |$c:ident, $d:ident| $body:expr) => {
        match $target {
            $crate::store::db::Db::Sqlite($c) => {
                let $d = $crate::store::db::Dialect::Sqlite;
                $body
            }
            $crate::store::db::Db::Postgres($c) => {
                let $d = $crate::store::db::Dialect::Postgres;
                $body
            }
        }
    };
}
pub(crate) use on_db;

/// A transaction on the store, on either backend. Dropping it without [`Tx::commit`] rolls
/// it back.
#[derive(Debug)]
pub struct Tx(Db<Transaction<'static, Sqlite>, Transaction<'static, Postgres>>);

impl Tx {
    /// Begins a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so concurrent writers queue on the busy timeout instead of failing
    /// mid-transaction. On PostgreSQL it is `READ COMMITTED`: every statement that reads
    /// before it writes says how it stays correct beside another writer.
    pub(crate) async fn begin(pool: &Pool) -> Result<Tx, StoreError> {
        Ok(Tx(match pool {
            Db::Sqlite(p) => Db::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => Db::Postgres(p.begin().await?),
        }))
    }

    /// The transaction's connection, to run statements in it.
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match &mut self.0 {
            Db::Sqlite(t) => Db::Sqlite(&mut **t),
            Db::Postgres(t) => Db::Postgres(&mut **t),
        }
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self.0 {
            Db::Sqlite(t) => t.commit().await?,
            Db::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<(), StoreError> {
        match self.0 {
            Db::Sqlite(t) => t.rollback().await?,
            Db::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }
}

/// A UTC timestamp as a column holds it: on SQLite fixed-width text
/// (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, so text order is time order), on PostgreSQL `TIMESTAMPTZ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts(pub DateTime<Utc>);

impl Ts {
    /// The stored text form (SQLite's, and what JSON rows carry on both backends).
    pub fn text(self) -> String {
        ts(self.0)
    }
}

impl From<DateTime<Utc>> for Ts {
    fn from(at: DateTime<Utc>) -> Ts {
        Ts(at)
    }
}

impl From<Ts> for DateTime<Utc> {
    fn from(at: Ts) -> DateTime<Utc> {
        at.0
    }
}

/// Formats a timestamp the way SQLite's columns store it: fixed width, so text order is time
/// order.
pub fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Type<Sqlite> for Ts {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for Ts {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.text(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Ts {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Sqlite>>::decode(value)?;
        let at = DateTime::parse_from_rfc3339(text)
            .map_err(|err| format!("timestamp `{text}`: {err}"))?;
        Ok(Ts(at.with_timezone(&Utc)))
    }
}

impl Type<Postgres> for Ts {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <DateTime<Utc> as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for Ts {
    fn encode_by_ref(
        &self,
        buf: &mut <Postgres as Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Ts {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Ts(<DateTime<Utc> as Decode<Postgres>>::decode(value)?))
    }
}

/// `text` without its NUL characters, which PostgreSQL's `TEXT` cannot hold and its `jsonb`
/// refuses (as `\u0000`). Text from outside (release notes, titles, URLs, tag spellings, an
/// upstream's or a relay's answer) goes through this before it is bound, on both backends, so
/// a stray NUL upstream neither fails the statement nor makes the backends differ. Borrows
/// when there is none, which is nearly always.
pub fn no_nul(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', ""))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_nul_removes_every_nul_and_borrows_when_there_is_none() {
        assert!(matches!(no_nul("plain text"), Cow::Borrowed("plain text")));
        assert!(matches!(no_nul(""), Cow::Borrowed("")));
        let stripped = no_nul("\0a\0\0b\u{0}c\0");
        assert!(matches!(stripped, Cow::Owned(_)));
        assert_eq!(stripped, "abc");
        assert_eq!(no_nul("\0"), "");
        assert_eq!(no_nul("caf\u{e9}\0 \u{1F600}"), "caf\u{e9} \u{1F600}");
    }
}
