//! Static directories never serve what lies outside their root: a symbolic
//! link out of it (to a file or a directory) answers 404 like a missing file,
//! `..` and its percent-encoded forms are refused, and links that stay inside
//! the root still work.

mod common;

use std::path::{Path, PathBuf};

use common::{Proxy, bounded, http};

/// A temp directory tree, removed on drop: `root/` (served) and `outside/`.
struct Tree(PathBuf);

impl Tree {
    fn new() -> Tree {
        let base = std::env::temp_dir().join(format!(
            "sockjsproxy-static-{}-{}",
            std::process::id(),
            common::free_port()
        ));
        let (root, outside) = (base.join("root"), base.join("outside"));
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::create_dir_all(outside.join("private")).unwrap();
        std::fs::write(root.join("hello.txt"), "inside").unwrap();
        std::fs::write(outside.join("secret.txt"), "SECRET").unwrap();
        std::fs::write(outside.join("private/index.html"), "SECRET INDEX").unwrap();
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, root.join(name)).unwrap();
        };
        link(&outside.join("secret.txt"), "secret.txt");
        link(&outside, "outside-dir");
        link(&outside.join("private"), "private");
        link(&root.join("hello.txt"), "alias.txt");
        link(Path::new("../hello.txt"), "docs/up.txt");
        Tree(base)
    }

    fn root(&self) -> String {
        self.0.join("root").display().to_string()
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn serve(tree: &Tree) -> Proxy {
    let root = tree.root();
    Proxy::with_args(
        "",
        move || {
            ["--static-path", &root, "--static-url", "/files"]
                .map(String::from)
                .to_vec()
        },
        "info",
    )
    .await
}

#[tokio::test]
async fn a_symlink_out_of_the_root_answers_404_and_one_inside_it_is_served() {
    bounded(async {
        let tree = Tree::new();
        let proxy = serve(&tree).await;
        let get = |path: &'static str| http::get(proxy.http_port, path);

        let file = get("/files/hello.txt").await;
        assert_eq!((file.status, file.text().as_str()), (200, "inside"));
        let alias = get("/files/alias.txt").await;
        assert_eq!((alias.status, alias.text().as_str()), (200, "inside"));
        let up = get("/files/docs/up.txt").await;
        assert_eq!((up.status, up.text().as_str()), (200, "inside"));

        for path in [
            "/files/secret.txt",
            "/files/outside-dir/secret.txt",
            "/files/outside-dir/",
            "/files/private/",
            "/files/private/index.html",
        ] {
            let r = get(path).await;
            assert_eq!(r.status, 404, "{path}: {}", r.text());
            assert!(!r.text().contains("SECRET"), "{path}");
        }
    })
    .await;
}

#[tokio::test]
async fn dot_dot_and_its_encodings_never_leave_the_root() {
    bounded(async {
        let tree = Tree::new();
        let proxy = serve(&tree).await;
        for path in [
            "/files/../outside/secret.txt",
            "/files/docs/../../outside/secret.txt",
            "/files/%2e%2e/outside/secret.txt",
            "/files/%2E%2E/outside/secret.txt",
            "/files/docs/%2e%2e%2f%2e%2e%2foutside%2fsecret.txt",
            "/files/..%2foutside%2fsecret.txt",
            "/files/%2e%2e%5coutside%5csecret.txt",
            "/files//etc/passwd",
            "/files/%2fetc%2fpasswd",
        ] {
            let r = http::get(proxy.http_port, path).await;
            assert!(
                matches!(r.status, 400 | 404),
                "{path}: {} {}",
                r.status,
                r.text()
            );
            let body = r.text();
            assert!(
                !body.contains("SECRET") && !body.contains("root:"),
                "{path}"
            );
        }
    })
    .await;
}
