//! `herald advise`: the upgrade and plugin-compatibility report for an inventory, now,
//! without mail.

use std::path::PathBuf;

use clap::Args;

use crate::alerts;
use crate::app::App;
use crate::inventory::{self, Installed};

/// How an inventory is given on the command line (shared with `subscribe`).
#[derive(Debug, Args, Default)]
pub struct InventoryArgs {
    /// An installed distribution, `NAME==VERSION` (repeatable), e.g. pretalx==2026.1.2.
    #[arg(long = "installed", value_name = "NAME==VERSION")]
    pub installed: Vec<String>,
    /// A `pip freeze` output file (comments, -e lines, hashes and unrelated packages are fine).
    #[arg(long, value_name = "FILE")]
    pub freeze: Option<PathBuf>,
}

impl InventoryArgs {
    /// Whether anything was given.
    pub fn is_empty(&self) -> bool {
        self.installed.is_empty() && self.freeze.is_none()
    }

    /// Reads the inventory; notes about skipped lines go to stderr.
    pub fn read(&self) -> anyhow::Result<Vec<Installed>> {
        let mut items = Vec::new();
        if let Some(path) = &self.freeze {
            let text = std::fs::read_to_string(path)
                .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", path.display()))?;
            let (found, notes) = inventory::parse_freeze(&text);
            for note in notes {
                crate::logging::say(
                    crate::logging::Level::Warn,
                    &format!("{}: {note}", path.display()),
                    &[],
                );
            }
            items.extend(found);
        }
        for spec in &self.installed {
            items.push(inventory::parse_installed(spec).map_err(anyhow::Error::msg)?);
        }
        Ok(items)
    }
}

/// Options of `herald advise`.
#[derive(Debug, Args)]
pub struct AdviseArgs {
    /// What is installed.
    #[command(flatten)]
    inventory: InventoryArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub(super) async fn run(app: App, args: AdviseArgs) -> anyhow::Result<u8> {
    if args.inventory.is_empty() {
        anyhow::bail!(
            "say what is installed: --installed NAME==VERSION (repeatable) or --freeze FILE"
        );
    }
    let items = args.inventory.read()?;
    let advice = alerts::advise(&app, &items).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&advice)?);
        return Ok(0);
    }
    println!("{}", advice.recommendation);
    println!();
    println!("{}: {}", advice.core.project, advice.core.summary);
    for r in &advice.core.feature_releases_between {
        println!(
            "  feature release {}{}{}",
            r.version,
            r.published
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default(),
            r.url
                .as_deref()
                .map(|u| format!(": {u}"))
                .unwrap_or_default()
        );
    }
    for v in &advice.core.vulnerabilities_fixed {
        println!(
            "  fixes {} ({}), fixed in {}",
            v.id,
            v.aliases.join(", "),
            v.fixed_in.join(", ")
        );
    }
    if let Some(target) = &advice.target
        && !advice.plugins.is_empty()
    {
        println!();
        println!("Plugins and {} {target}:", advice.core.project);
        let width = advice
            .plugins
            .iter()
            .map(|p| p.plugin.len())
            .max()
            .unwrap_or(6);
        for p in &advice.plugins {
            println!(
                "  {:width$}  {:8}  {:10}  {}",
                p.plugin,
                p.verdict.as_str(),
                p.install.as_deref().unwrap_or("-"),
                p.evidence
            );
            for hint in &p.hints {
                println!("  {:width$}  note: {hint}", "");
            }
        }
    }
    if !advice.untracked.is_empty() {
        println!();
        println!(
            "Not tracked by Herald (ignored): {}",
            advice.untracked.join(", ")
        );
    }
    Ok(0)
}
