//! Grants: what a workflow allows one step to do (which targets, programs and secrets), and the
//! refusals the host records when a plugin asks for more.
//!
//! This module only decides; it never runs anything. The plugin host consults it on every
//! host call, before any transport is touched.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

/// A set of allowed names, or everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Allow {
    /// Nothing is allowed.
    #[default]
    Nothing,
    /// Exactly these names.
    Only(BTreeSet<String>),
    /// Anything (`"*"` in a workflow's grants).
    Any,
}

impl Allow {
    /// Allows exactly `names`; a name `"*"` allows anything.
    pub fn of<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let set: BTreeSet<String> = names.into_iter().map(Into::into).collect();
        if set.contains("*") {
            Allow::Any
        } else if set.is_empty() {
            Allow::Nothing
        } else {
            Allow::Only(set)
        }
    }

    /// Whether `name` is allowed.
    pub fn allows(&self, name: &str) -> bool {
        match self {
            Allow::Nothing => false,
            Allow::Only(set) => set.contains(name),
            Allow::Any => true,
        }
    }

    fn describe(&self) -> String {
        match self {
            Allow::Nothing => "none".into(),
            Allow::Only(set) => set.iter().cloned().collect::<Vec<_>>().join(", "),
            Allow::Any => "any".into(),
        }
    }
}

/// What one step may do through the host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grants {
    /// Targets the step may run programs on or move files on.
    pub targets: Allow,
    /// Programs the step may run (matched against the program exactly as the plugin names it).
    pub programs: Allow,
    /// Secrets the step may reveal or reference.
    pub secrets: Allow,
}

/// What kind of thing was not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Missing {
    /// A target.
    Target,
    /// A program.
    Program,
    /// A secret.
    Secret,
    /// Any change at all: the call came in check mode.
    Change,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Missing::Target => "target",
            Missing::Program => "program",
            Missing::Secret => "secret",
            Missing::Change => "change",
        })
    }
}

/// A host call the host refused. Recorded, shown to the plugin as a `denied` host error, and
/// failing the attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// The plugin that asked.
    pub plugin: String,
    /// The call, e.g. `exec sc.exe on DRBTS01`.
    pub call: String,
    /// What kind of grant was missing.
    pub missing: Missing,
    /// The name that was not granted.
    pub name: String,
    /// What the step was granted of that kind.
    pub granted: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.missing {
            Missing::Change => write!(
                f,
                "plugin {} called {}: refused, nothing may change in check mode",
                self.plugin, self.call
            ),
            missing => write!(
                f,
                "plugin {} called {}: {missing} {} is not granted to this step (granted {missing}s: {})",
                self.plugin, self.call, self.name, self.granted
            ),
        }
    }
}

impl Grants {
    /// Grants nothing.
    pub fn none() -> Self {
        Grants::default()
    }

    /// Checks one name of one kind, returning the refusal to record if it is not granted.
    pub fn check(&self, plugin: &str, call: &str, missing: Missing, name: &str) -> Result<(), Refusal> {
        let allow = match missing {
            Missing::Target => &self.targets,
            Missing::Program => &self.programs,
            Missing::Secret => &self.secrets,
            Missing::Change => &Allow::Nothing,
        };
        if allow.allows(name) {
            return Ok(());
        }
        Err(Refusal {
            plugin: plugin.into(),
            call: call.into(),
            missing,
            name: name.into(),
            granted: allow.describe(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_allows_anything_and_empty_allows_nothing() {
        assert!(Allow::of(["*"]).allows("anything"));
        assert!(!Allow::of(Vec::<String>::new()).allows("x"));
        assert!(Allow::of(["sc.exe"]).allows("sc.exe"));
        assert!(!Allow::of(["sc.exe"]).allows("SC.EXE"));
    }

    #[test]
    fn refusal_names_plugin_call_and_missing_grant() {
        let grants = Grants { programs: Allow::of(["sc.exe", "reg"]), ..Grants::none() };
        let refusal = grants.check("fixture", "exec rm on DRBTS01", Missing::Program, "rm").unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "plugin fixture called exec rm on DRBTS01: program rm is not granted to this step (granted programs: reg, sc.exe)"
        );
    }
}
