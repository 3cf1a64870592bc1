//! `drover users`: the users file of `drover serve` through the real binary. A password given on
//! stdin is stored hashed in a file of mode 600; `list` shows names, password set, token count
//! and never a hash; a file others may read is refused with its name.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Output;

use drover_tests::Sandbox;

fn drover(sandbox: &Sandbox, args: &[&str], stdin: &str) -> Output {
    sandbox.run_with_stdin(args, stdin)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_user_added_with_a_password_on_stdin_is_listed_without_hashes_in_a_private_file() {
    let sandbox = Sandbox::new();
    let file = sandbox.path().join("users.toml");
    let file = file.to_str().expect("UTF-8");

    let added = drover(&sandbox, &["users", "add", "alice", "--file", file], "correct horse\n");
    assert!(added.status.success(), "{}", text(&added.stderr));
    assert!(text(&added.stderr).contains("alice: password set in"), "{}", text(&added.stderr));
    let mode = std::fs::metadata(file).expect("the file exists").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let stored = std::fs::read_to_string(file).expect("read");
    assert!(stored.contains("$argon2id$") && !stored.contains("correct horse"), "{stored}");

    let token = drover(&sandbox, &["users", "add", "ci-bot", "--file", file, "--token"], "");
    assert!(token.status.success(), "{}", text(&token.stderr));
    let token = text(&token.stdout);
    assert!(token.trim().starts_with("drover_") && token.trim().len() == 71, "{token}");

    let empty = drover(&sandbox, &["users", "add", "bob", "--file", file], "\n");
    assert_eq!(empty.status.code(), Some(2), "{}", text(&empty.stderr));
    assert!(text(&empty.stderr).contains("the password is empty"), "{}", text(&empty.stderr));

    let listed = drover(&sandbox, &["users", "list", "--file", file], "");
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let listed = text(&listed.stdout);
    let rows: Vec<Vec<&str>> = listed.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows,
        [vec!["NAME", "PASSWORD", "TOKENS"], vec!["alice", "set", "0"], vec!["ci-bot", "-", "1"]],
        "{listed}"
    );
    assert!(!listed.contains("argon2") && !listed.contains("sha256"), "{listed}");

    let json = drover(&sandbox, &["--json", "users", "list", "--file", file], "");
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(
        json,
        serde_json::json!([
            { "name": "alice", "password": true, "tokens": 0 },
            { "name": "ci-bot", "password": false, "tokens": 1 },
        ])
    );

    let removed = drover(&sandbox, &["users", "remove", "ci-bot", "--file", file], "");
    assert!(removed.status.success(), "{}", text(&removed.stderr));
    let again = drover(&sandbox, &["users", "remove", "ci-bot", "--file", file], "");
    assert_eq!(again.status.code(), Some(3), "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("no user `ci-bot`"), "{}", text(&again.stderr));
}

#[test]
fn a_users_file_others_may_read_is_refused_naming_the_file() {
    let sandbox = Sandbox::new();
    let file = sandbox.write("users.toml", "[[user]]\nname = \"alice\"\n");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let listed = drover(&sandbox, &["users", "list", "--file", &file], "");
    assert_eq!(listed.status.code(), Some(1));
    assert!(listed.stdout.is_empty());
    let stderr = text(&listed.stderr);
    assert!(stderr.contains(&format!("the users file {file} is readable by others (mode 644)")), "{stderr}");
    assert!(stderr.contains(&format!("chmod 600 {file}")), "{stderr}");
    // Adding to it is refused the same way, and it is left as it was.
    let added = drover(&sandbox, &["users", "add", "bob", "--file", &file], "pw\n");
    assert_eq!(added.status.code(), Some(1), "{}", text(&added.stderr));
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "[[user]]\nname = \"alice\"\n");
}
