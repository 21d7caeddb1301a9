//! The operator-alerts plan of one pass: from what [`super::process`] loaded once (the
//! releases found new, the recorded releases, the inventories, the verdicts each operator
//! was last told, the per-version documents), which message each operator gets and which
//! verdicts are recorded. As `decide` is for release mail.
//!
//! Owns: per operator and core, the one core message of the pass (see
//! [`decide::core_alert`]) or the follow-ups of plugin releases that changed a verdict, and
//! which channel gets which kind. Pure: no I/O, no clock; `process` queues the [`Plan`].

use std::collections::{BTreeMap, HashMap};

use crate::compat::{self, Assessment};
use crate::config::channels::ChannelMessage;
use crate::decide::{self, CoreAlert, PassRelease};
use crate::model::{Project, ReleaseClass};
use crate::notify::outbox::{AlertKind, AlertReport, Trigger};
use crate::store::{InventoryMap, OperatorKey, ReleaseRow};
use crate::version;

use super::{Advice, AlertsReport, Catalog, Docs, Tracked, advice, docs_for};

/// Verdicts an operator was told, per (operator, core release).
pub(super) type CompatStates = BTreeMap<(OperatorKey, i64), BTreeMap<String, String>>;

/// Everything one pass reads, loaded before anything is decided.
pub(super) struct Input {
    /// Releases found new and not handled yet, by id (they are marked handled).
    pub pending: Vec<i64>,
    /// The feature and bugfix releases among them of tracked projects, in the order they
    /// were recorded.
    pub found: Vec<ReleaseRow>,
    /// Every recorded release of the tracked projects by id, withdrawn ones too.
    pub releases: HashMap<i64, ReleaseRow>,
    /// The installable, listed releases of the tracked projects.
    pub catalog: Catalog,
    /// What each operator was told.
    pub states: CompatStates,
    /// Subscribers with an inventory (by id), then channels with one (in file order).
    pub operators: Vec<Operator>,
}

/// Who an operator alert goes to: a subscriber by mail, or a channel of `HERALD_CHANNELS`
/// with an inventory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Target {
    /// A subscriber with an inventory, by mail.
    Mail {
        subscriber_id: i64,
        /// Their address.
        email: String,
    },
    /// A channel with an inventory, by name.
    Channel(String),
}

impl Target {
    /// The key of what this operator was told (`compat_state`, `channel_compat_state`).
    fn key(&self) -> OperatorKey {
        match self {
            Target::Mail { subscriber_id, .. } => OperatorKey::Subscriber(*subscriber_id),
            Target::Channel(name) => OperatorKey::Channel(name.clone()),
        }
    }
}

/// An operator: a subscriber or a channel with an inventory of tracked projects.
pub(super) struct Operator {
    pub to: Target,
    pub installed: InventoryMap,
}

/// A message to queue.
pub(super) struct Queued {
    pub to: Target,
    pub kind: AlertKind,
    pub subject_key: String,
    pub payload: AlertReport,
}

/// What a pass queues and records.
#[derive(Default)]
pub(super) struct Plan {
    /// The messages, in order.
    pub queue: Vec<Queued>,
    /// The verdicts told (or superseded), per operator and core release.
    pub new_states: Vec<(OperatorKey, i64, BTreeMap<String, String>)>,
    /// How many of each kind are queued.
    pub report: AlertsReport,
}

/// The core message an operator is owed, with the release rows it is about.
enum CoreMessage<'a> {
    /// The compatibility report for `release`; `newer` is the bugfix release of its line
    /// found with it, the one to install.
    Report {
        release: &'a ReleaseRow,
        newer: Option<&'a ReleaseRow>,
    },
    /// Advice for the newest bugfix release.
    Bugfix { release: &'a ReleaseRow },
}

/// What one operator is owed about one core, before any advice is built.
struct Agenda<'a> {
    op: &'a Operator,
    core: &'a Project,
    /// The core's releases of this pass, newest first.
    releases: Vec<&'a ReleaseRow>,
    message: Option<CoreMessage<'a>>,
    /// Plugin releases of this pass that the operator runs.
    triggers: Vec<&'a ReleaseRow>,
    /// With triggers: each core release the operator was told verdicts for, and those.
    told: Vec<(&'a ReleaseRow, &'a BTreeMap<String, String>)>,
}

