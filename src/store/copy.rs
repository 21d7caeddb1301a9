//! `herald copy-db`: moves a SQLite database into an empty PostgreSQL database, every table,
//! and checks the counts.
//!
//! Owns: the list of tables copied and their order, reading them in one read transaction on
//! the source (one moment of the database, while others may keep writing) and writing them in
//! one transaction on the target (a failed copy leaves the target as empty as it was).
//! Rows travel as JSON objects: SQLite's `json_object` of every column, PostgreSQL's
//! `jsonb_populate_recordset`, whose input functions read SQLite's timestamp text as
//! `TIMESTAMPTZ` and its 0/1 as `BOOLEAN`. Text a SQLite database took with a NUL character
//! in it (before the store removed them, see [`no_nul`]) arrives without it: PostgreSQL's
//! text cannot hold one.
//!
//! The statements are built from this module's fixed table list and the column names SQLite
//! reports for those tables (never from input), which is why they are formatted here rather
//! than written out as constants.

use std::borrow::Cow;

use sqlx::{AssertSqlSafe, PgConnection, SqliteConnection};

use super::db::{Conn, Db, no_nul, on_db};
use super::{Store, StoreError};

/// Every table with data, parents before children (foreign keys), and whether its `id` is an
/// identity column whose sequence must continue after the copied ids. Left out on purpose:
/// `change_marker` (the target keeps its own), `run_lease` (who runs a check now: nobody
/// during a copy) and `_sqlx_migrations` (the target migrated itself).
pub const TABLES: &[(&str, bool)] = &[
    ("releases", true),
    ("evidence", true),
    ("http_validators", false),
    ("source_state", false),
    ("skipped_entries", false),
    ("runs", true),
    ("subscribers", true),
    ("subscriber_projects", false),
    ("outbox", true),
    ("digest_items", false),
    ("inventory", false),
    ("release_metadata", false),
    ("compat_state", false),
    ("status_look", false),
    ("channel_state", false),
    ("channel_compat_state", false),
];

/// Tables that exist in the schema but are not copied (see [`TABLES`]).
#[cfg_attr(not(test), allow(dead_code))]
pub const NOT_COPIED: &[&str] = &["change_marker", "run_lease", "_sqlx_migrations"];

/// Rows per statement.
const CHUNK: i64 = 1000;

/// What was copied: each table with its row count (equal on both sides).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CopyReport {
    /// `(table, rows)`, in copy order.
    pub tables: Vec<(String, i64)>,
}

impl Store {
    /// Copies everything in this (SQLite) store into `target` (PostgreSQL, migrated and
    /// empty), then compares every table's row count on both sides.
    pub async fn copy_to(&self, target: &Store) -> Result<CopyReport, StoreError> {
        let (Db::Sqlite(source), Db::Postgres(dest)) = (&self.pool, &target.pool) else {
            return Err(StoreError::Url {
                url: target.describe(),
                reason: "copy-db copies a SQLite database (HERALD_DATABASE_URL) into a \
                         PostgreSQL one (--to postgres://...)"
                    .into(),
            });
        };
        let mut read = source.acquire().await?;
        let mut write = dest.begin().await?;
        for (table, _) in TABLES {
            if count(Db::Postgres(&mut *write), table).await? > 0 {
                return Err(StoreError::Copy {
                    target: target.describe(),
                    reason: format!(
                        "the target is not empty (table `{table}` has rows); copy-db only \
                         fills a new database"
                    ),
                });
            }
        }
        // A deferred read transaction: every read below sees the same moment.
        sqlx::raw_sql("BEGIN").execute(&mut *read).await?;
        let copied = copy_tables(&mut read, &mut write).await;
        let verified = match copied {
            Ok(()) => verify(&mut read, &mut write, &target.describe()).await,
            Err(err) => Err(err),
        };
        // Ending the read transaction cannot lose anything: it wrote nothing.
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *read).await;
        let report = verified?;
        write.commit().await?;
        Ok(report)
    }
}

async fn copy_tables(
    read: &mut SqliteConnection,
    write: &mut PgConnection,
) -> Result<(), StoreError> {
    for (table, identity) in TABLES {
        let columns = columns_of(read, table).await?;
        let pairs: Vec<String> = columns.iter().map(|c| format!("'{c}', {c}")).collect();
        let select = format!(
            "SELECT rowid, json_object({}) FROM {table} WHERE rowid > $1 ORDER BY rowid LIMIT $2",
            pairs.join(", ")
        );
        let list = columns.join(", ");
        let insert = format!(
            "INSERT INTO {table} ({list}) SELECT {list} \
             FROM jsonb_populate_recordset(NULL::{table}, $1::jsonb)"
        );
        let mut after = i64::MIN;
        loop {
            let rows: Vec<(i64, String)> = sqlx::query_as(AssertSqlSafe(select.clone()))
                .bind(after)
                .bind(CHUNK)
                .fetch_all(&mut *read)
                .await?;
            let Some((last, _)) = rows.last() else {
                break;
            };
            after = *last;
            let objects: Vec<Cow<'_, str>> = rows
                .iter()
                .map(|(_, json)| without_nul(json))
                .collect::<Result<_, _>>()?;
            let array = format!("[{}]", objects.join(","));
            sqlx::query(AssertSqlSafe(insert.clone()))
                .bind(array)
                .execute(&mut *write)
                .await?;
        }
        if *identity {
            // New rows continue after the copied ids.
            let restart = format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                 COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
            );
            sqlx::query(AssertSqlSafe(restart))
                .execute(&mut *write)
                .await?;
        }
    }
    Ok(())
}

