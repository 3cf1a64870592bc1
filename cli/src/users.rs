//! `drover users …`: the users file of `drover serve` (who may log in to the web view and act).
//! `add` sets a password (read from stdin, without echo on a terminal) or, with `--token`, makes
//! an API token shown once; `remove` removes a user; `list` shows names, whether a password is
//! set and how many tokens (never a hash). The file's rules (mode 600, only hashes, atomic
//! writes) are `drover_web::auth::users`'s.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use drover_web::auth::Users;
use serde_json::json;

use crate::{CliError, Exit, Global, output};

const ADD_HELP: &str = "\
Examples:
  printf '%s\\n' \"$PASSWORD\" | drover users add alice --file /etc/drover/users.toml
  drover users add alice --file /etc/drover/users.toml           # asks for the password
  drover users add ci-bot --file /etc/drover/users.toml --token  # prints drover_<64 hex> once

The file is created with mode 600 if missing; a file others may read is refused. Only argon2id
password hashes and SHA-256 token hashes are stored. Restart `drover serve` to apply a change.";

/// Users-file commands.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user, or set an existing user's password; with `--token`, give them a new API token
    /// instead (the password is left as it is).
    ///
    /// The password is read from stdin: one line, without echo when stdin is a terminal (asked
    /// twice). An empty password is refused.
    #[command(after_help = ADD_HELP)]
    Add(AddArgs),
    /// Remove a user, with their password and tokens.
    Remove(RemoveArgs),
    /// List the users: name, whether a password is set, how many API tokens.
    List(ListArgs),
}

/// The users file, as every `drover users` command takes it.
#[derive(Debug, Args)]
pub struct FileArg {
    /// The users file (TOML, mode 600), as given to `drover serve`.
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
}

/// Arguments of `drover users add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The user's name (letters, digits, `-`, `_`, `.`, `@`): the actor the journal records.
    pub name: String,
    #[command(flatten)]
    pub file: FileArg,
    /// Make a new API token for the user (for `Authorization: Bearer …`) and print it once,
    /// instead of setting a password.
    #[arg(long)]
    pub token: bool,
}

/// Arguments of `drover users remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The user's name.
    pub name: String,
    #[command(flatten)]
    pub file: FileArg,
}

/// Arguments of `drover users list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub file: FileArg,
}

/// Runs a users command.
pub fn run(global: &Global, command: UsersCommand) -> Result<Exit, CliError> {
    match command {
        UsersCommand::Add(args) => add(global, args),
        UsersCommand::Remove(args) => remove(global, args),
        UsersCommand::List(args) => list(global, args),
    }
}

fn add(global: &Global, args: AddArgs) -> Result<Exit, CliError> {
    let path = &args.file.file;
    let mut users = Users::load_or_new(path)?;
    if args.token {
        let token = users.add_token(&args.name)?;
        users.save(path)?;
        println!("{token}");
        if !global.quiet {
            eprintln!(
                "{}: API token added to {} (shown only this once; restart `drover serve` to apply)",
                args.name,
                path.display()
            );
        }
        return Ok(Exit::Success);
    }
    let password = read_password(&args.name)?;
    users.set_password(&args.name, &password)?;
    users.save(path)?;
    if !global.quiet {
        eprintln!("{}: password set in {} (restart `drover serve` to apply)", args.name, path.display());
    }
    Ok(Exit::Success)
}

/// One line of stdin, without its line end; asked twice without echo on a terminal.
fn read_password(name: &str) -> Result<String, CliError> {
    let stdin_error =
        |source| CliError::Io { action: "read the password from", path: "stdin".into(), source };
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {name}: ")).map_err(stdin_error)?;
        let again = rpassword::prompt_password("again: ").map_err(stdin_error)?;
        if first != again {
            return Err(CliError::Usage("the two passwords differ; nothing was changed".into()));
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(stdin_error)?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(CliError::Usage(
            "the password is empty: give it on stdin (`printf '%s\\n' \"$PASSWORD\" | drover users add …`)"
                .into(),
        ));
    }
    Ok(password.to_owned())
}

fn remove(global: &Global, args: RemoveArgs) -> Result<Exit, CliError> {
    let path = &args.file.file;
    let mut users = Users::load(path)?;
    users.remove(&args.name, path)?;
    users.save(path)?;
    if !global.quiet {
        eprintln!("{}: removed from {} (restart `drover serve` to apply)", args.name, path.display());
    }
    Ok(Exit::Success)
}

fn list(global: &Global, args: ListArgs) -> Result<Exit, CliError> {
    let users = Users::load(&args.file.file)?;
    if global.json {
        let rows: Vec<_> = users
            .entries()
            .iter()
            .map(|u| json!({ "name": u.name, "password": u.password.is_some(), "tokens": u.tokens.len() }))
            .collect();
        output::json(&rows)?;
        return Ok(Exit::Success);
    }
    let width = users.entries().iter().map(|u| u.name.len()).max().unwrap_or(0).max(4);
    println!("{:width$}  PASSWORD  TOKENS", "NAME");
    for user in users.entries() {
        let password = if user.password.is_some() { "set" } else { "-" };
        println!("{:width$}  {password:8}  {}", user.name, user.tokens.len());
    }
    Ok(Exit::Success)
}
