//! `herald subscribe`, `herald unsubscribe` and `herald subscribers`.

use clap::Args;

use super::advise::InventoryArgs;
use crate::alerts;
use crate::app::App;
use crate::model::{DigestMode, EmailAddress, ReleaseClass, SubscriberStatus};
use crate::store::SubscriberWrite;

/// Options of `herald subscribe`.
#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// The subscriber's address.
    email: String,
    /// A project to follow (repeatable) [default: every core project, i.e. not the plugins].
    #[arg(long = "project", value_name = "NAME")]
    project: Vec<String>,
    /// A class of release to hear about (repeatable) [default: feature and bugfix].
    #[arg(long = "class", value_name = "CLASS")]
    class: Vec<ReleaseClass>,
    /// One mail per release, or a daily or weekly digest.
    #[arg(long, value_name = "MODE", default_value = "instant")]
    digest: DigestMode,
    /// What the operator runs, for compatibility reports and upgrade advice.
    #[command(flatten)]
    inventory: InventoryArgs,
}

/// Options of `herald unsubscribe`.
#[derive(Debug, Args)]
pub struct UnsubscribeArgs {
    /// The subscriber's address.
    email: String,
}

/// Options of `herald subscribers`.
#[derive(Debug, Args)]
pub struct SubscribersArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(super) async fn subscribe(app: App, args: SubscribeArgs) -> anyhow::Result<u8> {
    let email: EmailAddress = args.email.parse().map_err(anyhow::Error::msg)?;
    let projects: Vec<String> = if args.project.is_empty() {
        app.config.cores().map(|p| p.name.clone()).collect()
    } else {
        for name in &args.project {
            if app.config.project(name).is_none() {
                let tracked: Vec<&str> = app
                    .config
                    .projects
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect();
                anyhow::bail!("unknown project `{name}` (tracked: {})", tracked.join(", "));
            }
        }
        args.project.clone()
    };
    let mut classes = if args.class.is_empty() {
        vec![ReleaseClass::Feature, ReleaseClass::Bugfix]
    } else {
        args.class.clone()
    };
    classes.dedup();
    let inventory = if args.inventory.is_empty() {
        None
    } else {
        Some(alerts::tracked_inventory(&app, &args.inventory.read()?))
    };
    let (id, created) = app
        .store
        .upsert_subscriber(
            &SubscriberWrite {
                email: &email,
                projects: &projects,
                classes: &classes,
                digest: args.digest,
                status: SubscriberStatus::Confirmed,
                token_hash: None,
                token_expires_at: None,
            },
            app.clock.now(),
        )
        .await?;
    println!(
        "{} {email} (confirmed): {}; {}; {}.",
        if created { "Subscribed" } else { "Updated" },
        projects.join(", "),
        classes
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        args.digest.as_str()
    );
    if let Some((tracked, untracked)) = inventory {
        app.store
            .set_inventory(id, &tracked, app.clock.now())
            .await?;
        let listed: Vec<String> = tracked.iter().map(|(p, v)| format!("{p}=={v}")).collect();
        println!(
            "Inventory: {}.",
            if listed.is_empty() {
                "nothing Herald tracks".to_string()
            } else {
                listed.join(", ")
            }
        );
        if !untracked.is_empty() {
            println!("Not tracked by Herald (ignored): {}.", untracked.join(", "));
        }
    }
    Ok(0)
}

pub(super) async fn unsubscribe(app: App, args: UnsubscribeArgs) -> anyhow::Result<u8> {
    let email: EmailAddress = args.email.parse().map_err(anyhow::Error::msg)?;
    if app.store.remove_subscriber(&email).await? {
        println!("Unsubscribed {email}; mail still queued for them was dropped.");
        Ok(0)
    } else {
        crate::logging::say(
            crate::logging::Level::Error,
            &format!("{email} is not subscribed"),
            &[],
        );
        Ok(1)
    }
}

pub(super) async fn list(app: App, args: SubscribersArgs) -> anyhow::Result<u8> {
    let subscribers = app.store.subscribers().await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&subscribers)?);
        return Ok(0);
    }
    if subscribers.is_empty() {
        println!("No subscribers yet. Add one with `herald subscribe EMAIL`.");
        return Ok(0);
    }
    let width = subscribers
        .iter()
        .map(|s| s.email.as_str().len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:width$}  {:9}  {:7}  {:30}  PROJECTS",
        "EMAIL", "STATUS", "DIGEST", "CLASSES"
    );
    for s in subscribers {
        println!(
            "{:width$}  {:9}  {:7}  {:30}  {}",
            s.email.as_str(),
            match s.status {
                SubscriberStatus::Confirmed => "confirmed",
                SubscriberStatus::Pending => "pending",
            },
            s.digest.as_str(),
            s.classes
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(","),
            s.projects.join(", ")
        );
    }
    Ok(0)
}
