//! What a step becomes in a run: its instances (one, or one per `for-each` item), their keys and
//! targets, and what the workflow grants each. The run machine and check mode (`drover plan`)
//! both expand steps through here, so a plan names instances as a run would.

use serde_json::Value;

use crate::grants::{Allow, ExecPattern, Grants};
use crate::inventory::Inventory;
use crate::workflow::model::{ForEach, Step};
use crate::workflow::template;

/// The key of a step's `n`th instance for `item` (`id`, `id[DRBTS01]`, `id[3]`), and its target:
/// the item when it names a server of the inventory.
pub fn instance_key(
    id: &str,
    item: Option<&Value>,
    n: usize,
    inventory: &Inventory,
) -> (String, Option<String>) {
    let key = crate::workflow::model::instance_key(id, item, n);
    let target = match item {
        Some(Value::String(s)) if inventory.servers.contains_key(s) => Some(s.clone()),
        _ => None,
    };
    (key, target)
}

/// The items a step expands into: `[None]` without `for-each`, a group's servers, or a list
/// rendered in `scope`. Items that would give one instance key are an error: each must give its
/// own.
pub fn items(
    step: &Step,
    inventory: &Inventory,
    scope: &template::Scope,
) -> Result<Vec<Option<Value>>, String> {
    let items: Vec<Option<Value>> = match &step.for_each {
        None => return Ok(vec![None]),
        Some(ForEach::Group(group)) => {
            inventory.expand(group).into_iter().map(|s| Some(Value::String(s))).collect()
        }
        Some(ForEach::List(list)) => list
            .iter()
            .map(|v| template::render(v, scope).map(Some).map_err(|e| format!("for-each: {e}")))
            .collect::<Result<_, _>>()?,
    };
    match crate::workflow::model::duplicate_instance_key(&step.id, &items) {
        Some((first, second, key)) => Err(format!(
            "for-each: items {first} and {second} both give the instance key `{key}`: each item must give its own key"
        )),
        None => Ok(items),
    }
}

/// What the workflow grants one instance of `step`: its targets (groups expanded, and always
/// the instance's own target), programs, secrets and read-only program runs.
pub fn grants_of(step: &Step, inventory: &Inventory, target: Option<&str>) -> Grants {
    let mut targets: Vec<String> = step
        .grants
        .targets
        .iter()
        .flat_map(|t| if t == "*" { vec![t.clone()] } else { inventory.expand(t) })
        .collect();
    targets.extend(target.map(str::to_string));
    Grants {
        targets: Allow::of(targets),
        programs: Allow::of(step.grants.programs.iter().cloned()),
        secrets: Allow::of(step.grants.secrets.iter().cloned()),
        read_only: step.grants.read_only.iter().filter_map(|p| ExecPattern::parse(p).ok()).collect(),
    }
}
