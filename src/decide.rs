//! Who gets told what: given the releases a run found new, the confirmed subscriptions and
//! `now`, one delivery per subscriber and release: an instant message, or an item in the
//! subscriber's current digest period. Digest periods are calendar periods in UTC (a day, an
//! ISO week) and fall due when they end; an empty period produces nothing.
//!
//! Owns: those rules. Pure: no I/O, no clock.

use chrono::{DateTime, Datelike, Duration, NaiveTime, Utc};

use crate::model::{DigestMode, ReleaseClass, Subscriber, SubscriberStatus};

/// A release a run found new.
#[derive(Debug, Clone)]
pub struct NewRelease {
    /// Row id.
    pub release_id: i64,
    /// Project.
    pub project: String,
    /// Canonical version key.
    pub key: String,
    /// Class.
    pub class: ReleaseClass,
}

/// What one subscriber gets for one release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A message of its own, now.
    Instant {
        /// Subscriber.
        subscriber_id: i64,
        /// Release.
        release_id: i64,
        /// The outbox subject key.
        subject_key: String,
    },
    /// An item of a digest that falls due at `due_at`.
    Digest {
        /// Subscriber.
        subscriber_id: i64,
        /// Release.
        release_id: i64,
        /// Period key, e.g. `daily:2026-11-22`.
        period: String,
        /// When the period ends.
        due_at: DateTime<Utc>,
    },
}

/// The outbox subject key of a release announcement.
pub fn release_subject(project: &str, key: &str) -> String {
    format!("release:{project}:{key}")
}

/// The outbox subject key of a digest.
pub fn digest_subject(period: &str) -> String {
    format!("digest:{period}")
}

/// The digest period containing `now` and when it ends; `None` for instant delivery.
pub fn digest_period(mode: DigestMode, now: DateTime<Utc>) -> Option<(String, DateTime<Utc>)> {
    let day = now.date_naive();
    match mode {
        DigestMode::Instant => None,
        DigestMode::Daily => {
            let end = (day + Duration::days(1)).and_time(NaiveTime::MIN).and_utc();
            Some((format!("daily:{}", day.format("%Y-%m-%d")), end))
        }
        DigestMode::Weekly => {
            let week = day.iso_week();
            let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
            let end = (monday + Duration::days(7))
                .and_time(NaiveTime::MIN)
                .and_utc();
            Some((format!("weekly:{}-W{:02}", week.year(), week.week()), end))
        }
    }
}

/// Decides the deliveries for `releases`. Only confirmed subscribers following the project
/// and wanting the class get anything.
pub fn decide(
    releases: &[NewRelease],
    subscribers: &[Subscriber],
    now: DateTime<Utc>,
) -> Vec<Delivery> {
    let mut out = Vec::new();
    for release in releases {
        for sub in subscribers {
            if sub.status != SubscriberStatus::Confirmed
                || !sub.projects.contains(&release.project)
                || !sub.classes.contains(&release.class)
            {
                continue;
            }
            out.push(match digest_period(sub.digest, now) {
                None => Delivery::Instant {
                    subscriber_id: sub.id,
                    release_id: release.release_id,
                    subject_key: release_subject(&release.project, &release.key),
                },
                Some((period, due_at)) => Delivery::Digest {
                    subscriber_id: sub.id,
                    release_id: release.release_id,
                    period,
                    due_at,
                },
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EmailAddress;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("ts")
            .with_timezone(&Utc)
    }

    fn sub(
        id: i64,
        digest: DigestMode,
        classes: &[ReleaseClass],
        projects: &[&str],
        confirmed: bool,
    ) -> Subscriber {
        Subscriber {
            id,
            email: format!("s{id}@example.org")
                .parse::<EmailAddress>()
                .expect("email"),
            status: if confirmed {
                SubscriberStatus::Confirmed
            } else {
                SubscriberStatus::Pending
            },
            digest,
            classes: classes.to_vec(),
            projects: projects.iter().map(|p| p.to_string()).collect(),
            created_at: at("2026-01-01T00:00:00Z"),
            confirmed_at: None,
        }
    }

    fn release(id: i64, project: &str, class: ReleaseClass) -> NewRelease {
        NewRelease {
            release_id: id,
            project: project.into(),
            key: format!("1.{id}"),
            class,
        }
    }

    #[test]
    fn filters_by_project_class_and_status() {
        use ReleaseClass::*;
        let subs = [
            sub(
                1,
                DigestMode::Instant,
                &[Feature, Bugfix],
                &["pretalx"],
                true,
            ),
            sub(
                2,
                DigestMode::Instant,
                &[Feature, Bugfix, Prerelease],
                &["pretalx"],
                true,
            ),
            sub(
                3,
                DigestMode::Instant,
                &[Feature, Bugfix],
                &["pretalx-pages"],
                true,
            ),
            sub(
                4,
                DigestMode::Instant,
                &[Feature, Bugfix],
                &["pretalx"],
                false,
            ),
            sub(5, DigestMode::Instant, &[Feature], &["pretalx"], true),
        ];
        let now = at("2026-11-22T06:00:00Z");
        let got = decide(
            &[
                release(10, "pretalx", Bugfix),
                release(11, "pretalx", Prerelease),
            ],
            &subs,
            now,
        );
        let pairs: Vec<(i64, i64)> = got
            .iter()
            .map(|d| match d {
                Delivery::Instant {
                    subscriber_id,
                    release_id,
                    ..
                } => (*subscriber_id, *release_id),
                Delivery::Digest { .. } => panic!("no digests here"),
            })
            .collect();
        assert_eq!(pairs, [(1, 10), (2, 10), (2, 11)]);
    }

    #[test]
    fn digests_collect_into_calendar_periods() {
        let now = at("2026-11-22T06:00:00Z"); // a Sunday
        assert_eq!(
            digest_period(DigestMode::Daily, now),
            Some(("daily:2026-11-22".to_string(), at("2026-11-23T00:00:00Z")))
        );
        assert_eq!(
            digest_period(DigestMode::Weekly, now),
            Some(("weekly:2026-W47".to_string(), at("2026-11-23T00:00:00Z")))
        );
        assert_eq!(
            digest_period(DigestMode::Weekly, at("2026-11-23T00:00:00Z")),
            Some(("weekly:2026-W48".to_string(), at("2026-11-30T00:00:00Z")))
        );
        assert_eq!(digest_period(DigestMode::Instant, now), None);
        let subs = [sub(
            1,
            DigestMode::Daily,
            &[ReleaseClass::Bugfix],
            &["pretalx"],
            true,
        )];
        let got = decide(&[release(10, "pretalx", ReleaseClass::Bugfix)], &subs, now);
        assert_eq!(
            got,
            [Delivery::Digest {
                subscriber_id: 1,
                release_id: 10,
                period: "daily:2026-11-22".into(),
                due_at: at("2026-11-23T00:00:00Z"),
            }]
        );
        assert!(
            decide(&[], &subs, now).is_empty(),
            "no release, no digest item"
        );
    }
}
