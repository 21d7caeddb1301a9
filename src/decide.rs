//! Who gets told what: given the releases a run found new, the confirmed subscriptions and
//! `now`, one delivery per subscriber and release: an instant message, or an item in the
//! subscriber's current digest period. Digest periods are calendar periods in UTC (a day, an
//! ISO week) and fall due when they end; an empty period produces nothing.
//!
//! One message per subscriber per project per run: [`instant_messages`] folds the instant
//! deliveries of one run into one message per subscriber and project, newest release first,
//! and [`core_alert`] picks the one core message an operator gets from one alerts pass.
//!
//! Owns: those rules. Pure: no I/O, no clock.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveTime, Utc};
use pep440_rs::Version;

use crate::config::channels::Channel;
use crate::model::{DigestMode, ReleaseClass, Subscriber, SubscriberStatus};
use crate::version;

/// A release a run found new.
#[derive(Debug, Clone)]
pub struct NewRelease {
    /// `releases.id`.
    pub release_id: i64,
    pub project: String,
    /// Canonical version key.
    pub key: String,
    /// Version (orders a run's releases, newest first).
    pub version: Version,
    pub class: ReleaseClass,
}

/// What one subscriber gets for one release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A message of its own, now.
    Instant {
        subscriber_id: i64,
        release_id: i64,
        /// The outbox subject key.
        subject_key: String,
    },
    /// An item of a digest that falls due at `due_at`.
    Digest {
        subscriber_id: i64,
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

/// One instant message: every release of one project that one run found for one subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstantMessage {
    pub subscriber_id: i64,
    pub project: String,
    /// The releases, newest first.
    pub release_ids: Vec<i64>,
    /// The outbox subject key: the newest release's [`release_subject`].
    pub subject_key: String,
}

/// Folds the instant deliveries of one run into one message per subscriber and project, its
/// releases newest first; a release found alone keeps the message it always had.
///
/// The subject key of a message is its newest release's, the key that release's own message
/// would have had. Each release is announced in exactly one run, in the transaction that
/// queues its messages: a crash leaves either the releases and their messages or neither, and
/// the unique (recipient, subject key) refuses a second message for the same newest release.
pub fn instant_messages(releases: &[NewRelease], deliveries: &[Delivery]) -> Vec<InstantMessage> {
    let mut groups: BTreeMap<(i64, &str), Vec<&NewRelease>> = BTreeMap::new();
    for delivery in deliveries {
        let Delivery::Instant {
            subscriber_id,
            release_id,
            ..
        } = delivery
        else {
            continue;
        };
        if let Some(release) = releases.iter().find(|r| r.release_id == *release_id) {
            groups
                .entry((*subscriber_id, release.project.as_str()))
                .or_default()
                .push(release);
        }
    }
    groups
        .into_iter()
        .filter_map(|((subscriber_id, project), mut found)| {
            found.sort_by(|a, b| b.version.cmp(&a.version));
            let newest = found.first()?;
            Some(InstantMessage {
                subscriber_id,
                project: project.to_string(),
                subject_key: release_subject(project, &newest.key),
                release_ids: found.iter().map(|r| r.release_id).collect(),
            })
        })
        .collect()
}

/// One channel notification: every release of one project that one run found and the
/// channel's filters (projects, classes) let through, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelNotice {
    /// The channel's name.
    pub channel: String,
    pub project: String,
    /// The releases, newest first.
    pub release_ids: Vec<i64>,
    /// The outbox subject key: the newest release's [`release_subject`], as for mail.
    pub subject_key: String,
}

/// Decides the channel notifications for `releases` (one project's, from one run): one per
/// channel whose filters let at least one release through.
pub fn channel_notices(releases: &[NewRelease], channels: &[Channel]) -> Vec<ChannelNotice> {
    let mut out = Vec::new();
    for channel in channels {
        let mut groups: BTreeMap<&str, Vec<&NewRelease>> = BTreeMap::new();
        for release in releases {
            if channel.wants_release(&release.project, release.class) {
                groups.entry(&release.project).or_default().push(release);
            }
        }
        for (project, mut found) in groups {
            found.sort_by(|a, b| b.version.cmp(&a.version));
            let Some(newest) = found.first() else {
                continue;
            };
            out.push(ChannelNotice {
                channel: channel.name.clone(),
                project: project.to_string(),
                subject_key: release_subject(project, &newest.key),
                release_ids: found.iter().map(|r| r.release_id).collect(),
            });
        }
    }
    out
}

/// A core release an operator-alerts pass handles.
#[derive(Debug, Clone)]
pub struct PassRelease {
    /// `releases.id`.
    pub release_id: i64,
    pub version: Version,
    /// Class (pre-releases never alert).
    pub class: ReleaseClass,
}

/// The one message about a core project an operator gets from one alerts pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreAlert {
    /// The compatibility report for the newest feature release the pass found.
    Report {
        /// That feature release.
        release_id: i64,
        /// The newest bugfix release of its line the pass found too: the one to install.
        upgrade_to: Option<i64>,
    },
    /// Upgrade advice for the newest bugfix release the pass found newer than the installed
    /// version.
    Bugfix {
        /// That bugfix release.
        release_id: i64,
    },
}