/// A row's JSON object with every NUL character removed from its strings (`jsonb` refuses
/// `\u0000`); the text itself when it has none, which is nearly always.
fn without_nul(json: &str) -> Result<Cow<'_, str>, StoreError> {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(text) => {
                if let Cow::Owned(clean) = no_nul(text) {
                    *text = clean;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            serde_json::Value::Object(fields) => fields.values_mut().for_each(strip),
            _ => {}
        }
    }
    if !json.contains("\\u0000") {
        return Ok(Cow::Borrowed(json));
    }
    let corrupt = |err: serde_json::Error| StoreError::Corrupt {
        column: "(row to copy)",
        detail: err.to_string(),
    };
    let mut value: serde_json::Value = serde_json::from_str(json).map_err(corrupt)?;
    strip(&mut value);
    Ok(Cow::Owned(serde_json::to_string(&value).map_err(corrupt)?))
}

/// The column names of a SQLite table, in schema order.
async fn columns_of(read: &mut SqliteConnection, table: &str) -> Result<Vec<String>, StoreError> {
    const SQL: &str = "SELECT name FROM pragma_table_info($1) ORDER BY cid";
    let columns: Vec<String> = sqlx::query_scalar(SQL)
        .bind(table)
        .fetch_all(&mut *read)
        .await?;
    if columns.is_empty() {
        return Err(StoreError::Corrupt {
            column: "(schema)",
            detail: format!("the source database has no table `{table}`"),
        });
    }
    Ok(columns)
}

async fn count(conn: Conn<'_>, table: &str) -> Result<i64, StoreError> {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    Ok(on_db!(conn, |c| sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_one(&mut *c)
        .await?))
}

async fn verify(
    read: &mut SqliteConnection,
    write: &mut PgConnection,
    target: &str,
) -> Result<CopyReport, StoreError> {
    let mut report = CopyReport::default();
    for (table, _) in TABLES {
        let source = count(Db::Sqlite(&mut *read), table).await?;
        let copied = count(Db::Postgres(&mut *write), table).await?;
        if source != copied {
            return Err(StoreError::Copy {
                target: target.to_string(),
                reason: format!(
                    "table `{table}`: {source} rows in the source, {copied} copied; nothing \
                     was committed"
                ),
            });
        }
        report.tables.push(((*table).to_string(), copied));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_to_copy_lose_their_nul_characters_and_nothing_else() {
        let plain = r#"{"entry":"v1.0 \\u00e9","n":1}"#;
        assert!(matches!(without_nul(plain), Ok(Cow::Borrowed(_))));
        // An escaped backslash before `u0000` is six characters, kept.
        let six = r#"{"entry":"v1 \\\\u0000 here"}"#;
        assert_eq!(without_nul(six).expect("valid JSON"), six);
        let row = r#"{"entry":"a\u0000b","notes":null,"id":7,"raw":"\\u0000\u0000"}"#;
        let copied = without_nul(row).expect("valid JSON");
        let value: serde_json::Value = serde_json::from_str(&copied).expect("JSON");
        assert_eq!(
            value,
            serde_json::json!({"entry": "ab", "notes": null, "id": 7, "raw": "\\u0000"})
        );
    }

    #[tokio::test]
    async fn every_table_is_copied_or_left_out_on_purpose() {
        const SQL: &str = "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' ORDER BY name";
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("h.db").display());
        let store = Store::open(&url).await.expect("open");
        let Db::Sqlite(pool) = &store.pool else {
            panic!("a SQLite store")
        };
        let tables: Vec<String> = sqlx::query_scalar(SQL)
            .fetch_all(pool)
            .await
            .expect("tables");
        assert!(tables.len() > 10, "{tables:?}");
        for table in &tables {
            assert!(
                TABLES.iter().any(|(name, _)| name == table)
                    || NOT_COPIED.contains(&table.as_str()),
                "table `{table}` is neither copied by copy-db nor listed in NOT_COPIED"
            );
        }
        for (name, _) in TABLES {
            assert!(tables.iter().any(|t| t == name), "no table `{name}`");
        }
    }
}
