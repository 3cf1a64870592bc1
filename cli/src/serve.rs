//! `drover serve`: the web view over the journal (`drover_web`). This file only turns the command
//! line into a `ServeConfig` (loading the TLS certificate and key, if given), refuses an address
//! other machines reach without TLS or without a users file unless `--insecure` accepts the risk,
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

With --tls-cert and --tls-key (PEM files) it speaks HTTPS only and marks the session cookie Secure; \
without them, plain HTTP.

  drover serve --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem --users users.toml

The view listens on 127.0.0.1 by default. An address other machines can reach needs both TLS and a users \
file, or --insecure to accept the risk. A proxy that terminates TLS in front of 127.0.0.1 also works \
(with --secure-cookies)."
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
    /// Serve HTTPS only, with this certificate chain (PEM, the server's certificate first).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Mark the session cookie Secure: the view is reached over HTTPS through a proxy (implied by
    /// --tls-cert).
    #[arg(long)]
    pub secure_cookies: bool,
    /// Listen on an address other machines can reach without TLS or without a users file. Over
    /// plain HTTP, passwords, session cookies and the journal cross the network readable; without
    /// users, anyone who reaches the address reads the journal.
    #[arg(long)]
    pub insecure: bool,
}

/// What an address other machines reach lacks: TLS, a users file, or both (empty: nothing).
fn exposure(args: &ServeArgs) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if args.tls_cert.is_none() {
        missing.push("TLS (--tls-cert and --tls-key)");
    }
    if args.users.is_none() {
        missing.push("users file (--users)");
    }
    missing
}

pub async fn run(global: &Global, args: ServeArgs) -> Result<Exit, CliError> {
    let missing = if args.listen.ip().is_loopback() { Vec::new() } else { exposure(&args) };
    if !missing.is_empty() {
        let missing = missing.join(" and no ");
        if !args.insecure {
            return Err(CliError::Usage(format!(
                "--listen {}: other machines can reach that address, and the view has no {missing}; \
                 give it both, serve on 127.0.0.1, or pass --insecure to accept the risk",
                args.listen,
            )));
        }
        let risk = match (args.tls_cert.is_none(), args.users.is_none()) {
            (true, true) => concat!(
                "over plain HTTP without a users file: anyone who reaches it reads the journal, and ",
                "passwords, session cookies and the journal cross the network readable"
            ),
            (true, false) => {
                "over plain HTTP: passwords, session cookies and the journal cross the network readable"
            }
            _ => "without a users file: anyone who reaches it reads the journal",
        };
        eprintln!("warning: serving on {} {risk}", args.listen);
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            Some(drover_web::tls::TlsConfig::load(cert, key).map_err(|e| CliError::Usage(e.to_string()))?)
        }
        _ => None,
    };
    let anonymous = match args.anonymous {
        Anonymous::Read => AnonymousAccess::Read,
        Anonymous::Closed => AnonymousAccess::Closed,
    };
    let secure_cookies = args.secure_cookies || tls.is_some();
    let auth = Auth::from_file(args.users.as_deref(), AuthConfig { anonymous, secure_cookies })
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
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("serving {} on {scheme}://{address}/", context::journal(global));
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
    let config = drover_web::ServeConfig { store, operators, auth, plans, poll: args.poll, tls };
    drover_web::serve(config, listener, stop)
        .await
        .map_err(|e| CliError::Usage(format!("the web view stopped: {e}")))?;
    if !global.quiet {
        eprintln!("drover serve: stopped");
    }
    Ok(Exit::Success)
}
