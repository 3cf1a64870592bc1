//! How a password logon's password reaches ssh: never on a command line (any user of this
//! machine can read those), never in an environment variable (readable in `/proc` by this user's
//! other processes and passed on to every child), never in a file others can read.
//!
//! For each call an [`Askpass`] makes a fresh directory private to this user (0700) holding the
//! password in a file only this user can read (0600) and a `#!/bin/sh` helper that prints it.
//! ssh is started with `SSH_ASKPASS=<helper>` and `SSH_ASKPASS_REQUIRE=force` (OpenSSH 8.4 and
//! later), so it asks the helper instead of a terminal; the helper answers only ssh's password
//! prompt (`user@host's password: `) and refuses any other (a password change, a confirmation),
//! which then fails the logon. Dropping the [`Askpass`] removes the directory, file and helper.
//! A Drover killed in the middle of a call cannot: the directory's name carries its process id,
//! and the next password logon on this machine removes the directories of processes that are
//! gone ([`sweep`]).
//!
//! A master connection authenticates once; the calls riding on it never run the helper.

use std::ffi::OsStr;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::PasswordLogon;
use crate::target::process::{self, Marking};

/// The OpenSSH release that added `SSH_ASKPASS_REQUIRE`.
const REQUIRED: (u32, u32) = (8, 4);

/// The askpass helper of one call; removed with its directory on drop.
#[derive(Debug)]
pub(super) struct Askpass {
    /// The private directory; removed with everything in it when dropped.
    _dir: tempfile::TempDir,
    helper: PathBuf,
}

impl Askpass {
    /// Writes the password and its helper into a new private directory, after checking that the
    /// local OpenSSH client honours `SSH_ASKPASS_REQUIRE`. `Err` says why not, without the
    /// password.
    pub(super) async fn new(logon: &PasswordLogon) -> Result<Askpass, String> {
        let password = logon.password.expose();
        if password.contains(['\n', '\r', '\0']) {
            return Err(format!(
                "the password of secret `{}` holds a line break or a NUL character, which ssh cannot \
                 take from an askpass helper",
                logon.secret
            ));
        }
        check_openssh().await?;
        Self::write(password).map_err(|e| format!("cannot prepare the askpass helper for ssh: {e}"))
    }

    fn write(password: &str) -> std::io::Result<Askpass> {
        sweep(&std::env::temp_dir());
        let prefix = format!("{PREFIX}{}-", std::process::id());
        let dir = tempfile::Builder::new().prefix(&prefix).tempdir()?;
        // tempfile makes it 0700 already; say so rather than rely on it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        let secret = dir.path().join("password");
        create(&secret, 0o600)?.write_all(password.as_bytes())?;
        let helper = dir.path().join("askpass");
        create(&helper, 0o700)?.write_all(helper_script(&secret).as_bytes())?;
        Ok(Askpass { _dir: dir, helper })
    }

    /// The variables ssh needs to use the helper.
    pub(super) fn env(&self) -> Vec<(&'static str, &OsStr)> {
        vec![("SSH_ASKPASS", self.helper.as_os_str()), ("SSH_ASKPASS_REQUIRE", OsStr::new("force"))]
    }
}

/// What the name of every helper directory starts with, before the process id of its Drover.
const PREFIX: &str = "drover-askpass-";

/// Removes the helper directories in `temp` that a Drover killed in the middle of a call left
/// behind: those named for a process that no longer exists, if they are directories of this user
/// (not links). Best effort: what cannot be read or removed stays.
fn sweep(temp: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(temp) else { return };
    let uid = super::current_uid();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) =
            name.to_str().and_then(|n| n.strip_prefix(PREFIX)).and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<libc::pid_t>() else { continue };
        let path = entry.path();
        let ours = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && m.uid() == uid);
        if ours && pid > 0 && !alive(pid) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Whether process `pid` exists (it may belong to another user).
fn alive(pid: libc::pid_t) -> bool {
    #[expect(unsafe_code, reason = "kill(pid, 0) only asks whether the process exists")]
    // SAFETY: signal 0 is never delivered; kill has no memory-safety preconditions.
    let found = unsafe { libc::kill(pid, 0) };
    found == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A new file with permissions `mode`, failing if one is there.
fn create(path: &Path, mode: u32) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path)
}

/// The helper: prints the password file for ssh's password prompt (its first argument), and
/// refuses anything else.
fn helper_script(password_file: &Path) -> String {
    let file = password_file.to_string_lossy().replace('\'', r"'\''");
    format!(
        "#!/bin/sh\n\
         # Drover's askpass helper for one ssh call: answers the password prompt only.\n\
         case \"$1\" in\n\
         *\"'s password: \" | *\"'s password:\") exec cat '{file}' ;;\n\
         esac\n\
         exit 1\n"
    )
}

