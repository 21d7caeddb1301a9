//! `herald releases`: what is recorded, newest first, as a table or JSON; withdrawn releases
//! (another package's under the current attribution rule) are listed with the reason.

use clap::Args;

use crate::app::App;
use crate::model::ReleaseClass;
use crate::store::ReleaseFilter;

/// Options of `herald releases`.
#[derive(Debug, Args)]
pub struct ReleasesArgs {
    /// Only this project (repeatable).
    #[arg(long = "project", value_name = "NAME")]
    project: Vec<String>,
    /// Only this class (repeatable).
    #[arg(long = "class", value_name = "CLASS")]
    classes: Vec<ReleaseClass>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

pub(super) async fn run(app: App, args: ReleasesArgs) -> anyhow::Result<u8> {
    for name in &args.project {
        if app.config.project(name).is_none() {
            anyhow::bail!("unknown project `{name}`");
        }
    }
    let rows = app
        .store
        .releases(&ReleaseFilter {
            projects: args.project,
            classes: args.classes,
            new_in_run: None,
            with_withdrawn: true,
        })
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    if rows.is_empty() {
        println!("No releases recorded yet. Run `herald check` first.");
        return Ok(0);
    }
    let width = rows
        .iter()
        .map(|r| r.project.len())
        .max()
        .unwrap_or(7)
        .max(7);
    println!(
        "{:width$}  {:14}  {:10}  {:10}  sources",
        "PROJECT", "VERSION", "CLASS", "PUBLISHED"
    );
    for r in rows {
        let date = r
            .published_at
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| "-".into());
        let mut sources: Vec<&str> = r.sources.iter().map(|s| s.source.as_str()).collect();
        sources.dedup();
        let mut flags = String::new();
        if r.yanked {
            flags.push_str(" [yanked]");
        }
        if r.available_at.is_none() {
            flags.push_str(" [not installable yet]");
        }
        if let Some(reason) = &r.withdrawn_reason {
            flags.push_str(&format!(" [withdrawn: {reason}]"));
        }
        println!(
            "{:width$}  {:14}  {:10}  {:10}  {}{}",
            r.project,
            r.version,
            r.class.as_str(),
            date,
            sources.join(","),
            flags
        );
    }
    Ok(0)
}
