//! What the vault writes to disk is its owner's only: every file `0600`, every directory it
//! creates `0700`, whatever the umask it is started with (a plaintext export at `0644` could be
//! read by every local user).

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::kit::disk::passphrase_file;
use crate::kit::owner::PASSPHRASE;
use crate::kit::server::spawn_server;

/// `vrm-vault ARGS` run under `umask 022`, the common default, through the shell.
fn under_umask_022(args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "umask 022 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_vrm-vault"))
        .args(args);
    cmd
}

fn run(args: &[&str]) -> String {
    let out = under_umask_022(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// Every file and directory below `dir`, and `dir` itself, with its mode.
fn modes_below(dir: &Path) -> Vec<(PathBuf, u32, bool)> {
    let mut out = vec![(dir.to_path_buf(), mode(dir), true)];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(modes_below(&path));
        } else {
            out.push((path.clone(), mode(&path), false));
        }
    }
    out
}

fn assert_private(dir: &Path) {
    let open: Vec<String> = modes_below(dir)
        .into_iter()
        .filter(|(_, mode, is_dir)| *mode != if *is_dir { 0o700 } else { 0o600 })
        .map(|(path, mode, _)| format!("{} {mode:o}", path.display()))
        .collect();
    assert!(open.is_empty(), "not private under umask 022: {open:#?}");
}

#[tokio::test]
async fn everything_written_under_umask_022_is_private() {
    let root = tempfile::tempdir().unwrap();
    let inputs = tempfile::tempdir().unwrap();
    let pass = passphrase_file(inputs.path(), PASSPHRASE);
    let pass = pass.to_str().unwrap();
    // The vault creates its data directory and the directory above it.
    let data = root.path().join("vault").join("data");
    let data_arg = data.to_str().unwrap();
    let out = root.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o700)).unwrap();
    let at = |name: &str| out.join(name).to_str().unwrap().to_owned();

    run(&["init", "--data-dir", data_arg, "--passphrase-file", pass]);
    run(&[
        "unlock-key",
        "create",
        "--data-dir",
        data_arg,
        "--passphrase-file",
        pass,
        "--out",
        &at("unlock.key"),
    ]);
    // The server, started with the unlock key, writes to its store.
    {
        let logs = tempfile::tempdir().unwrap();
        let mut serve = under_umask_022(&[
            "serve",
            "--data-dir",
            data_arg,
            "--listen",
            "127.0.0.1:0",
            "--unlock-key-file",
            &at("unlock.key"),
        ]);
        let (mut child, addr) = spawn_server(&mut serve, &logs.path().join("stderr.log"));
        let ready = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
        assert_eq!(ready.status(), 200);
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        assert!(child.wait().unwrap().success());
    }
    run(&[
        "export",
        "--data-dir",
        data_arg,
        "--passphrase-file",
        pass,
        "--out",
        &at("export.json"),
    ]);
    // An export over an existing file left readable by all is narrowed before it is written.
    std::fs::write(out.join("old-export.json"), b"{}").unwrap();
    std::fs::set_permissions(
        out.join("old-export.json"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    run(&[
        "export",
        "--data-dir",
        data_arg,
        "--passphrase-file",
        pass,
        "--out",
        &at("old-export.json"),
    ]);
    run(&[
        "backup",
        "--data-dir",
        data_arg,
        "--passphrase-file",
        pass,
        "--out",
        &at("backup.bin"),
    ]);
    let restored = root.path().join("restored");
    run(&[
        "restore",
        "--data-dir",
        restored.to_str().unwrap(),
        "--backup",
        &at("backup.bin"),
        "--passphrase-file",
        pass,
    ]);

    let exported = std::fs::read_to_string(out.join("old-export.json")).unwrap();
    assert!(exported.contains("\"audit\""), "the export was written");
    assert_private(&out);
    assert_private(&root.path().join("vault"));
    assert_private(&restored);
    // The data directories hold the store's files too, not just the key file.
    let files = modes_below(&data).into_iter().filter(|f| !f.2).count();
    assert!(files > 3, "{:#?}", modes_below(&data));
}
