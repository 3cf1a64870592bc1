//! Installed plugins on disk, by name, version and sha256:
//!
//! ```text
//! <plugin dir>/<name>/<version>/plugin.wasm   the component, byte for byte as installed
//! <plugin dir>/<name>/<version>/plugin.json   its validated describe and sha256
//! ```
//!
//! An install is validated by loading the component in a [`PluginHost`] first, staged in a
//! temporary directory and renamed into place, so the installed set is never left half-changed.
//! A version is immutable: reinstalling it with other bytes is refused.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use semver::Version;
use serde::{Deserialize, Serialize};

use super::error::LoadError;
use super::info::{PluginInfo, PluginRef, Sha256Digest, check_name};
use super::sandbox::{LoadedPlugin, PluginHost};

/// One installed plugin version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Installed {
    /// Its validated `describe`.
    pub info: PluginInfo,
    /// The sha256 of `plugin.wasm`.
    pub sha256: Sha256Digest,
    /// When it was installed, in seconds since the Unix epoch.
    pub installed_at: u64,
    /// Where `plugin.wasm` is.
    #[serde(skip)]
    pub path: PathBuf,
}

/// What can go wrong with the installed set.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A file or directory could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file to install is not a valid plugin; nothing was installed.
    #[error("cannot install {file}: {source}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Why it is not a plugin.
        source: LoadError,
    },
    /// That name and version are installed with other bytes.
    #[error(
        "{name} {version} is already installed with sha256 {installed}, and {file} has sha256 {new}: a version never changes; bump the version, or `drover plugin remove {name}@={version}` first"
    )]
    Conflict {
        /// The plugin.
        name: String,
        /// The version.
        version: Version,
        /// The installed digest (boxed: it keeps the error small).
        installed: Box<Sha256Digest>,
        /// The new file's digest.
        new: Box<Sha256Digest>,
        /// The new file.
        file: PathBuf,
    },
    /// Nothing installed matches.
    #[error("{}", not_installed_message(reference, installed))]
    NotInstalled {
        /// What was asked for.
        reference: PluginRef,
        /// The versions of that name that are installed.
        installed: Vec<Version>,
    },
    /// An entry on disk is damaged or was changed after install.
    #[error("installed plugin at {path} is damaged: {message}; reinstall it")]
    Damaged {
        /// The entry.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn not_installed_message(reference: &PluginRef, installed: &[Version]) -> String {
    if installed.is_empty() {
        format!(
            "plugin {} is not installed (no version of it is); install it with `drover plugin install <file.wasm>`",
            reference.name
        )
    } else {
        let list: Vec<String> = installed.iter().map(Version::to_string).collect();
        format!(
            "no installed version of {} matches {}; installed: {}",
            reference.name,
            reference.req,
            list.join(", ")
        )
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError {
    let path = path.to_path_buf();
    move |source| RegistryError::Io { action, path, source }
}

/// The set of installed plugins in one directory.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

impl Registry {
    /// The registry in `dir` (created on first install).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Registry { dir: dir.into() }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Validates `file` as a plugin and installs it. Returns the entry and whether it was new
    /// (installing the same bytes again is a no-op).
    pub async fn install(&self, host: &PluginHost, file: &Path) -> Result<(Installed, bool), RegistryError> {
        let bytes = crate::input_file::read_limited(file, crate::input_file::MAX_COMPONENT_BYTES)
            .map_err(io("cannot read", file))?;
        let plugin =
            host.load(&bytes).await.map_err(|source| RegistryError::Invalid { file: file.into(), source })?;
        let entry = self.dir.join(&plugin.info.name).join(plugin.info.version.to_string());
        if entry.exists() {
            let existing = self.read_entry(&entry)?;
            if existing.sha256 == plugin.digest {
                return Ok((existing, false));
            }
            return Err(RegistryError::Conflict {
                name: plugin.info.name.clone(),
                version: plugin.info.version.clone(),
                installed: Box::new(existing.sha256),
                new: Box::new(plugin.digest),
                file: file.into(),
            });
        }
        let installed = Installed {
            info: plugin.info.clone(),
            sha256: plugin.digest,
            installed_at: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            path: entry.join("plugin.wasm"),
        };
        let name_dir = self.dir.join(&plugin.info.name);
        std::fs::create_dir_all(&name_dir).map_err(io("cannot create", &name_dir))?;
        let staging = tempfile::Builder::new()
            .prefix(".staging-")
            .tempdir_in(&self.dir)
            .map_err(io("cannot stage in", &self.dir))?;
        write_synced(&staging.path().join("plugin.wasm"), &bytes)?;
        let meta = serde_json::to_vec_pretty(&installed).expect("plugin metadata serializes");
        write_synced(&staging.path().join("plugin.json"), &meta)?;
        std::fs::rename(staging.path(), &entry).map_err(io("cannot move into place", &entry))?;
        // The staging directory is gone (renamed); keep TempDir from failing to remove it.
        let _ = staging.keep();
        Ok((installed, true))
    }

    fn read_entry(&self, entry: &Path) -> Result<Installed, RegistryError> {
        let meta_path = entry.join("plugin.json");
        let text = std::fs::read(&meta_path).map_err(io("cannot read", &meta_path))?;
        let mut installed: Installed = serde_json::from_slice(&text).map_err(|e| RegistryError::Damaged {
            path: entry.into(),
            message: format!("plugin.json: {e}"),
        })?;
        installed.path = entry.join("plugin.wasm");
        Ok(installed)
    }

    /// Every installed plugin version, sorted by name then version.
    pub fn list(&self) -> Result<Vec<Installed>, RegistryError> {
        let mut all = Vec::new();
        if !self.dir.exists() {
            return Ok(all);
        }
        for name_dir in read_dirs(&self.dir)? {
            for entry in read_dirs(&name_dir)? {
                all.push(self.read_entry(&entry)?);
            }
        }
        all.sort_by(|a, b| (&a.info.name, &a.info.version).cmp(&(&b.info.name, &b.info.version)));
        Ok(all)
    }

    /// Every installed version of `name`, lowest first. Reads only that name's directory: a
    /// workflow resolves one plugin per step.
    pub fn versions(&self, name: &str) -> Result<Vec<Installed>, RegistryError> {
        let name_dir = self.dir.join(name);
        // A name that is not a plugin name is not installed (and never names another directory).
        if check_name(name).is_err() || !name_dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut all = Vec::new();
        for entry in read_dirs(&name_dir)? {
            let installed = self.read_entry(&entry)?;
            if installed.info.name == name {
                all.push(installed);
            }
        }
        all.sort_by(|a, b| a.info.version.cmp(&b.info.version));
        Ok(all)
    }

    /// The highest installed version matching `reference`.
    pub fn resolve(&self, reference: &PluginRef) -> Result<Installed, RegistryError> {
        let versions = self.versions(&reference.name)?;
        let best = versions.iter().rev().find(|i| reference.req.matches(&i.info.version)).cloned();
        best.ok_or_else(|| RegistryError::NotInstalled {
            reference: reference.clone(),
            installed: versions.into_iter().map(|i| i.info.version).collect(),
        })
    }

    /// Removes every installed version matching `reference`; returns what was removed.
    pub fn remove(&self, reference: &PluginRef) -> Result<Vec<Installed>, RegistryError> {
        let versions = self.versions(&reference.name)?;
        let matching: Vec<Installed> =
            versions.iter().filter(|i| reference.req.matches(&i.info.version)).cloned().collect();
        if matching.is_empty() {
            return Err(RegistryError::NotInstalled {
                reference: reference.clone(),
                installed: versions.into_iter().map(|i| i.info.version).collect(),
            });
        }
        for installed in &matching {
            let entry = installed.path.parent().expect("plugin.wasm is inside its entry");
            std::fs::remove_dir_all(entry).map_err(io("cannot remove", entry))?;
        }
        let name_dir = self.dir.join(&reference.name);
        if read_dirs(&name_dir)?.is_empty() {
            let _ = std::fs::remove_dir(&name_dir);
        }
        Ok(matching)
    }

    /// Loads an installed plugin, checking its bytes still have the sha256 they were installed
    /// with.
    pub async fn load(
        &self,
        host: &PluginHost,
        installed: &Installed,
    ) -> Result<std::sync::Arc<LoadedPlugin>, RegistryError> {
        let bytes = std::fs::read(&installed.path).map_err(io("cannot read", &installed.path))?;
        let digest = Sha256Digest::of(&bytes);
        if digest != installed.sha256 {
            return Err(RegistryError::Damaged {
                path: installed.path.clone(),
                message: format!("its sha256 is {digest}, but {} was installed", installed.sha256),
            });
        }
        host.load(&bytes)
            .await
            .map_err(|source| RegistryError::Invalid { file: installed.path.clone(), source })
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(io("cannot create", path))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io("cannot write", path))
}

/// The subdirectories of `dir`, skipping hidden ones (staging directories).
fn read_dirs(dir: &Path) -> Result<Vec<PathBuf>, RegistryError> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("cannot read", dir))? {
        let entry = entry.map_err(io("cannot read", dir))?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.path().is_dir() {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}