/// Picks the one core message for an operator from the core releases of one pass: the
/// compatibility report for the newest feature release when there is one and the operator
/// uses the core (it carries the advice for the newest state, so no bugfix advice comes with
/// it); otherwise the advice for the newest bugfix release newer than the installed version;
/// otherwise nothing. Releases that a newer one of the same pass supersedes get no message.
pub fn core_alert(
    releases: &[PassRelease],
    installed: Option<&Version>,
    uses_core: bool,
) -> Option<CoreAlert> {
    let newest = |keep: &dyn Fn(&PassRelease) -> bool| {
        releases
            .iter()
            .filter(|r| keep(r))
            .max_by(|a, b| a.version.cmp(&b.version))
    };
    if uses_core && let Some(feature) = newest(&|r| r.class == ReleaseClass::Feature) {
        let line = version::line(&feature.version);
        let upgrade_to = newest(&|r| {
            r.class == ReleaseClass::Bugfix
                && r.version > feature.version
                && version::line(&r.version) == line
        });
        return Some(CoreAlert::Report {
            release_id: feature.release_id,
            upgrade_to: upgrade_to.map(|r| r.release_id),
        });
    }
    let installed = installed?;
    newest(&|r| r.class == ReleaseClass::Bugfix && r.version > *installed).map(|r| {
        CoreAlert::Bugfix {
            release_id: r.release_id,
        }
    })
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
            version: version::parse(&format!("1.{id}")).expect("version"),
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

    fn versioned(id: i64, version: &str, class: ReleaseClass) -> NewRelease {
        NewRelease {
            release_id: id,
            project: "pretalx".into(),
            key: version::canonical_key(&version::parse(version).expect("version")),
            version: version::parse(version).expect("version"),
            class,
        }
    }

    #[test]
    fn one_instant_message_per_subscriber_and_project_newest_first() {
        use ReleaseClass::*;
        // The order merge plans them in: ascending.
        let mut found = vec![
            versioned(45, "2026.1.2", Bugfix),
            versioned(46, "2026.2.0", Feature),
            versioned(47, "2026.2.1", Bugfix),
        ];
        found.push(NewRelease {
            project: "pretalx-pages".into(),
            ..versioned(50, "1.10.0", Feature)
        });
        let subs = [
            sub(
                1,
                DigestMode::Instant,
                &[Feature, Bugfix],
                &["pretalx", "pretalx-pages"],
                true,
            ),
            sub(2, DigestMode::Instant, &[Feature], &["pretalx"], true),
            sub(3, DigestMode::Daily, &[Feature, Bugfix], &["pretalx"], true),
        ];
        let deliveries = decide(&found, &subs, at("2026-07-09T06:00:00Z"));
        assert_eq!(
            instant_messages(&found, &deliveries),
            [
                InstantMessage {
                    subscriber_id: 1,
                    project: "pretalx".into(),
                    release_ids: vec![47, 46, 45],
                    subject_key: "release:pretalx:2026.2.1".into(),
                },
                InstantMessage {
                    subscriber_id: 1,
                    project: "pretalx-pages".into(),
                    release_ids: vec![50],
                    subject_key: "release:pretalx-pages:1.10".into(),
                },
                // Only one release is for this subscriber: its message as ever.
                InstantMessage {
                    subscriber_id: 2,
                    project: "pretalx".into(),
                    release_ids: vec![46],
                    subject_key: release_subject("pretalx", "2026.2"),
                },
            ]
        );
        let digest_items = deliveries
            .iter()
            .filter(|d| {
                matches!(
                    d,
                    Delivery::Digest {
                        subscriber_id: 3,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(digest_items, 3, "digests still list every release");
        assert!(instant_messages(&found, &[]).is_empty());
    }

    fn pass(id: i64, version: &str, class: ReleaseClass) -> PassRelease {
        PassRelease {
            release_id: id,
            version: version::parse(version).expect("version"),
            class,
        }
    }

    #[test]
    fn one_core_alert_per_pass_for_the_newest_state() {
        use ReleaseClass::*;
        let v = |s: &str| version::parse(s).expect("version");
        let burst = [
            pass(45, "2026.1.2", Bugfix),
            pass(46, "2026.2.0", Feature),
            pass(47, "2026.2.1", Bugfix),
        ];
        let report = Some(CoreAlert::Report {
            release_id: 46,
            upgrade_to: Some(47),
        });
        assert_eq!(core_alert(&burst, Some(&v("2026.1.1")), true), report);
        // Plugins only: still the report, never a stale bugfix advice.
        assert_eq!(core_alert(&burst, None, true), report);
        assert_eq!(core_alert(&burst, None, false), None);
        // A feature release alone, as ever.
        assert_eq!(
            core_alert(&burst[1..2], Some(&v("2026.1.2")), true),
            Some(CoreAlert::Report {
                release_id: 46,
                upgrade_to: None
            })
        );
        // A bugfix release of an older line does not become the one to install.
        assert_eq!(
            core_alert(
                &[pass(46, "2026.2.0", Feature), pass(48, "2026.1.3", Bugfix)],
                None,
                true
            ),
            Some(CoreAlert::Report {
                release_id: 46,
                upgrade_to: None
            })
        );
        // Bugfix releases only: one advice, for the newest.
        let fixes = [
            pass(40, "2025.2.1", Bugfix),
            pass(41, "2025.2.2", Bugfix),
            pass(39, "2025.1.9", Bugfix),
        ];
        assert_eq!(
            core_alert(&fixes, Some(&v("2025.2.0")), true),
            Some(CoreAlert::Bugfix { release_id: 41 })
        );
        assert_eq!(
            core_alert(&fixes[..1], Some(&v("2025.2.0")), true),
            Some(CoreAlert::Bugfix { release_id: 40 })
        );
        assert_eq!(core_alert(&fixes, Some(&v("2025.2.2")), true), None);
        assert_eq!(core_alert(&fixes, None, true), None);
        assert_eq!(
            core_alert(
                &[pass(60, "2026.3.0rc1", Prerelease)],
                Some(&v("2026.2.1")),
                true
            ),
            None
        );
    }
}
