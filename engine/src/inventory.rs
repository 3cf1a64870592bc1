//! The inventory: the servers a workflow acts on, their groups and how to reach each. This is
//! the minimal form the engine needs (servers, groups, the `local` and `command` transports);
//! sites, SSH and variables come with the targets work.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::target::{LocalTransport, TargetSet};

/// How a server is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Server {
    /// `local` (this machine).
    pub transport: String,
    /// Free-form variables for templates.
    #[serde(default)]
    pub vars: BTreeMap<String, serde_json::Value>,
}

/// A validated inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Inventory {
    /// Servers by name.
    #[serde(default)]
    pub servers: BTreeMap<String, Server>,
    /// Groups: name -> server names.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
}

/// Why an inventory is not usable.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// Unreadable file.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Invalid content.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong (with line and column where TOML gives them).
        message: String,
    },
}

impl Inventory {
    /// Reads and validates an inventory file (TOML).
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| InventoryError::Io { path: shown.clone(), source })?;
        let inventory: Inventory = toml::from_str(&text)
            .map_err(|e| InventoryError::Invalid { path: shown.clone(), message: e.to_string() })?;
        let mut problems = Vec::new();
        for (name, server) in &inventory.servers {
            if server.transport != "local" {
                problems.push(format!(
                    "server {name}: transport {:?} is not supported yet (use \"local\")",
                    server.transport
                ));
            }
        }
        for (group, members) in &inventory.groups {
            for member in members {
                if !inventory.servers.contains_key(member) {
                    problems.push(format!("group {group}: {member} is not a server of this inventory"));
                }
            }
        }
        if problems.is_empty() {
            Ok(inventory)
        } else {
            Err(InventoryError::Invalid { path: shown, message: problems.join("; ") })
        }
    }

    /// Group names.
    pub fn group_names(&self) -> BTreeSet<String> {
        self.groups.keys().cloned().collect()
    }

    /// Members of a group, or the server itself when `name` is a server.
    pub fn expand(&self, name: &str) -> Vec<String> {
        match self.groups.get(name) {
            Some(members) => members.clone(),
            None if self.servers.contains_key(name) => vec![name.to_string()],
            None => Vec::new(),
        }
    }

    /// The transports of every server.
    pub fn targets(&self) -> TargetSet {
        self.servers
            .keys()
            .fold(TargetSet::new(), |set, name| set.with(name.clone(), Arc::new(LocalTransport)))
    }
}
