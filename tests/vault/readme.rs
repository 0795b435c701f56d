//! The README's examples run as written: every fenced block whose info string is `sh example` is
//! taken from README.md, in order, and run as one bash script (with `set -euo pipefail`, so a
//! refused call stops it) against a fresh vault under each shipped terms template in
//! `policies/`. The only change made to the text is the vault's address: `localhost:8080`
//! becomes the test server's. The examples use curl and jq, as a reader would.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::kit::brand::publish;
use crate::kit::owner::PASSPHRASE;
use crate::support::ready_vault;

/// The example blocks of the README, in order.
fn examples() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match &mut current {
            None if line.trim_end() == "```sh example" => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    assert!(current.is_none(), "an example block is not closed");
    blocks
}

/// The shipped terms templates (every JSON document of `policies/` that is not a schema).
fn templates() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut found: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && !p.to_string_lossy().ends_with(".schema.json")
        })
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let doc = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (name, doc)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[tokio::test]
async fn the_readme_examples_run_under_every_shipped_template() {
    for tool in ["bash", "curl", "jq"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap();
        assert!(
            found.status.success(),
            "the README examples need {tool} (.ci/run installs it)"
        );
    }
    let blocks = examples();
    // The owner's API, the brand's walk to a token, a grant read both ways, and intents.
    assert!(blocks.len() >= 4, "{} example blocks", blocks.len());
    let templates = templates();
    let names: Vec<&str> = templates.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["pdc-intent", "sd-base", "sd-base-dp"], "{names:?}");

    for (name, template) in &templates {
        let (_dir, app, owner) = ready_vault().await;
        let (status, body) = publish(&app, &owner, template).await;
        assert!(matches!(status, 200 | 201), "{name}: {body}");
        let address = app.base.trim_start_matches("http://").to_owned();
        let script = format!(
            "set -euo pipefail\n{}",
            blocks.join("\n").replace("localhost:8080", &address)
        );
        let out = tokio::task::spawn_blocking(move || {
            Command::new("bash")
                .args(["-c", &script])
                .env("PASSPHRASE", PASSPHRASE)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "the README examples failed under {name}:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
        // What the examples promise: the brand read the shared email both ways, and (only under
        // intentcasting terms) received the intent.
        assert!(
            stdout.contains(r#""fields":{"contact.email":"ana@example.org"}"#),
            "{name}: {stdout}"
        );
        assert!(
            stdout.contains(r#""category":"pd:EmailAddress""#),
            "{name}: {stdout}"
        );
        assert_eq!(
            stdout.contains("vrm.intent.created.v1"),
            *name == "pdc-intent",
            "{name}: {stdout}"
        );
    }
}