fn key_of(release: &ReleaseRow) -> String {
    release
        .parsed
        .as_ref()
        .map(version::canonical_key)
        .unwrap_or_default()
}

fn verdict_map(plugins: &[Assessment]) -> BTreeMap<String, String> {
    plugins
        .iter()
        .map(|a| (a.plugin.clone(), a.verdict.as_str().to_string()))
        .collect()
}

fn fingerprint(verdicts: &BTreeMap<String, String>) -> String {
    use sha2::{Digest, Sha256};
    let text: String = verdicts.iter().map(|(k, v)| format!("{k}={v};")).collect();
    Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn uses_core(tracked: Tracked<'_>, installed: &InventoryMap, core: &str) -> bool {
    installed.contains_key(core)
        || installed
            .keys()
            .filter_map(|k| tracked.project(k))
            .any(|p| p.plugin_of.as_deref() == Some(core))
}

/// Whether the channel operator lists any alert kind for `core` (a channel that lists none
/// is not assessed for that core at all).
fn assessed(tracked: Tracked<'_>, op: &Operator, core: &Project) -> bool {
    let Target::Channel(name) = &op.to else {
        return true;
    };
    tracked.channel(name).is_some_and(|channel| {
        [
            ChannelMessage::CompatReport,
            ChannelMessage::CompatFollowup,
            ChannelMessage::BugfixAdvice,
        ]
        .iter()
        .any(|m| channel.wants_alert(*m, &core.name))
    })
}

/// Every (operator, core) pair the pass looks at, in order.
fn agendas<'a>(tracked: Tracked<'a>, input: &'a Input) -> Vec<Agenda<'a>> {
    let cores: Vec<&Project> = tracked.cores().collect();
    let mut out = Vec::new();
    for op in &input.operators {
        for core in &cores {
            if assessed(tracked, op, core) {
                out.push(agenda(tracked, input, op, core));
            }
        }
    }
    out
}

fn agenda<'a>(
    tracked: Tracked<'a>,
    input: &'a Input,
    op: &'a Operator,
    core: &'a Project,
) -> Agenda<'a> {
    let mut releases: Vec<&ReleaseRow> = input
        .found
        .iter()
        .filter(|r| r.project == core.name && r.parsed.is_some())
        .collect();
    releases.sort_by(|a, b| b.parsed.cmp(&a.parsed));
    let triggers: Vec<&ReleaseRow> = input
        .found
        .iter()
        .filter(|r| op.installed.contains_key(&r.project))
        .filter(|r| tracked.plugin_of(&r.project, &core.name).is_some())
        .collect();
    let key = op.to.key();
    let told = if triggers.is_empty() {
        Vec::new()
    } else {
        input
            .states
            .range((key.clone(), i64::MIN)..=(key, i64::MAX))
            .filter_map(|((_, id), before)| {
                let release = input.releases.get(id)?;
                (release.project == core.name).then_some((release, before))
            })
            .collect()
    };
    Agenda {
        message: core_message(tracked, op, core, &releases),
        op,
        core,
        releases,
        triggers,
        told,
    }
}

/// The one core message of the pass for `op` (see [`decide::core_alert`]).
fn core_message<'a>(
    tracked: Tracked<'_>,
    op: &Operator,
    core: &Project,
    releases: &[&'a ReleaseRow],
) -> Option<CoreMessage<'a>> {
    let pass: Vec<PassRelease> = releases
        .iter()
        .filter_map(|r| {
            Some(PassRelease {
                release_id: r.id,
                version: r.parsed.clone()?,
                class: r.class,
            })
        })
        .collect();
    let installed = op
        .installed
        .get(&core.name)
        .and_then(|v| version::parse(v).ok());
    let uses = uses_core(tracked, &op.installed, &core.name);
    let row = |id: i64| releases.iter().copied().find(|r| r.id == id);
    match decide::core_alert(&pass, installed.as_ref(), uses)? {
        CoreAlert::Report {
            release_id,
            upgrade_to,
        } => Some(CoreMessage::Report {
            release: row(release_id)?,
            newer: upgrade_to.and_then(row),
        }),
        CoreAlert::Bugfix { release_id } => Some(CoreMessage::Bugfix {
            release: row(release_id)?,
        }),
    }
}

