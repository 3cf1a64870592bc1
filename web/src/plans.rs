//! Saved plans (`drover plan --save`) the server was given: read once at start, shown as pages
//! and returned by the API as saved.

use std::path::{Path, PathBuf};

use drover_engine::run::plan::Plan;

/// A saved plan and the name it is shown under (its file's stem).
#[derive(Debug, Clone)]
pub struct SavedPlan {
    /// The name in URLs: the file's stem, made unique with `-2`, `-3`… when two files share one.
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// The plan.
    pub plan: Plan,
}

/// A plan file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    /// Unreadable.
    #[error("cannot read plan file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a plan.
    #[error("{path}: not a plan saved by `drover plan --save`: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why, with line and column.
        source: serde_json::Error,
    },
}

/// Reads the plan files `paths`.
pub fn load(paths: &[PathBuf]) -> Result<Vec<SavedPlan>, PlanFileError> {
    let mut plans: Vec<SavedPlan> = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path)
            .map_err(|source| PlanFileError::Read { path: path.clone(), source })?;
        let plan: Plan = serde_json::from_str(&text)
            .map_err(|source| PlanFileError::Parse { path: path.clone(), source })?;
        let stem = stem(path);
        let mut name = stem.clone();
        let mut n = 1;
        while plans.iter().any(|p| p.name == name) {
            n += 1;
            name = format!("{stem}-{n}");
        }
        plans.push(SavedPlan { name, path: path.clone(), plan });
    }
    Ok(plans)
}

fn stem(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "plan".into());
    stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
}
