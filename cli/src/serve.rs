//! `drover serve`: the web view over the journal (`drover_web`). This file only turns the command
//! line into a `ServeConfig`, refuses an exposed address without the flag that accepts the risk,
//! binds, says where it listens, and stops on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use drover_engine::run::SystemClock;
use drover_engine::run::operator::Operators;
use drover_web::auth::{AnonymousAccess, Auth, AuthConfig};

use crate::{CliError, Exit, Global, context};

/// What visitors who have not logged in may do.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Anonymous {
    /// Read every page and the API; acting needs a login.
    Read,
    /// Nothing: pages send them to the login form, the API answers 401.
    Closed,
}

/// Arguments of `drover serve`.
#[derive(Debug, Args)]
#[command(
    after_help = "Pages: / (the runs), /runs/RUN (one run, live), /plans/NAME (a saved plan). The JSON API \
under /api/ returns what the commands' --json prints; docs/api.md is its reference.

Operators log in with a name and password from the users file (`drover users add NAME --file users.toml`), \
or send `Authorization: Bearer TOKEN` to the API. Their actions are journaled with their name as the actor, \
and a gate's approvers are checked against it.

  drover serve --users users.toml
  drover serve --listen 127.0.0.1:9000 --anonymous closed --users users.toml --plan plan.json

The view listens on 127.0.0.1 by default. It speaks plain HTTP: to serve other machines, put it behind a \
proxy that terminates TLS (with --secure-cookies), or accept the risk with --insecure."
)]
pub struct ServeArgs {
    /// The address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The users who may log in (TOML, mode 600; `drover users add`). Without it nobody can act.
    #[arg(long, value_name = "FILE", env = "DROVER_USERS")]
    pub users: Option<PathBuf>,
    /// What visitors who have not logged in may do.
    #[arg(long, value_enum, default_value = "read")]
    pub anonymous: Anonymous,
    /// A plan saved by `drover plan --save`, shown at /plans/NAME (repeatable).
    #[arg(long = "plan", value_name = "FILE")]
    pub plans: Vec<PathBuf>,
    /// How often the journal of a run someone follows is looked at.
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = humantime::parse_duration)]
    pub poll: Duration,
    /// Mark the session cookie Secure: the view is reached over HTTPS through a proxy.
    #[arg(long)]
    pub secure_cookies: bool,
    /// Listen on an address other machines can reach, over plain HTTP or without a users file.
    /// Passwords, session cookies and the journal's contents then cross the network readable.
    #[arg(long)]
    pub insecure: bool,
}

pub async fn run(global: &Global, args: ServeArgs) -> Result<Exit, CliError> {
    let exposed = !args.listen.ip().is_loopback();
    if exposed {
        if !args.insecure {
            return Err(CliError::Usage(format!(
                "--listen {}: other machines can reach that address, and drover serve speaks plain HTTP{}; \
                 serve on 127.0.0.1 behind a proxy that terminates TLS, or pass --insecure to accept the risk",
                args.listen,
                if args.users.is_none() { " with no users file (anyone could read the journal)" } else { "" }
            )));
        }
        eprintln!(
            "warning: serving on {} over plain HTTP{}: passwords, session cookies and the journal cross the network readable",
            args.listen,
            if args.users.is_none() { " without a users file" } else { "" }
        );
    }
    let anonymous = match args.anonymous {
        Anonymous::Read => AnonymousAccess::Read,
        Anonymous::Closed => AnonymousAccess::Closed,
    };
    let auth =
        Auth::from_file(args.users.as_deref(), AuthConfig { anonymous, secure_cookies: args.secure_cookies })
            .map_err(|e| CliError::Usage(e.to_string()))?;
    let plans = drover_web::plans::load(&args.plans).map_err(|e| CliError::Usage(e.to_string()))?;
    let store = context::store(global)?;
    let operators = Operators {
        store: store.clone(),
        clock: Arc::new(SystemClock::default()),
        lease_ttl: crate::env::lease_ttl().map_err(CliError::Usage)?,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", args.listen)))?;
    let address = listener.local_addr().map_err(|e| CliError::Usage(format!("cannot listen: {e}")))?;
    let stop = crate::worker::stop_signal()
        .map_err(|e| CliError::Usage(format!("cannot watch for SIGTERM and SIGINT: {e}")))?;
    // The first line on stdout is the address, for scripts and tests that asked for port 0.
    println!("serving {} on http://{address}/", context::journal(global));
    if !global.quiet {
        let who = match args.users.as_deref() {
            Some(path) => format!("users from {}", path.display()),
            None => "no users file: nobody can act".to_string(),
        };
        eprintln!(
            "drover serve {}: {who}; anonymous visitors: {:?}; SIGTERM or Ctrl-C stops",
            std::process::id(),
            args.anonymous
        );
    }
    let config = drover_web::ServeConfig { store, operators, auth, plans, poll: args.poll };
    drover_web::serve(config, listener, stop)
        .await
        .map_err(|e| CliError::Usage(format!("the web view stopped: {e}")))?;
    if !global.quiet {
        eprintln!("drover serve: stopped");
    }
    Ok(Exit::Success)
}