/// The per-version documents the plan will read: fetch these before calling [`plan`].
pub(super) fn docs_wanted(tracked: Tracked<'_>, input: &Input) -> Vec<(Project, String)> {
    let mut wanted = Vec::new();
    for agenda in agendas(tracked, input) {
        let installed = &agenda.op.installed;
        match &agenda.message {
            Some(CoreMessage::Report { release, .. }) => wanted.extend(docs_for(
                tracked,
                &input.catalog,
                installed,
                Some(&key_of(release)),
            )),
            Some(CoreMessage::Bugfix { .. }) => {
                wanted.extend(docs_for(tracked, &input.catalog, installed, None));
            }
            None => {}
        }
        for (release, _) in &agenda.told {
            wanted.extend(docs_for(
                tracked,
                &input.catalog,
                installed,
                Some(&key_of(release)),
            ));
        }
    }
    wanted
}

/// The plan of one pass: per operator and core project, one message for the whole pass
/// (the compatibility report of the newest feature release, else advice for the newest
/// bugfix release), then the follow-ups of plugin releases that changed a verdict (recorded
/// only, when the core message carries the new verdicts already). A channel gets the kinds
/// it lists; the verdicts are recorded regardless.
pub(super) fn plan(tracked: Tracked<'_>, input: &Input, docs: &Docs) -> anyhow::Result<Plan> {
    let mut plan = Plan::default();
    for agenda in agendas(tracked, input) {
        let superseded = plan.core_message(tracked, input, docs, &agenda)?;
        plan.followups(tracked, input, docs, &agenda, superseded)?;
    }
    plan.queue.retain(|q| match &q.to {
        Target::Mail { .. } => true,
        Target::Channel(name) => tracked.channel(name).is_some_and(|c| {
            let core = q.subject_key.split(':').nth(1).unwrap_or_default();
            c.wants_alert(q.kind.channel_message(), core)
        }),
    });
    let count = |kind: AlertKind| plan.queue.iter().filter(|q| q.kind == kind).count();
    plan.report = AlertsReport {
        compat_reports: count(AlertKind::CompatReport),
        followups: count(AlertKind::CompatFollowup),
        bugfix_advice: count(AlertKind::BugfixAdvice),
    };
    Ok(plan)
}

impl Plan {
    /// Plans the agenda's core message; true when there is one.
    fn core_message(
        &mut self,
        tracked: Tracked<'_>,
        input: &Input,
        docs: &Docs,
        agenda: &Agenda<'_>,
    ) -> anyhow::Result<bool> {
        let installed = &agenda.op.installed;
        let (kind, prefix, release, mut payload) = match &agenda.message {
            Some(CoreMessage::Report { release, newer }) => {
                let key = key_of(release);
                let advice = advice(tracked, &input.catalog, docs, installed, vec![], Some(&key));
                let payload = self.report_payload(agenda, advice, release, *newer);
                (AlertKind::CompatReport, "compat", *release, payload)
            }
            Some(CoreMessage::Bugfix { release }) => {
                let advice = advice(tracked, &input.catalog, docs, installed, vec![], None);
                let payload = AlertReport::new(advice);
                (AlertKind::BugfixAdvice, "bugfix", *release, payload)
            }
            None => return Ok(false),
        };
        if agenda.releases.len() > 1 {
            payload.found = Some(agenda.releases.iter().map(|r| r.version.clone()).collect());
        }
        self.queue.push(Queued {
            to: agenda.op.to.clone(),
            kind,
            subject_key: format!("{prefix}:{}:{}", agenda.core.name, key_of(release)),
            payload,
        });
        Ok(true)
    }

    /// The compatibility report for the feature release `release`, recording the verdicts it
    /// tells. With `newer`, the newest bugfix release of its line found with it, the report
    /// says to install that one (`upgrade_to`), and so does its recommendation.
    fn report_payload(
        &mut self,
        agenda: &Agenda<'_>,
        mut advice: Advice,
        release: &ReleaseRow,
        newer: Option<&ReleaseRow>,
    ) -> AlertReport {
        self.new_states
            .push((agenda.op.to.key(), release.id, verdict_map(&advice.plugins)));
        if let Some(newer_v) = newer.and_then(|r| r.parsed.as_ref())
            && !advice.plugins.is_empty()
        {
            advice.recommendation =
                compat::recommendation(&agenda.core.name, newer_v, &advice.plugins);
        }
        let mut payload = AlertReport::new(advice);
        payload.upgrade_to = newer.map(|newer| newer.version.clone());
        payload
    }