/// Refuses an OpenSSH client older than 8.4: it ignores `SSH_ASKPASS_REQUIRE` and would ask for
/// the password on Drover's terminal, or fail without saying why. Asked once per process; a
/// version it cannot read is let through.
async fn check_openssh() -> Result<(), String> {
    static VERSION: tokio::sync::OnceCell<Option<(u32, u32, String)>> = tokio::sync::OnceCell::const_new();
    let found = VERSION.get_or_init(openssh_version).await;
    match found {
        Some((major, minor, text)) if (*major, *minor) < REQUIRED => Err(format!(
            "a password logon needs OpenSSH {}.{} or later on this machine (for SSH_ASKPASS_REQUIRE); \
             `ssh -V` says {text}",
            REQUIRED.0, REQUIRED.1
        )),
        _ => Ok(()),
    }
}

async fn openssh_version() -> Option<(u32, u32, String)> {
    let mut ssh = tokio::process::Command::new("ssh");
    ssh.arg("-V");
    let out = process::run(ssh, None, Duration::from_secs(10), 4096, Marking::None).await.ok()?;
    // `ssh -V` writes to stderr: `OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.13 30 Jan 2024`.
    let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let (major, minor) = parse_version(&text)?;
    Some((major, minor, text))
}

/// Major and minor release of `OpenSSH_9.2p1 …`.
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let rest = text.strip_prefix("OpenSSH_")?;
    let (major, rest) = rest.split_once('.')?;
    let minor: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretValue;

    fn logon(password: &str) -> PasswordLogon {
        PasswordLogon { secret: "drbts-admin".into(), password: SecretValue::new(password) }
    }

    fn ask(helper: &Path, prompt: &str) -> std::process::Output {
        std::process::Command::new(helper).arg(prompt).output().expect("the helper runs")
    }

    #[tokio::test]
    async fn the_helper_prints_the_password_for_the_password_prompt_only() {
        let askpass = Askpass::new(&logon("it's a $ecret \"pw\" ë")).await.expect("prepared");
        let env = askpass.env();
        assert_eq!(env[1], ("SSH_ASKPASS_REQUIRE", OsStr::new("force")));
        let helper = Path::new(env[0].1);
        assert_eq!(env[0].0, "SSH_ASKPASS");
        let out = ask(helper, "admin@10.1.0.11's password: ");
        assert!(out.status.success());
        assert_eq!(out.stdout, "it's a $ecret \"pw\" ë".as_bytes());
        for other in [
            "Enter admin@10.1.0.11's old password: ",
            "Are you sure you want to continue connecting (yes/no)? ",
        ] {
            let out = ask(helper, other);
            assert!(!out.status.success(), "{other}");
            assert!(out.stdout.is_empty(), "{other}");
        }
    }

    #[tokio::test]
    async fn the_password_is_private_and_gone_after_the_call() {
        let askpass = Askpass::new(&logon("pw")).await.expect("prepared");
        let dir = Path::new(askpass.env()[0].1).parent().expect("in its directory").to_path_buf();
        let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("password")), 0o600);
        assert_eq!(mode(&dir.join("askpass")), 0o700);
        let script = std::fs::read_to_string(dir.join("askpass")).expect("helper");
        assert!(script.starts_with("#!/bin/sh\n") && !script.contains("pw'"), "{script}");
        drop(askpass);
        assert!(!dir.exists(), "removed with its password");
    }

    #[test]
    fn what_a_killed_drover_left_is_swept_and_nothing_else() {
        let temp = tempfile::tempdir().expect("temporary directory");
        let make = |name: &str| {
            let dir = temp.path().join(name);
            std::fs::create_dir(&dir).expect("created");
            std::fs::write(dir.join("password"), "pw").expect("written");
            dir
        };
        // A process id no process has: above the kernel's limit.
        let gone = make("drover-askpass-2147483646-abc");
        let mine = make(&format!("drover-askpass-{}-abc", std::process::id()));
        let other = make("drover-other-2147483646");
        let target = make("target");
        let link = temp.path().join("drover-askpass-2147483645-link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        sweep(temp.path());
        assert!(!gone.exists(), "a dead process's directory is removed");
        assert!(mine.exists() && other.exists(), "a live one's and other names stay");
        assert!(target.join("password").exists() && link.exists(), "a link is not followed");
    }

    #[tokio::test]
    async fn a_password_ssh_cannot_take_is_refused_without_showing_it() {
        let e = Askpass::new(&logon("abc\ndef")).await.expect_err("refused");
        assert!(e.contains("secret `drbts-admin`") && !e.contains("abc"), "{e}");
    }

    #[test]
    fn openssh_versions_are_read() {
        assert_eq!(parse_version("OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.13"), Some((9, 2)));
        assert_eq!(parse_version("OpenSSH_8.4p1, OpenSSL 1.1.1k"), Some((8, 4)));
        assert_eq!(parse_version("OpenSSH_for_Windows_8.1p1"), None);
        assert!((7, 4) < REQUIRED && (8, 10) > REQUIRED);
    }
}
