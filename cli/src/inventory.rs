//! `drover inventory check`: connects to every server of an inventory, as a run would, and says
//! per server whether it is reachable, lets Drover's logon in, speaks the shell Drover expects
//! (with its version) and, for a Windows server with a SQL Server to reach, whether the logon
//! carries network credentials there (the second hop). The questions are the engine's
//! (`drover_engine::inventory::check`); this module runs them in parallel with progress on
//! stderr, and prints the table (or JSON).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use drover_engine::display::visible;
use drover_engine::inventory::check::{self, ServerReadiness, Verdict};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{CliError, Exit, Global, context, output, workflow};

/// Inventory commands.
#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Connect to every server and report whether it is ready for a run: reachable,
    /// authenticated, shell and PowerShell version, and for Windows servers whether the logon
    /// reaches SQL Server with network credentials (the second hop). Exits 1 when a server is
    /// not ready. Nothing is changed on any server.
    Check(CheckArgs),
}

/// Arguments of `drover inventory check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The inventory file.
    #[arg(value_name = "INVENTORY")]
    pub inventory: PathBuf,
    /// The SQL Server every Windows server should reach for the second-hop check [default: each
    /// server's `vars.sql`; servers without one are not asked].
    #[arg(long, value_name = "SERVER")]
    pub sql: Option<String>,
    /// How many servers to check at once.
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
}

/// Runs an inventory command.
pub async fn run(global: &Global, command: InventoryCommand) -> Result<Exit, CliError> {
    match command {
        InventoryCommand::Check(args) => check(global, args).await,
    }
}

async fn check(global: &Global, args: CheckArgs) -> Result<Exit, CliError> {
    let inventory = workflow::inventory(global, &args.inventory)?;
    let secrets = context::secrets(global)?;
    let targets = inventory.targets(secrets.as_ref());
    let bar = progress_bar(global, inventory.servers.len());
    let found = check::check_all(&inventory, &targets, args.sql.as_deref(), usize::from(args.jobs), |r| {
        let line =
            format!("{}: {} ({:.1} s)", r.server, if r.ready() { "ready" } else { "NOT READY" }, seconds(r));
        match &bar {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(line);
            }
            None if !global.quiet && !global.json => eprintln!("  checked {line}"),
            None => {}
        }
    })
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let ready = found.iter().all(ServerReadiness::ready);
    if global.json {
        output::json(&serde_json::json!({ "ready": ready, "servers": found }))?;
    } else {
        print_table(&found);
    }
    Ok(if ready { Exit::Success } else { Exit::Failure })
}

/// A bar on stderr when it is a terminal and progress is wanted.
fn progress_bar(global: &Global, servers: usize) -> Option<ProgressBar> {
    if global.quiet || global.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(servers as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("checking servers {bar:30} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    Some(bar)
}

fn seconds(r: &ServerReadiness) -> f64 {
    r.elapsed_ms as f64 / 1000.0
}

/// One cell: `yes`, `no`, `-` (not asked), with the shell's own text.
fn cell(verdict: &Verdict, shown_when_yes: bool) -> String {
    match verdict {
        Verdict::Yes(detail) if shown_when_yes && !detail.is_empty() => visible(detail).into_owned(),
        Verdict::Yes(_) => "yes".into(),
        Verdict::No(_) => "NO".into(),
        Verdict::Skipped(_) => "-".into(),
    }
}

fn print_table(found: &[ServerReadiness]) {
    let rows: Vec<[String; 7]> = found
        .iter()
        .map(|r| {
            [
                visible(&r.server).into_owned(),
                r.transport.to_owned(),
                cell(&r.reachable, false),
                cell(&r.authenticated, false),
                cell(&r.shell, true),
                cell(&r.second_hop, false),
                format!("{:.1}s", seconds(r)),
            ]
        })
        .collect();
    let header = ["SERVER", "TRANSPORT", "REACHABLE", "AUTHENTICATED", "SHELL", "SECOND HOP", "TIME"];
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: &[&str]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&header);
    for row in &rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let mut notes = Vec::new();
    for r in found {
        let answers = [
            ("reachable", &r.reachable),
            ("authenticated", &r.authenticated),
            ("shell", &r.shell),
            ("second hop", &r.second_hop),
        ];
        for (question, verdict) in answers {
            match verdict {
                Verdict::No(why) => notes.push(format!("{}: {question}: no: {}", r.server, visible(why))),
                Verdict::Yes(detail) if question == "second hop" => {
                    notes.push(format!("{}: second hop: {}", r.server, visible(detail)));
                }
                _ => {}
            }
        }
    }
    let unasked: Vec<&str> = found
        .iter()
        .filter(|r| r.second_hop == Verdict::Skipped(check::NO_SQL.into()))
        .map(|r| r.server.as_str())
        .collect();
    if !unasked.is_empty() {
        notes.push(format!(
            "second hop not checked on {}: no SQL Server to reach (give --sql, or `sql` in a server's vars)",
            unasked.join(", ")
        ));
    }
    if !notes.is_empty() {
        println!();
        for note in notes {
            println!("{note}");
        }
    }
    let ready = found.iter().filter(|r| r.ready()).count();
    println!("\n{ready} of {} servers ready", found.len());
}
