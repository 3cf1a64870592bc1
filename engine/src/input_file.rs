//! Reading the files a user hands to Drover (workflows, inventories, saved plans, secrets files,
//! `--input @file`, plugin components) with a size limit, so that `/dev/zero`, a FIFO or a runaway generator ends in
//! a clear refusal instead of filling memory. Owns only the reading: what the text means is for
//! the caller, which names the file in its own message.

use std::io::{self, Read};
use std::path::Path;

/// The largest input file Drover reads: 16 MiB. The largest real workflow or inventory is a few
/// hundred KiB; a 20,000-step workflow is about 1.5 MiB.
pub const MAX_INPUT_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The largest plugin component file Drover reads (`drover plugin install`, `drover plugin run
/// FILE`): 64 MiB. Drover's own plugins are about 300 KiB.
pub const MAX_COMPONENT_BYTES: u64 = 64 * 1024 * 1024;

/// Reads `path` as UTF-8 text of at most [`MAX_INPUT_FILE_BYTES`].
pub fn read_to_string(path: &Path) -> io::Result<String> {
    read_to_string_limited(path, MAX_INPUT_FILE_BYTES)
}

/// Reads `path` as UTF-8 text of at most `limit` bytes. A larger file is refused with
/// [`io::ErrorKind::FileTooLarge`] after reading at most `limit + 1` bytes, whatever the file is
/// (a device or a FIFO has no size to look at first).
pub fn read_to_string_limited(path: &Path, limit: u64) -> io::Result<String> {
    let bytes = read_limited(path, limit)?;
    String::from_utf8(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the file is not UTF-8 text"))
}

/// Reads `path` as bytes, at most `limit` of them, as [`read_to_string_limited`] does.
pub fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let too_large = || {
        io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("the file is larger than {}, the limit for an input file", size(limit)),
        )
    };
    // A regular file says its size: refuse it without reading it.
    if let Ok(meta) = file.metadata()
        && meta.is_file()
        && meta.len() > limit
    {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// `16 MiB`, `512 KiB` or `100 bytes`.
fn size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    match bytes {
        b if b >= KIB * KIB && b % (KIB * KIB) == 0 => format!("{} MiB", b / (KIB * KIB)),
        b if b >= KIB && b % KIB == 0 => format!("{} KiB", b / KIB),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_up_to_the_limit_are_read_and_larger_ones_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f.toml");
        std::fs::write(&path, "x".repeat(100)).expect("write");
        assert_eq!(read_to_string_limited(&path, 100).expect("at the limit").len(), 100);
        let e = read_to_string_limited(&path, 99).expect_err("over the limit");
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(e.to_string(), "the file is larger than 99 bytes, the limit for an input file");
        std::fs::write(&path, [0xff, 0xfe]).expect("write");
        assert_eq!(read_to_string(&path).expect_err("binary").to_string(), "the file is not UTF-8 text");
    }

    #[test]
    fn endless_files_are_read_only_up_to_the_limit() {
        let e = read_to_string_limited(Path::new("/dev/zero"), 1024 * 1024).expect_err("endless");
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(e.to_string(), "the file is larger than 1 MiB, the limit for an input file");
        assert_eq!(size(MAX_INPUT_FILE_BYTES), "16 MiB");
    }
}
