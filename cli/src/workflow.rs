//! Loading a workflow file and its inventory for the commands that need them.

use std::path::Path;

use drover_engine::inventory::{self, Inventory};
use drover_engine::plugin::registry::Registry;
use drover_engine::workflow::{self, ValidationContext, Workflow};

use crate::{CliError, Global};

/// Reads and validates an inventory file; its warnings go to stderr unless `--quiet`.
pub fn inventory(global: &Global, path: &Path) -> Result<Inventory, CliError> {
    let loaded = inventory::load(path).map_err(|e| CliError::Usage(e.to_string()))?;
    if !global.quiet {
        for warning in &loaded.warnings {
            eprintln!("warning: {warning}");
        }
    }
    Ok(loaded.inventory)
}

/// Reads and validates a workflow against the installed plugins and (if given) the inventory.
/// Every problem is reported at once, one per line, as `file:line:column: message`.
pub fn load(global: &Global, path: &Path, inventory: Option<&Inventory>) -> Result<Workflow, CliError> {
    let registry = Registry::new(global.plugin_dir());
    let groups = inventory.map(Inventory::group_names);
    // Steps often name the same plugin: resolve each reference once.
    let resolved = std::cell::RefCell::new(std::collections::HashMap::new());
    let resolve = |reference: &drover_engine::plugin::PluginRef| {
        resolved
            .borrow_mut()
            .entry(reference.to_string())
            .or_insert_with(|| {
                registry.resolve(reference).map(|installed| installed.info).map_err(|e| e.to_string())
            })
            .clone()
    };
    let ctx = ValidationContext { groups: groups.as_ref(), plugins: &resolve };
    workflow::load(path, &ctx).map_err(|diagnostics| CliError::Usage(diagnostics.to_string()))
}
