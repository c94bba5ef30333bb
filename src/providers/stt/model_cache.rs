//! Where the local recogniser keeps the files it generates: the cache directory, names
//! derived from the contents, and writes a concurrent reader never sees half done. It
//! decides nothing about what the files contain.

use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

/// Where generated model files live (`$XDG_CACHE_HOME/ringlypro`, `~/.cache/ringlypro` or
/// the temp directory).
pub(crate) fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("ringlypro")
}

/// A short, stable name for what the parts describe: the first 64 bits of their SHA-256,
/// in hex. Each part is length-prefixed, so `("ab", "c")` and `("a", "bc")` differ.
pub(crate) fn content_key<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Writes through a temporary file and a rename, so a concurrent reader never sees half.
pub(crate) fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp-{}-{unique}", std::process::id()));
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_keys_are_stable_and_keep_parts_apart() {
        let key = content_key([b"ab".as_slice(), b"c".as_slice()]);
        assert_eq!(key.len(), 16);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(key, content_key([b"ab".as_slice(), b"c".as_slice()]));
        assert_ne!(key, content_key([b"a".as_slice(), b"bc".as_slice()]));
        assert_ne!(key, content_key([b"abc".as_slice()]));
        // SHA-256 of nothing at all: the name does not depend on the release of anything.
        assert_eq!(content_key(std::iter::empty::<&[u8]>()), "e3b0c44298fc1c14");
    }
}