    /// Re-assesses every core release the operator was told about and plans a follow-up for
    /// each whose verdicts changed, naming the plugin release behind the change. With
    /// `superseded`, the new verdicts are recorded and nothing more is sent.
    fn followups(
        &mut self,
        tracked: Tracked<'_>,
        input: &Input,
        docs: &Docs,
        agenda: &Agenda<'_>,
        superseded: bool,
    ) -> anyhow::Result<()> {
        let installed = &agenda.op.installed;
        for (core_release, before) in &agenda.told {
            let core_key = key_of(core_release);
            let advice = advice(
                tracked,
                &input.catalog,
                docs,
                installed,
                vec![],
                Some(&core_key),
            );
            let after = verdict_map(&advice.plugins);
            if after == **before {
                continue;
            }
            let changed: Vec<String> = after
                .iter()
                .filter(|(k, v)| before.get(*k) != Some(*v))
                .map(|(k, _)| k.clone())
                .collect();
            // The plugin release behind the change, when this pass found several.
            let Some(trigger) = agenda
                .triggers
                .iter()
                .find(|r| changed.contains(&r.project))
                .or(agenda.triggers.first())
            else {
                continue;
            };
            let subject_key = format!(
                "compat-followup:{}:{core_key}:{}",
                agenda.core.name,
                fingerprint(&after)
            );
            self.new_states
                .push((agenda.op.to.key(), core_release.id, after));
            if superseded {
                continue;
            }
            let mut payload = AlertReport::new(advice);
            payload.trigger = Some(Trigger {
                project: trigger.project.clone(),
                version: trigger.version.clone(),
            });
            payload.changed = Some(changed);
            self.queue.push(Queued {
                to: agenda.op.to.clone(),
                kind: AlertKind::CompatFollowup,
                subject_key,
                payload,
            });
        }
        Ok(())
    }
}

