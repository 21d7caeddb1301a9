//! The change marker behind the web service's conditional answers: a counter that triggers in
//! the schema bump on every write to releases, evidence and per-version metadata, with the
//! time of the last one. Owns reading it; does not own what a change means to a page (`http`).

use chrono::{DateTime, Utc};

use super::db::on_db;
use super::{Store, StoreError};

/// The last recorded change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Grows with every change; equal serials mean nothing changed in between.
    pub serial: i64,
    /// When the last change was written (the database's clock).
    pub at: DateTime<Utc>,
}

impl Store {
    /// The last recorded change to what the pages and feeds show.
    pub async fn last_change(&self) -> Result<Change, StoreError> {
        const SQL: &str = "SELECT serial, changed_at FROM change_marker WHERE id = 1";
        let (serial, seconds): (i64, f64) =
            on_db!(self.pool(), |c| sqlx::query_as(SQL).fetch_one(c).await?);
        let at =
            DateTime::from_timestamp_micros((seconds * 1e6).round() as i64).ok_or_else(|| {
                StoreError::Corrupt {
                    column: "change_marker.changed_at",
                    detail: format!("{seconds} is not a time"),
                }
            })?;
        Ok(Change { serial, at })
    }
}
