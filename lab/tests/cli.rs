//! The built `drover-lab` binary, driven as Drover's command transport drives it: through the
//! `command` prefixes of the inventory that `drover-lab init` writes. A full DR join of DRBTS01,
//! its undoing (a host instance removed, the server unconfigured), then the failure paths (SQL
//! unreachable, a long computer name, unsupported commands).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use drover_lab::state::StateFile;
use drover_lab::unix_status;

const BIN: &str = env!("CARGO_BIN_EXE_drover-lab");
const JOIN_XML: &str = include_str!("data/join.xml");
const CONFIGURATION: &str = r"C:\Program Files (x86)\Microsoft BizTalk Server\Configuration.exe";
const XML: &str = r"C:\Drover\join.xml";
const LOG: &str = r"C:\Drover\Logs\join.log";
const NOW: &str = "2026-11-22T10:15:01Z";

/// What a command printed and its exit status.
#[derive(Debug)]
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(argv: &[String], stdin: &[u8]) -> Ran {
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .env(drover_lab::env::DROVER_LAB_NOW, NOW)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start drover-lab");
    child.stdin.take().expect("stdin").write_all(stdin).expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    Ran {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A lab in a temporary folder and the inventory that reaches it.
struct Lab {
    _dir: tempfile::TempDir,
    state: PathBuf,
    inventory: toml::Table,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("lab.json");
        let inventory_path = dir.path().join("inventory.toml");
        let out = lab(&["init", "--state", path(&state), "--inventory", path(&inventory_path)]);
        assert_eq!((out.code, out.stderr.as_str()), (0, ""));
        let text = std::fs::read_to_string(&inventory_path).expect("inventory written");
        let inventory = toml::from_str(&text).expect("inventory is TOML");
        Lab { _dir: dir, state, inventory }
    }

    /// Runs `argv` on `server` through the inventory's command prefix, as Drover does.
    fn on(&self, server: &str, argv: &[&str]) -> Ran {
        self.on_with_input(server, argv, b"")
    }

    fn on_with_input(&self, server: &str, argv: &[&str], stdin: &[u8]) -> Ran {
        let prefix = self.inventory["servers"][server]["command"].as_array().expect("command prefix");
        let mut words: Vec<String> = prefix.iter().map(|w| w.as_str().expect("word").to_owned()).collect();
        words.extend(argv.iter().map(|w| (*w).to_owned()));
        run(&words, stdin)
    }

    fn lab(&self, args: &[&str]) -> Ran {
        let (command, rest) = args.split_first().expect("a command");
        let mut words = vec![*command, "--state", path(&self.state)];
        words.extend_from_slice(rest);
        lab(&words)
    }

    /// Writes the join XML to `server` and runs `Configuration.exe`; exit code and log.
    fn join(&self, server: &str) -> (i32, String) {
        let write =
            self.on_with_input(server, &["sh", "-c", r#"cat > "$1""#, "sh", XML], JOIN_XML.as_bytes());
        assert_eq!((write.code, write.stderr.as_str()), (0, ""));
        let out = self.on(server, &[CONFIGURATION, "/S", XML, "/L", LOG]);
        let log = self.on(server, &["cat", LOG]);
        assert_eq!(log.code, 0, "{log:?}");
        (out.code, log.stdout)
    }
}

fn lab(args: &[&str]) -> Ran {
    let mut words = vec![BIN.to_owned()];
    words.extend(args.iter().map(|a| (*a).to_owned()));
    run(&words, b"")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temporary path")
}

fn powershell(script: &str) -> Vec<&str> {
    vec!["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", script]
}

const HOST_INSTANCES: &str = "Get-CimInstance -Namespace root/MicrosoftBizTalkServer -ClassName MSBTS_HostInstance | Select-Object Name, HostName, HostType, RunningServer, Logon, ConfigurationState, IsDisabled, ServiceState | ConvertTo-Json -Compress";

#[test]
fn init_writes_an_inventory_of_absolute_prefixes_and_refuses_to_overwrite() {
    let lab = Lab::new();
    let prefix = &lab.inventory["servers"]["DRBTS01"]["command"];
    let state = std::path::absolute(&lab.state).expect("absolute");
    let expected: Vec<toml::Value> = [BIN, "exec", "--state", path(&state), "DRBTS01", "--"]
        .iter()
        .map(|w| toml::Value::String((*w).to_owned()))
        .collect();
    assert_eq!(prefix.as_array(), Some(&expected));
    assert!(Path::new(BIN).is_absolute());
    assert_eq!(lab.inventory["servers"]["PRDSSO01"]["vars"]["role"].as_str(), Some("sso-master"));
    assert_eq!(lab.inventory["servers"]["PRDSQL01"]["site"].as_str(), Some("prod"));
    assert_eq!(lab.inventory["groups"]["prod-runtime"].as_array().map(Vec::len), Some(2));

    let again = lab.lab(&["init"]);
    assert_eq!(again.code, 1);
    assert_eq!(
        again.stderr,
        format!("drover-lab: {} already exists (use --force to replace it)\n", lab.state.display())
    );
    assert_eq!(lab.lab(&["init", "--force"]).code, 0);
}

#[test]
fn a_dr_server_joins_the_group_and_is_prepared() {
    let lab = Lab::new();

    // The join XML goes to the server through the transport's file call, and comes back.
    let (code, log) = lab.join("DRBTS01");
    assert_eq!(lab.on("DRBTS01", &["cat", XML]).stdout, JOIN_XML);
    assert_eq!(code, 0, "{log}");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 15, "three lines for each of SSO, WMI, Runtime, RulesEngine and BAMTools");
    assert_eq!(
        lines[0],
        "[2026-11-22 10:15:01:0000 Info Configuration Framework]Building feature XML for: SSOServer,Engine"
    );
    assert_eq!(
        lines[11],
        "[2026-11-22 10:15:01:0000 Info Configuration Framework]Configuring feature: RulesEngine"
    );

    // The 32-bit Configuration.exe wrote the membership in the 32-bit view: `/reg:32` reads it
    // (reg prints the key it read), the 64-bit view has none.
    let admin = r"HKLM\SOFTWARE\Microsoft\BizTalk Server\3.0\Administration";
    let reg = lab.on("DRBTS01", &["reg", "query", admin, "/v", "MgmtDBServer", "/reg:32"]);
    assert_eq!(reg.code, 0);
    assert_eq!(
        reg.stdout,
        "\nHKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\Microsoft\\BizTalk Server\\3.0\\Administration\n    MgmtDBServer    REG_SZ    PRDSQL01\n\n"
    );
    assert_eq!(
        lab.on("DRBTS01", &["reg", "query", admin, "/v", "MgmtDBServer"]).code,
        1,
        "not in the 64-bit view"
    );
    let entsso = lab.on("DRBTS01", &["sc.exe", "query", "ENTSSO"]);
    assert!(entsso.stdout.contains("STATE              : 4  RUNNING\n"), "{entsso:?}");

    // A host instance, created disabled with the WMI script, the password in its standard input.
    let script = drover_lab::programs::powershell::create_host_instance_script(
        "DRBTS01",
        "SendHost",
        r"CONTOSO\svc-bts",
        true,
    );
    let created = lab.on_with_input("DRBTS01", &powershell(&script), b"it's s3cret");
    assert_eq!((created.code, created.stderr.as_str()), (0, ""));
    let instances = lab.on("DRBTS01", &powershell(HOST_INSTANCES));
    assert_eq!(instances.code, 0);
    assert!(instances.stdout.ends_with(
        ",{\"Name\":\"Microsoft BizTalk Server SendHost DRBTS01\",\"HostName\":\"SendHost\",\"HostType\":1,\"RunningServer\":\"DRBTS01\",\"Logon\":\"CONTOSO\\\\svc-bts\",\"ConfigurationState\":1,\"IsDisabled\":true,\"ServiceState\":1}]\n"
    ), "{}", instances.stdout);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&instances.stdout).expect("a JSON array");
    assert_eq!(rows.len(), 6, "five production instances (one of the isolated host) and the new one");
    let again = lab.on_with_input("DRBTS01", &powershell(&script), b"it's s3cret");
    assert_eq!(again.code, 1);
    assert_eq!(
        again.stderr,
        "Exception calling \"Install\" : \"Another object with the same key properties already exists.\"\n"
    );

    // Its service, disabled, does not start.
    let config = lab.on("DRBTS01", &["sc.exe", "config", "BTSSvc$SendHost", "start=", "disabled"]);
    assert_eq!((config.code, config.stdout.as_str()), (0, "[SC] ChangeServiceConfig SUCCESS\n"));
    let start = lab.on("DRBTS01", &["sc.exe", "start", "BTSSvc$SendHost"]);
    assert_eq!(start.code, i32::from(unix_status(1058)));
    assert_eq!(
        start.stdout,
        "[SC] StartService FAILED 1058:\n\nThe service cannot be started, either because it is disabled or because it has no enabled devices associated with it.\n"
    );
    let qc = lab.on("DRBTS01", &["sc.exe", "qc", "BTSSvc$SendHost"]);
    assert!(qc.stdout.contains("START_TYPE         : 4   DISABLED\n"), "{qc:?}");

    // The staged application goes into the GAC.
    let probe = r#"Get-ChildItem -LiteralPath "$env:windir\Microsoft.NET\assembly" -Directory -Filter 'GAC_*' | ForEach-Object { Join-Path $_.FullName 'Contoso.Orders.Maps' } | Where-Object { Test-Path -LiteralPath $_ } | Get-ChildItem -Filter 'Contoso.Orders.Maps.dll' -Recurse | Select-Object -ExpandProperty FullName"#;
    let gac = |lab: &Lab| lab.on("DRBTS01", &powershell(probe)).stdout;
    assert_eq!(gac(&lab), "");
    let msi = lab.on(
        "DRBTS01",
        &["msiexec", "/i", r"C:\Staging\Contoso.Orders.msi", "/qn", r"TARGETDIR=C:\Apps\Contoso.Orders"],
    );
    assert_eq!((msi.code, msi.stdout.as_str(), msi.stderr.as_str()), (0, "", ""));
    assert_eq!(
        gac(&lab),
        "C:\\Windows\\Microsoft.NET\\assembly\\GAC_MSIL\\Contoso.Orders.Maps\\v4.0_1.0.0.0__31bf3856ad364e35\\Contoso.Orders.Maps.dll\r\n"
    );

    // The state file holds it all.
    let shown = lab.lab(&["show", "--json"]);
    let state: serde_json::Value = serde_json::from_str(&shown.stdout).expect("JSON state");
    assert_eq!(state["group"]["members"], serde_json::json!(["PRDBTS01", "PRDBTS02", "DRBTS01"]));
    assert!(lab.lab(&["show"]).stdout.contains("members              PRDBTS01, PRDBTS02, DRBTS01\n"));
}

#[test]
fn an_unreachable_sql_server_fails_the_join_until_cleared() {
    let lab = Lab::new();
    assert_eq!(lab.lab(&["fault", "set", "sql-unreachable"]).code, 0);
    let (code, log) = lab.join("DRBTS02");
    assert_eq!(code, 1);
    // The one public capture of a failed configuration's SQL error, word for word.
    assert_eq!(
        log,
        "[10:15:01 Error ConfigHelper] [DBNETLIB][ConnectionOpen (Connect()).]SQL Server does not exist or access denied.\n\
         [10:15:01 Error ConfigHelper] SQL error: 08001 Native error code: 17\n\
         [10:15:01 Error ConfigHelper] c:\\depotsetupv2\\private\\common\\configwizard\\confighelper\\sqlhelper.cpp(1176): FAILED hr = 80004005\n"
    );
    let probe = ["sqlcmd", "-S", "PRDSQL01", "-E", "-d", "BizTalkMgmtDb", "-Q", "select 1", "-h", "-1"];
    let sqlcmd = lab.on("DRBTS02", &probe);
    assert_eq!(sqlcmd.code, 1);
    assert_eq!(
        sqlcmd.stderr,
        "Sqlcmd: Error: Microsoft ODBC Driver 17 for SQL Server : Login timeout expired.\n"
    );
    let namespace = lab.on("DRBTS02", &powershell(HOST_INSTANCES));
    assert_eq!(namespace.stderr, "Get-CimInstance : Invalid namespace \"root/MicrosoftBizTalkServer\"\n");

    assert_eq!(lab.lab(&["fault", "clear", "all"]).code, 0);
    assert_eq!(lab.on("DRBTS02", &probe).stdout, "          1\n\n(1 rows affected)\n");
    assert_eq!(lab.join("DRBTS02").0, 0);
}

#[test]
fn what_a_preparation_created_is_undone_in_reverse_and_recorded() {
    let lab = Lab::new();
    assert_eq!(lab.join("DRBTS01").0, 0);
    let create = drover_lab::programs::powershell::create_host_instance_script(
        "DRBTS01",
        "SendHost",
        r"CONTOSO\svc-bts",
        true,
    );
    assert_eq!(lab.on_with_input("DRBTS01", &powershell(&create), b"pw").code, 0);

    // A hardening policy refuses changes to the new service: a later step fails there.
    let denied = lab.lab(&["fault", "set", "access-denied", "DRBTS01", "BTSSvc$SendHost"]);
    assert_eq!((denied.code, denied.stderr.as_str()), (0, ""));
    let config = lab.on("DRBTS01", &["sc.exe", "config", "BTSSvc$SendHost", "start=", "disabled"]);
    assert_eq!(config.code, i32::from(unix_status(5)));
    assert_eq!(config.stdout, "[SC] OpenService FAILED 5:\n\nAccess is denied.\n");

    // The host instance goes first (uninstall, unmap), then the server leaves the group.
    let remove =
        drover_lab::programs::powershell::uninstall::remove_host_instance_script("DRBTS01", "SendHost");
    let removed = lab.on("DRBTS01", &powershell(&remove));
    assert_eq!((removed.code, removed.stdout.as_str(), removed.stderr.as_str()), (0, "", ""));
    let rows = lab.on("DRBTS01", &powershell(HOST_INSTANCES)).stdout;
    assert!(!rows.contains("DRBTS01"), "{rows}");
    let service = lab.on("DRBTS01", &["sc.exe", "query", "BTSSvc$SendHost"]);
    assert_eq!(service.code, i32::from(unix_status(1060)), "{service:?}");
    let unjoin = lab.on("DRBTS01", &[CONFIGURATION, "/U", "/L", LOG]);
    assert_eq!(unjoin.code, 0);

    let shown = lab.lab(&["show", "--json"]);
    let state: serde_json::Value = serde_json::from_str(&shown.stdout).expect("JSON state");
    assert_eq!(state["uninstalls"], serde_json::json!(["Microsoft BizTalk Server SendHost DRBTS01"]));
    assert_eq!(state["unjoins"], serde_json::json!(["DRBTS01"]));
    assert_eq!(state["joins"], serde_json::json!(["DRBTS01"]));
    assert_eq!(state["group"]["members"], serde_json::json!(["PRDBTS01", "PRDBTS02"]));
    assert!(
        lab.lab(&["show"]).stdout.contains("faults                 access-denied DRBTS01 BTSSvc$SendHost\n")
    );
}

#[test]
fn a_computer_name_over_15_characters_is_refused() {
    let lab = Lab::new();
    // A replacement computer with a long name (the inventory only warns about it).
    StateFile::new(&lab.state)
        .update(|state| {
            let server = state.servers["DRBTS03"].clone();
            state.servers.insert("DRBTS03REPLACEMENT".into(), server);
        })
        .expect("add a server");
    let mut words: Vec<String> =
        [BIN, "exec", "--state", path(&lab.state), "DRBTS03REPLACEMENT", "--"].map(String::from).to_vec();
    let write = {
        let mut w = words.clone();
        w.extend(["sh", "-c", r#"cat > "$1""#, "sh", XML].map(String::from));
        run(&w, JOIN_XML.as_bytes())
    };
    assert_eq!(write.code, 0);
    words.extend([CONFIGURATION, "/S", XML, "/L", LOG, "/noprogressbar"].map(String::from));
    assert_eq!(run(&words, b"").code, 1);
    let log = lab.lab(&["exec", "DRBTS03REPLACEMENT", "--", "cat", LOG]);
    assert_eq!(
        log.stdout,
        "[10:15:01 Error ConfigHelper] The computer name DRBTS03REPLACEMENT is longer than 15 characters.\n"
    );
}

#[test]
fn unsupported_commands_and_unknown_servers_fail_with_9009() {
    let lab = Lab::new();
    let out = lab.on("DRBTS01", &["robocopy", r"C:\a", r"C:\b"]);
    assert_eq!(out.code, i32::from(unix_status(9009)));
    assert_eq!(out.code, 49, "9009 folded into a Unix exit status");
    assert_eq!(
        out.stderr,
        "'robocopy' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n",
        "a program the servers do not have: cmd.exe's answer"
    );
    let out = lab.on("DRBTS01", &["sc.exe", "query", "ENTSSO", "extra"]);
    assert_eq!(
        out.stderr,
        "drover-lab: unsupported command: [\"sc.exe\", \"query\", \"ENTSSO\", \"extra\"]\n"
    );
    let out = lab.on("DRBTS01", &powershell("Get-Service"));
    assert!(out.stderr.starts_with("drover-lab: unsupported command: [\"powershell.exe\", "), "{out:?}");
    let out = lab.lab(&["exec", "NOSUCH01", "--", "cat", "x"]);
    assert_eq!((out.code, out.stderr.as_str()), (49, "drover-lab: no server NOSUCH01 in this lab\n"));
    let out = lab.lab(&["exec", "DRBTS01"]);
    assert_eq!(out.code, 49, "no program at all");
}

#[test]
fn parallel_execs_are_serialised() {
    let lab = Lab::new();
    std::thread::scope(|scope| {
        for i in 0..6 {
            let lab = &lab;
            scope.spawn(move || {
                let path = format!(r"C:\Parallel\{i}.txt");
                let out = lab.on_with_input(
                    "DRBTS01",
                    &["sh", "-c", r#"cat > "$1""#, "sh", &path],
                    i.to_string().as_bytes(),
                );
                assert_eq!(out.code, 0, "{out:?}");
            });
        }
    });
    for i in 0..6 {
        assert_eq!(
            lab.on("DRBTS01", &["cat", &format!(r"C:\Parallel\{i}.txt")]).stdout,
            i.to_string(),
            "no write lost"
        );
    }
}

#[test]
fn a_broken_state_file_is_a_lab_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("lab.json");
    std::fs::write(&state, "{").expect("write");
    let out = lab(&["exec", "--state", path(&state), "DRBTS01", "--", "cat", "x"]);
    assert_eq!(out.code, 125);
    assert!(
        out.stderr.starts_with(&format!("drover-lab: {} is not a lab state: ", state.display())),
        "{out:?}"
    );
    let out = lab(&["show", "--state", path(&dir.path().join("missing.json"))]);
    assert_eq!(out.code, 1);
}

#[test]
fn replace_rebuilds_a_runtime_server_that_the_group_still_lists() {
    let lab = Lab::new();
    let out = lab.lab(&["replace", "PRDBTS02"]);
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (0, "", ""));
    let state: serde_json::Value =
        serde_json::from_str(&lab.lab(&["show", "--json"]).stdout).expect("JSON state");
    assert_eq!(state["edition"], "enterprise");
    assert_eq!(state["group"]["members"], serde_json::json!(["PRDBTS01", "PRDBTS02"]));
    let reg = lab.on(
        "PRDBTS02",
        &["reg", "query", r"HKLM\SOFTWARE\Microsoft\BizTalk Server\3.0\Administration", "/v", "MgmtDBServer"],
    );
    assert_eq!(
        (reg.code, reg.stderr.as_str()),
        (1, "ERROR: The system was unable to find the specified registry key or value.\n")
    );
    let service = lab.on("PRDBTS02", &["sc.exe", "query", "BTSSvc$SendHost"]);
    assert_eq!(service.code, i32::from(unix_status(1060)));
    // Not joined locally, so no BizTalk WMI namespace on it; the group still holds its rows.
    let here = lab.on("PRDBTS02", &powershell(HOST_INSTANCES));
    assert_eq!(here.stderr, "Get-CimInstance : Invalid namespace \"root/MicrosoftBizTalkServer\"\n");
    let rows = lab.on("PRDBTS01", &powershell(HOST_INSTANCES)).stdout;
    assert!(rows.contains("{\"Name\":\"Microsoft BizTalk Server SendHost PRDBTS02\",\"HostName\":\"SendHost\",\"HostType\":1,\"RunningServer\":\"PRDBTS02\",\"Logon\":\"CONTOSO\\\\svc-bts\",\"ConfigurationState\":1,\"IsDisabled\":false,\"ServiceState\":1}"), "{rows}");

    let out = lab.lab(&["replace", "PRDSQL01"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "drover-lab: PRDSQL01 is not a BizTalk runtime server (its role is sql); only runtime servers can be replaced\n"
    );
    let out = lab.lab(&["replace", "PRDBTS01", "--edition", "standard"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(lab.lab(&["show"]).stdout.contains("  edition              standard\n"));
    assert_eq!(lab.lab(&["replace", "PRDBTS01", "--edition", "datacenter"]).code, 2, "a usage error");
}

#[test]
fn init_records_the_edition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("lab.json");
    let out = lab(&["init", "--state", path(&state), "--edition", "standard"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    let lab_state = StateFile::new(&state).read().expect("state");
    assert_eq!(lab_state.edition, drover_lab::state::Edition::Standard);
    let out = lab(&["init", "--state", path(&state), "--force"]);
    assert_eq!(out.code, 0);
    assert_eq!(StateFile::new(&state).read().expect("state").edition, drover_lab::state::Edition::Enterprise);
}

// Log shipping (issue 18, L1)
/// `sqlcmd … -Q <query>` as the failover plugin sends it (lab/PROTOCOL.md, "DR SQL and log
/// shipping").
fn sql<'a>(server: &'a str, query: &'a str) -> Vec<&'a str> {
    vec!["sqlcmd", "-S", server, "-E", "-b", "-h", "-1", "-W", "-s", "|", "-Q", query]
}

const LAST_RESTORED: &str = "SET NOCOUNT ON; SELECT TOP 1 h.BackupSetId, h.MarkName FROM master.dbo.bts_LogShippingHistory h JOIN master.dbo.bts_LogShippingLastRestoreSet l ON l.BackupSetId = h.BackupSetId ORDER BY h.BackupSetId DESC";
const SOURCE_SET: &str = "SET NOCOUNT ON; SELECT TOP 1 BackupSetId, MarkName, CONVERT(varchar(23), BackupDateTime, 126) FROM BizTalkMgmtDb.dbo.adm_BackupHistory WHERE BackupType = 'lg' AND SetComplete = 1 ORDER BY BackupSetId DESC";
const STATES: &str =
    "SET NOCOUNT ON; SELECT name, state_desc FROM sys.databases WHERE database_id > 4 ORDER BY name";

#[test]
fn log_shipping_catches_up_recovers_at_the_mark_and_is_reseeded() {
    let lab = Lab::new();
    assert_eq!(lab.on("DRBTS01", &sql("DRSQL01", LAST_RESTORED)).stdout, "4|BTS_2026_11_22_09_45_01_000\r\n");
    assert_eq!(lab.lab(&["fault", "set", "logshipping-lag", "DRSQL01", "2"]).code, 0);
    assert_eq!(lab.lab(&["backup"]).code, 0);
    assert_eq!(
        lab.on("DRBTS01", &sql("PRDSQL01", SOURCE_SET)).stdout,
        "6|BTS_2026_11_22_10_15_01_000|2026-11-22T10:15:01\r\n"
    );
    assert_eq!(lab.on("DRBTS01", &sql("DRSQL01", LAST_RESTORED)).stdout, "2|BTS_2026_11_22_09_15_01_000\r\n");
    let start = "EXEC msdb.dbo.sp_start_job @job_name = N'BTS Log Shipping - Restore Databases'";
    let out = lab.on("DRBTS01", &sql("DRSQL01", start));
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Job 'BTS Log Shipping - Restore Databases' started successfully.\r\n")
    );
    assert_eq!(lab.on("DRBTS01", &sql("DRSQL01", LAST_RESTORED)).stdout, "5|BTS_2026_11_22_10_00_01_000\r\n");

    assert_eq!(lab.lab(&["disaster"]).code, 0);
    let down = lab.on("PRDBTS01", &["sc.exe", "query", "ENTSSO"]);
    assert_eq!(
        (unix_status(down.code), down.stderr.as_str()),
        (255, "drover-lab: PRDBTS01 does not answer: it went down with production at 2026-11-22T10:15:01Z\n")
    );
    assert_eq!(lab.on("DRBTS01", &sql("PRDSQL01", SOURCE_SET)).code, 1);
    assert_eq!(lab.lab(&["backup"]).code, 1, "no backup once the source is down");
    for update in ["Get Backup History", "Restore Databases"] {
        let query =
            format!("EXEC msdb.dbo.sp_update_job @job_name = N'BTS Log Shipping - {update}', @enabled = 0");
        assert_eq!(lab.on("DRBTS01", &sql("DRSQL01", &query)).code, 0);
    }
    let start = "EXEC msdb.dbo.sp_start_job @job_name = N'BTS Log Shipping - Restore To Mark'";
    assert_eq!(lab.on("DRBTS01", &sql("DRSQL01", start)).code, 0);
    assert_eq!(lab.on("DRBTS01", &sql("DRSQL01", LAST_RESTORED)).stdout, "6|BTS_2026_11_22_10_15_01_000\r\n");
    assert!(lab.on("DRBTS01", &sql("DRSQL01", STATES)).stdout.contains("BizTalkMsgBoxDb|ONLINE\r\n"));
    let state = StateFile::new(&lab.state).read().expect("state");
    assert_eq!(state.log_shipping.disaster.map(|d| d.at), Some("2026-11-22T10:15:01Z".to_owned()));

    let clean = "EXEC master.dbo.sp_LogShippingClean N'PRDSQL01'";
    assert_eq!(lab.on("DRBTS01", &sql("DRSQL01", clean)).code, 0);
    assert_eq!(lab.on("DRBTS01", &sql("DRSQL01", STATES)).stdout, "");
    assert_eq!(lab.lab(&["fault", "set", "logshipping-gap", "PRDSQL01"]).code, 1, "not a destination");
}

// Failover, BizTalk side (issue 18, L2)
/// lab/PROTOCOL.md, "Failover: database references, SSO and processing".
mod failover_biztalk_side {
    use drover_lab::activation::SECRET_BACKUP_PASSWORD;
    use drover_lab::programs::powershell::create_host_instance_script;
    use drover_lab::programs::powershell::processing::{
        DISABLE_RECEIVE_LOCATION_TEMPLATE, GROUP_SETTING_SCRIPT, RECEIVE_LOCATIONS_SCRIPT,
        SET_HOST_INSTANCE_DISABLED_TEMPLATE, SET_SSO_SERVER_TEMPLATE, START_HOST_INSTANCE_TEMPLATE, render,
    };

    use super::*;

    const CSCRIPT_64: &str = r"C:\Windows\System32\cscript.exe";
    const RESTORE: &str = r"C:\Program Files (x86)\Microsoft BizTalk Server\Bins32\Schema\Restore";
    const SSO: &str = r"C:\Program Files\Common Files\Enterprise Single Sign-On";
    const UPDATE_INFO: &str = "<UpdateConfiguration>\r\n  <MessageBoxDB oldDBName=\"BizTalkMsgBoxDb\" oldDBServer=\"PRDSQL01\" newDBName=\"BizTalkMsgBoxDb\" newDBServer=\"DRSQL01\" IsMaster=\"1\" />\r\n  <TrackingDB oldDBName=\"BizTalkDTADb\" oldDBServer=\"PRDSQL01\" newDBName=\"BizTalkDTADb\" newDBServer=\"DRSQL01\" />\r\n  <ManagementDB oldDBName=\"BizTalkMgmtDb\" oldDBServer=\"PRDSQL01\" newDBName=\"BizTalkMgmtDb\" newDBServer=\"DRSQL01\" />\r\n  <RuleEngineDB oldDBName=\"BizTalkRuleEngineDb\" oldDBServer=\"PRDSQL01\" newDBName=\"BizTalkRuleEngineDb\" newDBServer=\"DRSQL01\" />\r\n  <OtherDatabases>\r\n    <Database Name=\"SSO\" oldDBName=\"SSODB\" oldDBServer=\"PRDSQL01\" newDBName=\"SSODB\" newDBServer=\"DRSQL01\" />\r\n  </OtherDatabases>\r\n</UpdateConfiguration>\r\n";

    fn write(lab: &Lab, server: &str, file: &str, bytes: &[u8]) {
        let out = lab.on_with_input(server, &["sh", "-c", r#"cat > "$1""#, "sh", file], bytes);
        assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    }

    fn ok(ran: &Ran) {
        assert_eq!((ran.code, ran.stderr.as_str()), (0, ""), "{ran:?}");
    }

    #[test]
    fn a_restored_group_is_pointed_at_dr_its_secret_restored_and_processing_made_safe() {
        let lab = Lab::new();
        assert_eq!(lab.join("DRBTS01").0, 0);
        let password = "pw-Send";
        let create = create_host_instance_script("DRBTS01", "SendHost", r"CONTOSO\svc-bts", true);
        ok(&lab.on_with_input("DRBTS01", &powershell(&create), password.as_bytes()));
        // The backup of the master secret is kept off-site before the disaster (P2).
        let state = StateFile::new(&lab.state).read().expect("state");
        let backup =
            state.servers["PRDSSO01"].file(drover_lab::init::SECRET_BACKUP).expect("backup").to_vec();
        write(&lab, "DRSSO01", r"C:\Drover\SSOSecret.bak", &backup);

        // The disaster, and the DR databases recovered at the mark (F3, L1's side).
        assert_eq!(lab.lab(&["disaster"]).code, 0);
        for update in ["Get Backup History", "Restore Databases"] {
            let query = format!(
                "EXEC msdb.dbo.sp_update_job @job_name = N'BTS Log Shipping - {update}', @enabled = 0"
            );
            ok(&lab.on("DRBTS01", &sql("DRSQL01", &query)));
        }
        let start = "EXEC msdb.dbo.sp_start_job @job_name = N'BTS Log Shipping - Restore To Mark'";
        assert_eq!(lab.on("DRBTS01", &sql("DRSQL01", start)).code, 0);

        // F6: UpdateDatabase.vbs once, under the 64-bit host. WMI still reads production's
        // management database from the registry until F7.
        let xml = format!(r"{RESTORE}\SampleUpdateInfo.xml");
        write(&lab, "DRBTS01", &xml, UPDATE_INFO.as_bytes());
        let update_database = format!(r"{RESTORE}\UpdateDatabase.vbs");
        ok(&lab.on("DRBTS01", &[CSCRIPT_64, "//nologo", &update_database, &xml]));
        let before_f7 = lab.on("DRBTS01", &powershell(GROUP_SETTING_SCRIPT));
        assert_eq!(
            before_f7.stderr,
            "Get-CimInstance : [DBNETLIB][ConnectionOpen (Connect()).]SQL Server does not exist or access denied.\n"
        );
        // F7: UpdateRegistry.vbs on the DR server.
        let update_registry = format!(r"{RESTORE}\UpdateRegistry.vbs");
        ok(&lab.on("DRBTS01", &[CSCRIPT_64, "//nologo", &update_registry, &xml]));
        let admin = r"HKLM\SOFTWARE\Microsoft\BizTalk Server\3.0\Administration";
        let reg = lab.on("DRBTS01", &["reg", "query", admin, "/v", "MgmtDBServer", "/reg:32"]);
        assert!(reg.stdout.contains("    MgmtDBServer    REG_SZ    DRSQL01\n"), "{reg:?}");
        let group = lab.on("DRBTS01", &powershell(GROUP_SETTING_SCRIPT));
        assert_eq!(
            group.stdout,
            "{\"Name\":\"BizTalkGroup\",\"MgmtDbServerName\":\"DRSQL01\",\"MgmtDbName\":\"BizTalkMgmtDb\",\"SubscriptionDBServerName\":\"DRSQL01\",\"SubscriptionDBName\":\"BizTalkMsgBoxDb\",\"TrackingDBServerName\":\"DRSQL01\",\"TrackingDBName\":\"BizTalkDTADb\",\"RuleEngineDBServerName\":\"DRSQL01\",\"RuleEngineDBName\":\"BizTalkRuleEngineDb\",\"SSOServerName\":\"PRDSSO01\"}\n"
        );
        // A second UpdateDatabase.vbs changes nothing.
        ok(&lab.on("DRBTS01", &[CSCRIPT_64, "//nologo", &update_database, &xml]));
        let state = StateFile::new(&lab.state).read().expect("state");
        let recovered = state.log_shipping.destinations["DRSQL01"].group.as_deref().expect("recovered");
        let runs = recovered.activation.update_database_runs.clone();
        assert!(state.group.activation.update_database_runs.is_empty(), "production's record untouched");
        assert_eq!(runs.iter().map(|r| r.changed).collect::<Vec<_>>(), [5, 0]);

        // F8: DRSSO01 pointed at the DR SSO database, promoted, restarted, the secret restored.
        let ssoconfig = format!(r"{SSO}\ssoconfig.exe");
        let ssomanage = format!(r"{SSO}\ssomanage.exe");
        ok(&lab.on("DRSSO01", &[&ssoconfig, "-setDB", "DRSQL01", "SSODB"]));
        ok(&lab.on("DRSSO01", &["sc.exe", "start", "ENTSSO"]));
        let secret_file = r"C:\Drover\secret-server.xml";
        let file = "<sso>\r\n  <globalInfo>\r\n    <secretServer>DRSSO01</secretServer>\r\n  </globalInfo>\r\n</sso>\r\n";
        write(&lab, "DRSSO01", secret_file, file.as_bytes());
        ok(&lab.on("DRSSO01", &[&ssomanage, "-updatedb", secret_file]));
        ok(&lab.on("DRSSO01", &["sc.exe", "stop", "ENTSSO"]));
        ok(&lab.on("DRSSO01", &["sc.exe", "start", "ENTSSO"]));
        let restore = [ssoconfig.as_str(), "-restoreSecret", r"C:\Drover\SSOSecret.bak"];
        assert_eq!(lab.on_with_input("DRSSO01", &restore, b"not it\r\n").code, 1);
        let restored =
            lab.on_with_input("DRSSO01", &restore, format!("{SECRET_BACKUP_PASSWORD}\r\n").as_bytes());
        assert_eq!(
            (restored.code, restored.stdout.as_str()),
            (0, "The operation completed successfully.\r\n")
        );
        let shown = lab.on("DRSSO01", &[&ssomanage, "-displaydb"]);
        assert!(shown.stdout.contains("\r\nSingle Sign-On Secret Server name: DRSSO01\r\n"), "{shown:?}");
        ok(&lab.on("DRBTS01", &powershell(&render(SET_SSO_SERVER_TEMPLATE, &[("server", "DRSSO01")]))));
        assert!(
            lab.on("DRBTS01", &powershell(GROUP_SETTING_SCRIPT))
                .stdout
                .contains("\"SSOServerName\":\"DRSSO01\"")
        );

        // F10: production's enabled receive locations disabled before anything starts.
        let locations = lab.on("DRBTS01", &powershell(RECEIVE_LOCATIONS_SCRIPT)).stdout;
        assert_eq!(locations.matches("\"IsDisabled\":false").count(), 2, "{locations}");
        for name in ["RL.Orders.File", "RL.Orders.Http"] {
            let script = render(DISABLE_RECEIVE_LOCATION_TEMPLATE, &[("name", name)]);
            ok(&lab.on("DRBTS01", &powershell(&script)));
        }
        let locations = lab.on("DRBTS01", &powershell(RECEIVE_LOCATIONS_SCRIPT)).stdout;
        assert_eq!(locations.matches("\"IsDisabled\":true").count(), 3, "{locations}");

        // F11: production's instances are out of reach; the DR instance is enabled, then started.
        let prod = "Microsoft BizTalk Server SendHost PRDBTS02";
        let out = lab.on("DRBTS01", &powershell(&render(START_HOST_INSTANCE_TEMPLATE, &[("name", prod)])));
        assert_eq!(
            out.stderr,
            "Exception calling \"Start\" : \"The RPC server is unavailable. (Exception from HRESULT: 0x800706BA)\"\n"
        );
        let dr = "Microsoft BizTalk Server SendHost DRBTS01";
        let enable = render(SET_HOST_INSTANCE_DISABLED_TEMPLATE, &[("name", dr), ("disabled", "$false")]);
        ok(&lab.on("DRBTS01", &powershell(&enable)));
        ok(&lab.on("DRBTS01", &powershell(&render(START_HOST_INSTANCE_TEMPLATE, &[("name", dr)]))));
        let rows = lab.on("DRBTS01", &powershell(HOST_INSTANCES)).stdout;
        assert!(
            rows.contains(&format!("{{\"Name\":\"{dr}\",\"HostName\":\"SendHost\",\"HostType\":1,\"RunningServer\":\"DRBTS01\",\"Logon\":\"CONTOSO\\\\svc-bts\",\"ConfigurationState\":1,\"IsDisabled\":false,\"ServiceState\":4}}")),
            "{rows}"
        );
        assert!(rows.contains("\"RunningServer\":\"PRDBTS02\",\"Logon\":\"CONTOSO\\\\svc-bts\",\"ConfigurationState\":1,\"IsDisabled\":false,\"ServiceState\":8}"), "{rows}");
    }
}
