//! A throwaway OpenSSH server on 127.0.0.1 for transport tests: its own host key, one authorized
//! client key (and one that is not), its own configuration, log and known-hosts file, all in a
//! temporary directory. Tests never skip: without `/usr/sbin/sshd` they fail and say how to get
//! it (`cargo xtask test` installs `openssh-server`).

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// How long sshd may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`Sshd::start_with`] adds to or changes in the base configuration.
#[derive(Debug, Clone)]
pub struct SshdConfig {
    /// Password logons (checked against the system's accounts) besides keys.
    pub password_authentication: bool,
    /// `ExposeAuthInfo`: a session's `SSH_USER_AUTH` names a file listing how it logged on.
    pub expose_auth_info: bool,
    /// The sftp subsystem.
    pub sftp: bool,
    /// Lines appended last, such as `Match LocalPort` blocks with a `ForceCommand`.
    pub tail: String,
}

impl Default for SshdConfig {
    /// Keys only, sftp on, nothing appended.
    fn default() -> Self {
        SshdConfig {
            password_authentication: false,
            expose_auth_info: false,
            sftp: true,
            tail: String::new(),
        }
    }
}

/// A running `sshd -D`, killed and reaped on drop.
pub struct Sshd {
    child: Child,
    port: u16,
    user: String,
    dir: tempfile::TempDir,
}

impl Sshd {
    /// Starts a server on a free port of 127.0.0.1 and waits until it accepts connections.
    pub fn start() -> Sshd {
        Sshd::start_with(&free_ports(1), &SshdConfig::default())
    }

    /// Starts a server listening on each of `ports` of 127.0.0.1 (the first is [`Sshd::port`]),
    /// configured by `config`, and waits until every port accepts connections.
    pub fn start_with(ports: &[u16], config: &SshdConfig) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "sshd not found at /usr/sbin/sshd: run `cargo xtask test`, which installs openssh-server"
        );
        // Debian's sshd refuses to start without its privilege separation directory.
        fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let dir = tempfile::Builder::new().prefix("drover-sshd-").tempdir().expect("temporary directory");
        let d = dir.path();
        for key in ["host_key", "client_key", "wrong_key"] {
            keygen(&d.join(key));
        }
        fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).expect("write authorized_keys");
        let yes_no = |on: bool| if on { "yes" } else { "no" };
        let mut text = String::new();
        for port in ports {
            text.push_str(&format!("ListenAddress 127.0.0.1:{port}\n"));
        }
        text.push_str(&format!(
            "HostKey {host_key}\n\
             AuthorizedKeysFile {authorized}\n\
             PidFile {pid}\n\
             StrictModes no\n\
             UsePAM no\n\
             PasswordAuthentication {password}\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin yes\n\
             ExposeAuthInfo {expose}\n",
            host_key = d.join("host_key").display(),
            authorized = d.join("authorized_keys").display(),
            pid = d.join("sshd.pid").display(),
            password = yes_no(config.password_authentication),
            expose = yes_no(config.expose_auth_info),
        ));
        if config.sftp {
            text.push_str("Subsystem sftp internal-sftp\n");
        }
        // Match blocks last: everything after a Match line belongs to it.
        text.push_str(&config.tail);
        fs::write(d.join("sshd_config"), text).expect("write sshd_config");
        let log = fs::File::create(d.join("sshd.log")).expect("create sshd.log");
        // sshd re-executes itself, so it must be started by its absolute path.
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let host_key = fs::read_to_string(d.join("host_key.pub")).expect("read host_key.pub");
        let known: String = ports.iter().map(|port| format!("[127.0.0.1]:{port} {host_key}")).collect();
        fs::write(d.join("known_hosts"), known).expect("write known_hosts");
        let mut sshd = Sshd { child, port: ports[0], user: current_user(), dir };
        for &port in ports {
            sshd.wait_until_listening(port);
        }
        sshd
    }

    fn wait_until_listening(&mut self, port: u16) {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("poll sshd") {
                panic!("sshd exited with {status} before accepting connections:\n{}", self.log());
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return;
            }
            if started.elapsed() > START_TIMEOUT {
                panic!(
                    "sshd did not accept connections on {address} within {START_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user to log in as: the one running the tests.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The private key it accepts.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// A private key it does not accept.
    pub fn wrong_key(&self) -> PathBuf {
        self.dir.path().join("wrong_key")
    }

    /// A known-hosts file naming its host key for `[127.0.0.1]:port`.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// Its temporary directory. Put ssh control directories below it: dropping the server also
    /// closes the master connections whose sockets are there.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What sshd wrote to its log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Each master connection keeps a session process of sshd alive; closing the masters
        // ends those too.
        for socket in sockets_below(self.dir.path()) {
            let _ = Command::new("ssh")
                .args(["-F", "/dev/null", "-o"])
                .arg(format!("ControlPath={}", socket.display()))
                .args(["-O", "exit", "127.0.0.1"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "drover-test", "-f"])
        .arg(path)
        .output()
        .expect("run ssh-keygen (openssh-client)");
    assert!(out.status.success(), "ssh-keygen failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// `n` distinct ports nobody listens on right now: bound on 127.0.0.1 together, then released.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> =
        (0..n).map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0")).collect();
    listeners.iter().map(|l| l.local_addr().expect("a bound address").port()).collect()
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn sockets_below(dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => pending.push(entry.path()),
                Ok(t) if t.is_socket() => found.push(entry.path()),
                _ => {}
            }
        }
    }
    found
}