/// The pass's own reading of a class: pre-releases never alert.
pub(super) fn alerts_for(release: &ReleaseRow) -> bool {
    release.class != ReleaseClass::Prerelease
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::config::projects::preset;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("timestamp")
    }

    fn row(id: i64, project: &str, version: &str, class: ReleaseClass, day: &str) -> ReleaseRow {
        let parsed = version::parse(version).expect("version");
        ReleaseRow {
            id,
            project: project.into(),
            version: version.into(),
            class,
            line: version::line(&parsed),
            published_at: Some(at(&format!("{day}T09:00:00Z"))),
            first_seen_at: at(&format!("{day}T10:00:00Z")),
            available_at: Some(at(&format!("{day}T10:00:00Z"))),
            yanked: false,
            yanked_reason: None,
            baseline: false,
            new_in_run: Some(1),
            withdrawn_at: None,
            withdrawn_reason: None,
            sources: Vec::new(),
            parsed: Some(parsed),
        }
    }

    /// pretalx 2026.1.0 and pretalx-pages 1.0 recorded earlier; `found` new in this pass.
    fn input(found: Vec<ReleaseRow>, installed: &[(&str, &str)], states: CompatStates) -> Input {
        let mut rows = vec![
            row(
                1,
                "pretalx",
                "2026.1.0",
                ReleaseClass::Feature,
                "2026-01-10",
            ),
            row(
                2,
                "pretalx-pages",
                "1.0.0",
                ReleaseClass::Feature,
                "2025-12-01",
            ),
        ];
        rows.extend(found.iter().cloned());
        Input {
            pending: found.iter().map(|r| r.id).collect(),
            found,
            releases: rows.iter().map(|r| (r.id, r.clone())).collect(),
            catalog: Catalog::from_rows(rows),
            states,
            operators: vec![Operator {
                to: Target::Mail {
                    subscriber_id: 7,
                    email: "ops@example.org".into(),
                },
                installed: installed
                    .iter()
                    .map(|(p, v)| (p.to_string(), v.to_string()))
                    .collect(),
            }],
        }
    }

    fn planned(input: &Input) -> Plan {
        let projects = preset().expect("preset");
        let tracked = Tracked {
            projects: &projects,
            channels: &[],
        };
        plan(tracked, input, &Docs::default()).expect("plan")
    }

    /// pretalx 2026.2.0 (a feature release, id 3) found, for an operator on pretalx 2026.1.0
    /// with pretalx-pages 1.0.0.
    fn feature_release_input() -> Input {
        let feature = row(
            3,
            "pretalx",
            "2026.2.0",
            ReleaseClass::Feature,
            "2026-07-01",
        );
        input(
            vec![feature],
            &[("pretalx", "2026.1.0"), ("pretalx-pages", "1.0.0")],
            CompatStates::new(),
        )
    }

    #[test]
    fn a_new_feature_release_gets_its_operators_one_report_with_the_verdicts_recorded() {
        let input = feature_release_input();
        let plan = planned(&input);
        assert_eq!(plan.queue.len(), 1);
        let q = &plan.queue[0];
        assert_eq!(q.kind, AlertKind::CompatReport);
        assert_eq!(q.subject_key, "compat:pretalx:2026.2");
        assert_eq!(q.payload.advice.target.as_deref(), Some("2026.2.0"));
        assert_eq!(plan.report.compat_reports, 1);
        assert_eq!(plan.new_states.len(), 1);
        let (operator, release_id, verdicts) = &plan.new_states[0];
        assert_eq!(*operator, OperatorKey::Subscriber(7));
        assert_eq!(*release_id, 3);
        assert!(verdicts.contains_key("pretalx-pages"), "{verdicts:?}");
    }

    #[test]
    fn an_operator_who_runs_neither_the_core_nor_its_plugins_is_told_nothing() {
        let feature = row(
            3,
            "pretalx",
            "2026.2.0",
            ReleaseClass::Feature,
            "2026-07-01",
        );
        let input = input(vec![feature], &[], CompatStates::new());
        let plan = planned(&input);
        assert!(plan.queue.is_empty());
        assert!(plan.new_states.is_empty());
    }

    #[test]
    fn a_plugin_release_that_changes_a_told_verdict_gets_a_follow_up_naming_it() {
        let core = row(
            3,
            "pretalx",
            "2026.2.0",
            ReleaseClass::Feature,
            "2026-07-01",
        );
        let plugin = row(
            4,
            "pretalx-pages",
            "1.1.0",
            ReleaseClass::Feature,
            "2026-07-02",
        );
        let told: BTreeMap<String, String> = [("pretalx-pages".into(), "blocked".into())].into();
        let states: CompatStates = [((OperatorKey::Subscriber(7), 3), told)].into();
        let mut input = input(
            vec![plugin],
            &[("pretalx", "2026.1.0"), ("pretalx-pages", "1.0.0")],
            states,
        );
        input.releases.insert(3, core.clone());
        input.catalog = Catalog::from_rows(input.releases.values().cloned());
        let plan = planned(&input);
        assert_eq!(plan.queue.len(), 1, "one follow-up");
        let q = &plan.queue[0];
        assert_eq!(q.kind, AlertKind::CompatFollowup);
        assert!(q.subject_key.starts_with("compat-followup:pretalx:2026.2:"));
        let trigger = q.payload.trigger.as_ref().expect("a trigger");
        assert_eq!(trigger.version, "1.1.0");
        assert_eq!(
            q.payload.changed.as_deref(),
            Some(&["pretalx-pages".to_string()][..])
        );
        assert_eq!(plan.report.followups, 1);
        assert_eq!(plan.new_states[0].1, 3);
    }

    #[test]
    fn the_documents_read_are_named_before_planning() {
        let input = feature_release_input();
        let projects = preset().expect("preset");
        let tracked = Tracked {
            projects: &projects,
            channels: &[],
        };
        let wanted: Vec<(String, String)> = docs_wanted(tracked, &input)
            .into_iter()
            .map(|(p, v)| (p.name, v))
            .collect();
        for expected in [
            ("pretalx", "2026.2.0"),
            ("pretalx", "2026.1.0"),
            ("pretalx-pages", "1.0.0"),
        ] {
            assert!(
                wanted.contains(&(expected.0.into(), expected.1.into())),
                "{expected:?} in {wanted:?}"
            );
        }
    }
}
