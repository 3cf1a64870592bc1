//! Grants: what a workflow allows one step to do (which targets, programs and secrets), and the
//! refusals the host records when a plugin asks for more.
//!
//! This module only decides; it never runs anything. The plugin host consults it on every
//! host call, before any transport is touched.

use std::collections::BTreeSet;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    /// The program runs the workflow marks read-only: in check mode (`drover plan`) an exec
    /// must match one of them.
    pub read_only: Vec<ExecPattern>,
}

/// A command line marked read-only: words separated by spaces, each a wildcard pattern (`*`
/// any characters, `?` one) for one word of the argv (the program first); a last word `**`
/// matches any further words. `reg query **`, `sc.exe q* *`, `gacutil /l *`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecPattern {
    text: String,
    words: Vec<String>,
    rest: bool,
}

impl ExecPattern {
    /// Parses a pattern; says what is wrong with a bad one.
    pub fn parse(text: &str) -> Result<ExecPattern, String> {
        let mut words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
        let rest = words.last().is_some_and(|w| w == "**");
        if rest {
            words.pop();
        }
        if words.is_empty() {
            return Err("a read-only pattern starts with the program".into());
        }
        if words.iter().any(|w| w.contains("**")) {
            return Err("`**` may only stand alone as the last word".into());
        }
        Ok(ExecPattern { text: text.split_whitespace().collect::<Vec<_>>().join(" "), words, rest })
    }

    /// Whether `program args…` matches.
    pub fn matches(&self, program: &str, args: &[String]) -> bool {
        let argv: Vec<&str> = std::iter::once(program).chain(args.iter().map(String::as_str)).collect();
        let counts = if self.rest { argv.len() >= self.words.len() } else { argv.len() == self.words.len() };
        counts && self.words.iter().zip(&argv).all(|(w, a)| wildmatch::WildMatch::new(w).matches(a))
    }
}

impl fmt::Display for ExecPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What kind of thing was not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
    /// In check mode, an exec that matches none of the step's read-only patterns.
    ReadOnly,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Missing::Target => "target",
            Missing::Program => "program",
            Missing::Secret => "secret",
            Missing::Change => "change",
            Missing::ReadOnly => "read-only",
        })
    }
}

/// A host call the host refused. Recorded, shown to the plugin as a `denied` host error, and
/// failing the attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
            Missing::ReadOnly => write!(
                f,
                "plugin {} called {}: refused in check mode, `{}` is not marked read-only for this step (grants.read-only: {})",
                self.plugin, self.call, self.name, self.granted
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
            Missing::Change | Missing::ReadOnly => &Allow::Nothing,
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

    /// In check mode: whether `program args…` matches a read-only pattern. The refusal names the
    /// command line with its arguments as the plugin wrote them (secret references unfilled).
    pub fn check_read_only(
        &self,
        plugin: &str,
        call: &str,
        program: &str,
        args: &[String],
    ) -> Result<(), Refusal> {
        if self.read_only.iter().any(|p| p.matches(program, args)) {
            return Ok(());
        }
        let line =
            std::iter::once(program).chain(args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ");
        let granted = if self.read_only.is_empty() {
            "none".to_string()
        } else {
            self.read_only.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        };
        Err(Refusal {
            plugin: plugin.into(),
            call: call.into(),
            missing: Missing::ReadOnly,
            name: line,
            granted,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn read_only_patterns_match_word_by_word() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let reg = ExecPattern::parse("reg query **").unwrap();
        assert!(
            reg.matches(
                "reg",
                &args(&["query", "HKLM\\SOFTWARE\\Microsoft\\BizTalk Server\\3.0", "/v", "X"])
            )
        );
        assert!(reg.matches("reg", &args(&["query"])));
        assert!(!reg.matches("reg", &args(&["add", "HKLM\\X"])));
        let sc = ExecPattern::parse("sc.exe q* *").unwrap();
        assert!(sc.matches("sc.exe", &args(&["qc", "ENTSSO"])));
        assert!(!sc.matches("sc.exe", &args(&["query", "state=", "all"])), "exactly three words");
        assert!(!sc.matches("sc.exe", &args(&["config", "ENTSSO"])));
        assert!(ExecPattern::parse("**").is_err());
        assert!(ExecPattern::parse("sc.exe ** x").is_err());
        let grants = Grants { read_only: vec![reg, sc], ..Grants::none() };
        let refusal = grants.check_read_only(
            "p",
            "exec sc.exe on A",
            "sc.exe",
            &args(&["config", "X", "start=", "disabled"]),
        );
        assert_eq!(
            refusal.unwrap_err().to_string(),
            "plugin p called exec sc.exe on A: refused in check mode, `sc.exe config X start= disabled` is not marked read-only for this step (grants.read-only: reg query **, sc.exe q* *)"
        );
    }

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
