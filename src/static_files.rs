//! Static directories (`--static-path`, `--samples`, `[[static]]`), served by
//! actix-files without ever leaving their root.
//!
//! `..` never reaches a directory (the router normalises `/a/../b`, and
//! actix-files refuses a decoded `..` segment, hidden files and backslashes
//! with 400), but actix-files follows symbolic links: a link in the directory to `/etc/passwd`, or to `/`, served whatever
//! it pointed at. Here every path is resolved (`canonicalize`, every link in
//! it followed) before it is served, and anything whose real path is outside
//! the directory's own real path answers 404, as a missing file does. Links
//! that stay inside the root keep working. A directory's `index.html` is
//! checked the same way, since actix-files opens it after the check.
//!
//! The check and the open are two steps: whoever can change links inside the
//! root between them could still escape. The root belongs to the operator;
//! this guards against links that are there, not against a hostile writer.

use std::path::{Component, Path, PathBuf};

use actix_files::Files;

/// The name actix-files serves for a directory.
const INDEX: &str = "index.html";

/// The service for one static directory: `url` prefix, files under `dir`.
pub(crate) fn service(url: &str, dir: &Path) -> Files {
    let root = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let filter_root = root.clone();
    Files::new(url, root)
        .index_file(INDEX)
        .redirect_to_slash_directory()
        .path_filter(move |relative, _| within_root(&filter_root, relative))
}

/// Whether `root/relative`, resolved, is inside `root` (itself resolved). A
/// path that does not exist is refused here too: the answer is 404 anyway.
fn within_root(root: &Path, relative: &Path) -> bool {
    let plain = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return false;
    }
    let Some(real) = resolved_inside(root, &root.join(relative)) else {
        return false;
    };
    if real.is_dir() {
        let index = real.join(INDEX);
        // A missing index keeps actix-files' own answer; a present one must
        // resolve inside the root too.
        if index.symlink_metadata().is_ok() {
            return resolved_inside(root, &index).is_some();
        }
    }
    true
}

fn resolved_inside(root: &Path, path: &Path) -> Option<PathBuf> {
    let real = path.canonicalize().ok()?;
    real.starts_with(root).then_some(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_out_of_the_root_are_refused_and_links_inside_it_are_not() {
        let base = std::env::temp_dir().join(format!("static-files-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (root, outside) = (base.join("root"), base.join("outside"));
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(outside.join("dir")).unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        std::fs::write(outside.join("secret.txt"), "s").unwrap();
        std::fs::write(outside.join("dir/index.html"), "s").unwrap();
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, root.join(name)).unwrap();
        };
        link(&outside.join("secret.txt"), "secret.txt");
        link(&outside, "out");
        link(&root.join("a.txt"), "inner.txt");
        link(&outside.join("dir/index.html"), "sub/index.html");
        let root = root.canonicalize().unwrap();

        assert!(within_root(&root, Path::new("a.txt")));
        assert!(within_root(&root, Path::new("inner.txt")));
        assert!(within_root(&root, Path::new("")));
        assert!(!within_root(&root, Path::new("secret.txt")));
        assert!(!within_root(&root, Path::new("out")));
        assert!(!within_root(&root, Path::new("out/secret.txt")));
        assert!(!within_root(&root, Path::new("sub")));
        assert!(!within_root(&root, Path::new("../outside/secret.txt")));
        assert!(!within_root(&root, Path::new("/etc/passwd")));
        assert!(!within_root(&root, Path::new("missing.txt")));
        let _ = std::fs::remove_dir_all(&base);
    }
}
