//! When `herald serve` runs checks: a cron expression (standard 5-field crontab syntax,
//! seconds optional) through croner, evaluated in a time zone (UTC unless `HERALD_TIMEZONE`
//! names another, daylight saving time included), with optional jitter, and one catch-up run
//! at start when the last scheduled time passed while the service was down.
//!
//! Owns: the arithmetic. Pure: `now` and the last run time are arguments; the daemon loop in
//! `cli::serve` does the waiting.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    text: String,
    jitter: Duration,
    zone: Tz,
}

/// A cron expression Herald refuses.
#[derive(Debug, thiserror::Error)]
#[error(
    "HERALD_SCHEDULE: `{expression}` is not a cron expression ({detail}); example: `0 6 * * *` (daily at 06:00 UTC)"
)]
pub struct ScheduleError {
    /// The expression.
    pub expression: String,
    /// croner's message.
    pub detail: String,
}

impl Schedule {
    /// Parses `expression`, read in UTC; `jitter` delays every run by up to that much (spread
    /// per instance).
    pub fn new(expression: &str, jitter: Duration) -> Result<Schedule, ScheduleError> {
        Schedule::in_zone(expression, jitter, Tz::UTC)
    }

    /// Parses `expression`, read as local time in `zone`.
    pub fn in_zone(
        expression: &str,
        jitter: Duration,
        zone: Tz,
    ) -> Result<Schedule, ScheduleError> {
        let cron = Cron::from_str(expression.trim()).map_err(|err| ScheduleError {
            expression: expression.to_string(),
            detail: err.to_string(),
        })?;
        Ok(Schedule {
            cron,
            text: expression.trim().to_string(),
            jitter,
            zone,
        })
    }

    /// The expression as configured.
    pub fn expression(&self) -> &str {
        &self.text
    }

    /// The first scheduled time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The last scheduled time at or before `now`.
    pub fn previous(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&self.zone);
        self.cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// When to run next: the next scheduled time after `now`, plus this instance's jitter
    /// (`seed` spreads instances sharing a schedule over the jitter window).
    pub fn next_run(&self, now: DateTime<Utc>, seed: u64) -> Option<DateTime<Utc>> {
        let base = self.next_after(now)?;
        let window = self.jitter.num_seconds().max(0) as u64;
        let offset = if window == 0 { 0 } else { seed % (window + 1) };
        Some(base + Duration::seconds(offset as i64))
    }

    /// Whether a run is owed at start: a scheduled time passed after the last run began (or no
    /// run ever happened) and before `now`.
    pub fn missed(&self, last_run: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        match (self.previous(now), last_run) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(prev), Some(last)) => last < prev,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("ts")
            .with_timezone(&Utc)
    }

    #[test]
    fn five_field_crontab_lines_and_posix_weekdays() {
        let daily = Schedule::new("0 6 * * *", Duration::zero()).expect("parses");
        assert_eq!(
            daily.next_after(at("2026-11-22T05:00:00Z")),
            Some(at("2026-11-22T06:00:00Z"))
        );
        assert_eq!(
            daily.next_after(at("2026-11-22T06:00:00Z")),
            Some(at("2026-11-23T06:00:00Z"))
        );
        // 1-5 is Monday to Friday: 2026-11-21 is a Saturday.
        let weekdays = Schedule::new("30 7 * * 1-5", Duration::zero()).expect("parses");
        assert_eq!(
            weekdays.next_after(at("2026-11-21T08:00:00Z")),
            Some(at("2026-11-23T07:30:00Z"))
        );
        assert!(Schedule::new("every morning", Duration::zero()).is_err());
        let err = Schedule::new("61 * * * *", Duration::zero())
            .expect_err("bad minute")
            .to_string();
        assert!(err.starts_with("HERALD_SCHEDULE: `61 * * * *`"), "{err}");
    }

    #[test]
    fn local_time_zones_follow_daylight_saving() {
        let berlin = Schedule::in_zone("0 6 * * *", Duration::zero(), chrono_tz::Europe::Berlin)
            .expect("parses");
        // Winter: UTC+1.
        assert_eq!(
            berlin.next_after(at("2026-11-22T00:00:00Z")),
            Some(at("2026-11-22T05:00:00Z"))
        );
        // Summer: UTC+2.
        assert_eq!(
            berlin.next_after(at("2026-07-01T00:00:00Z")),
            Some(at("2026-07-01T04:00:00Z"))
        );
    }

    #[test]
    fn a_missed_run_is_owed_once() {
        let daily = Schedule::new("0 6 * * *", Duration::zero()).expect("parses");
        let now = at("2026-11-22T09:00:00Z");
        assert!(daily.missed(None, now));
        assert!(
            daily.missed(Some(at("2026-11-21T06:00:05Z")), now),
            "today's 06:00 was missed"
        );
        assert!(
            !daily.missed(Some(at("2026-11-22T06:00:01Z")), now),
            "today's run happened"
        );
        assert!(!daily.missed(Some(at("2026-11-22T08:00:00Z")), now));
    }

    #[test]
    fn jitter_spreads_runs_within_its_window() {
        let s = Schedule::new("0 6 * * *", Duration::minutes(10)).expect("parses");
        let now = at("2026-11-22T05:00:00Z");
        for seed in [0u64, 1, 599, 600, 12_345] {
            let run = s.next_run(now, seed).expect("next");
            assert!(
                run >= at("2026-11-22T06:00:00Z") && run <= at("2026-11-22T06:10:00Z"),
                "{run}"
            );
        }
    }
}
