//! Composing one queued mail: its typed payload read back from the outbox row, the releases
//! it names looked up in the dispatch's batch, the template rendered and the message built.
//!
//! Owns: what a mail of each kind shows (which releases, footer, list headers) and why a
//! message cannot be composed ([`ComposeError`], which dead-letters it). Does not own: loading
//! the batch, sending, or recording the answer (the dispatcher in `notify`).

use lettre::Message;

use super::content::{self, DigestMail, Footer, NewReleaseMail, Period, ReleaseView, TestMail};
use super::mail::{self, ListHeaders};
use super::outbox::{AlertKind, AlertReport, DigestItems, Mail, PayloadError};
use super::templates::{Rendered, TemplateError};
use super::{Batch, Notifier};
use crate::model::{EmailAddress, Project};
use crate::store::OutboxRow;

/// Why a queued mail cannot be sent; it is dead-lettered with this text.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// The recipient is not a valid address.
    #[error("{0}")]
    Recipient(String),
    /// The kind or payload cannot be read.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// Mail to a subscriber whose row is gone.
    #[error("the subscriber no longer exists")]
    NoSubscriber,
    /// A release the mail names is gone.
    #[error("release {0} is no longer recorded")]
    ReleaseGone(i64),
    /// A release the mail names turned out to be another package's.
    #[error("{project} {version} was withdrawn: {reason}")]
    Withdrawn {
        project: String,
        version: String,
        /// Why.
        reason: String,
    },
    /// A release mail that names no release.
    #[error("payload without release_ids")]
    NoReleases,
    /// A template failed.
    #[error("{0}")]
    Render(#[from] TemplateError),
    /// The message could not be built.
    #[error("{0}")]
    Build(String),
}

/// What composing needs besides the row: the notifier's templates, sender and links, the
/// configured projects (upgrade steps) and the batch's releases and subscriptions.
struct Parts<'a> {
    notifier: &'a Notifier,
    projects: &'a [Project],
    batch: &'a Batch,
    row: &'a OutboxRow,
}

/// Composes the message of one outbox row.
pub(super) fn compose(
    notifier: &Notifier,
    projects: &[Project],
    batch: &Batch,
    row: &OutboxRow,
) -> Result<Message, ComposeError> {
    let to: EmailAddress = row.recipient.parse().map_err(ComposeError::Recipient)?;
    let parts = Parts {
        notifier,
        projects,
        batch,
        row,
    };
    let (rendered, list) = match Mail::from_stored(&row.kind, &row.payload)? {
        Mail::NewRelease(p) => parts.releases("new_release", &[p.release_id])?,
        Mail::NewReleases(p) => parts.releases("new_releases", &p.release_ids)?,
        Mail::Digest(p) => parts.digest(&p)?,
        Mail::Alert(kind, report) => parts.alert(kind, &report)?,
        Mail::Test(p) => (
            notifier.templates.render(
                "test_message",
                &TestMail {
                    from: notifier.from.email.to_string(),
                    sent_at: p.sent_at,
                    base_url: notifier.base_url.to_string(),
                },
            )?,
            None,
        ),
        Mail::Confirm(ctx) => (
            notifier.templates.render("confirm_subscription", &ctx)?,
            None,
        ),
    };
    mail::build(
        &notifier.from,
        &to,
        &row.message_id,
        &rendered,
        list.as_ref(),
    )
    .map_err(ComposeError::Build)
}

/// `daily:2026-07-08` as the digest shows it.
fn period_label(period: &str) -> Period {
    let (kind, value) = period.split_once(':').unwrap_or(("daily", period));
    let label = match kind {
        "weekly" => format!("Weekly digest for {value}"),
        _ => format!("Daily digest for {value}"),
    };
    Period {
        kind: kind.to_string(),
        label,
    }
}

type Composed = (Rendered, Option<ListHeaders>);

impl Parts<'_> {
    /// The footer and list headers of mail to the row's subscriber.
    fn subscriber(&self) -> Result<(Footer, ListHeaders), ComposeError> {
        let subscriber_id = self.row.subscriber_id.ok_or(ComposeError::NoSubscriber)?;
        let footer = Footer {
            reason: format!(
                "You receive this because {} subscribed to release mail for {}.",
                self.row.recipient,
                self.batch
                    .projects_of
                    .get(&subscriber_id)
                    .map(|p| p.join(", "))
                    .unwrap_or_default()
            ),
            unsubscribe_url: self.notifier.unsubscribe_url(subscriber_id),
            site_url: self.notifier.base_url.to_string(),
        };
        let list = ListHeaders {
            unsubscribe_url: footer.unsubscribe_url.clone(),
        };
        Ok((footer, list))
    }

    /// A recorded release as mail shows it.
    fn view(&self, id: i64) -> Result<ReleaseView, ComposeError> {
        let release = self
            .batch
            .releases
            .get(&id)
            .ok_or(ComposeError::ReleaseGone(id))?;
        // Mail queued before a run found the release to be another package's is never sent.
        if let Some(reason) = &release.withdrawn_reason {
            return Err(ComposeError::Withdrawn {
                project: release.project.clone(),
                version: release.version.clone(),
                reason: reason.clone(),
            });
        }
        let project = self.projects.iter().find(|p| p.name == release.project);
        Ok(content::release_view(release, project))
    }

    /// `new_release` or `new_releases`: the releases newest first, as queued.
    fn releases(&self, kind: &str, ids: &[i64]) -> Result<Composed, ComposeError> {
        let (footer, list) = self.subscriber()?;
        let mut releases = ids
            .iter()
            .map(|id| self.view(*id))
            .collect::<Result<Vec<_>, _>>()?;
        content::supersede(&mut releases);
        let release = releases.first().cloned().ok_or(ComposeError::NoReleases)?;
        let ctx = NewReleaseMail {
            release,
            releases,
            footer,
        };
        Ok((self.notifier.templates.render(kind, &ctx)?, Some(list)))
    }

    /// A digest leaves withdrawn releases out; one with nothing else is not sent.
    fn digest(&self, items: &DigestItems) -> Result<Composed, ComposeError> {
        let (footer, list) = self.subscriber()?;
        let kept: Vec<i64> = items
            .release_ids
            .iter()
            .copied()
            .filter(|id| {
                self.batch
                    .releases
                    .get(id)
                    .is_none_or(|r| r.withdrawn_at.is_none())
            })
            .collect();
        let ids = if kept.is_empty() {
            &items.release_ids
        } else {
            &kept
        };
        let releases = ids
            .iter()
            .map(|id| self.view(*id))
            .collect::<Result<Vec<_>, _>>()?;
        let ctx = DigestMail {
            period: period_label(&items.period),
            releases,
            footer,
        };
        Ok((self.notifier.templates.render("digest", &ctx)?, Some(list)))
    }

    /// An operator alert to a subscriber.
    fn alert(&self, kind: AlertKind, report: &AlertReport) -> Result<Composed, ComposeError> {
        let (footer, list) = self.subscriber()?;
        let ctx = content::AlertMail::new(report, footer);
        Ok((
            self.notifier.templates.render(kind.as_str(), &ctx)?,
            Some(list),
        ))
    }
}
