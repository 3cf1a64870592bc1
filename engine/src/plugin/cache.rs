//! The on-disk cache of compiled plugins, keyed by the component's sha256 and wasmtime's
//! precompile compatibility hash. Only files this module wrote are ever deserialized: the
//! directory is private to the user (0700) and entries appear by atomic rename.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::error::LoadError;
use super::info::Sha256Digest;

/// Where a component's compiled code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheStatus {
    /// Loaded from the disk cache.
    Hit,
    /// Compiled now (and written to the cache, if there is one).
    Compiled,
}

/// A directory of compiled components, or none.
#[derive(Debug, Clone)]
pub(crate) struct CompileCache {
    dir: Option<PathBuf>,
}

impl CompileCache {
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        CompileCache { dir }
    }

    fn entry(dir: &Path, engine: &Engine, digest: &Sha256Digest) -> PathBuf {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        dir.join(format!("{digest}-{:016x}.cwasm", hasher.finish()))
    }

    /// The compiled component for `bytes`, from the cache or freshly compiled.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &Sha256Digest,
    ) -> Result<(Component, CacheStatus), LoadError> {
        let Some(dir) = &self.dir else {
            return Ok((compile(engine, bytes)?, CacheStatus::Compiled));
        };
        let entry = Self::entry(dir, engine, digest);
        if entry.exists() {
            match deserialize(engine, &entry) {
                Ok(component) => return Ok((component, CacheStatus::Hit)),
                Err(e) => {
                    tracing::warn!(path = %entry.display(), error = %e, "dropping unusable compile cache entry");
                    let _ = std::fs::remove_file(&entry);
                }
            }
        }
        let component = compile(engine, bytes)?;
        if let Err(e) = store(dir, &entry, &component) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot write the compile cache; continuing without it");
        }
        Ok((component, CacheStatus::Compiled))
    }
}

fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, LoadError> {
    Component::new(engine, bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))
}

#[expect(unsafe_code, reason = "wasmtime loads a precompiled component only through an unsafe call")]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // Read into memory rather than mapping the file: a cache file truncated or rewritten by
    // someone else while mapped would kill the process with SIGBUS.
    let bytes = std::fs::read(path)?;
    // SAFETY: `path` is inside the cache directory, which is private to this user and only ever
    // receives files by atomic rename from `store`, which serialized components this engine
    // compiled itself; wasmtime checks the compatibility header on top of that.
    unsafe { Component::deserialize(engine, &bytes) }
}

fn store(dir: &Path, entry: &Path, component: &Component) -> std::io::Result<()> {
    create_private_dir(dir)?;
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(&bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(entry).map_err(|e| e.error)?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}
