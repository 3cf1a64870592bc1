//! `bts-quiesce-source` against the fake host answering with `lab/PROTOCOL.md`'s exact outputs.

use super::*;
use biztalk_common::logshipping;
use biztalk_common::processing as scripts;
use biztalk_common::wmi;
use drover_sdk::testing::FakeHost;
use drover_sdk::{Context, ExecOutput, Mode};
use serde_json::json;

const PRD: &str = "PRDBTS01";
const SOURCE: &str = "PRDSQL01";
const DR_SQL: &str = "DRSQL01";
const BACKUP: &str = "Backup BizTalk Server (BizTalkMgmtDb)";
const REFCOUNT: &str = "MessageBox_Message_ManageRefCountLog_BizTalkMsgBoxDb";
const SET_5: &str = "5|BTS_2026_11_22_10_00_01_000|2026-11-22T10:00:01\r\n";
const SET_6: &str = "6|BTS_2026_11_22_10_15_01_000|2026-11-22T10:15:01\r\n";

fn host() -> FakeHost {
    FakeHost::new()
        .with_target(PRD)
        .with_target("PRDBTS02")
        .with_context(Context { target: Some(PRD.into()), ..Context::for_test(Mode::Apply) })
}

fn input() -> serde_json::Value {
    json!({ "servers": ["PRDBTS01", "PRDBTS02"], "source_sql": SOURCE, "destinations": [DR_SQL] })
}

fn ps(host: &FakeHost, script: &str, output: ExecOutput) {
    host.script_exec(PRD, "powershell.exe", &["-NoProfile", "-NonInteractive", "-Command", script], output);
}

fn locations(host: &FakeHost, enabled: [bool; 3]) {
    let rows: Vec<String> = ["RL.Orders.File", "RL.Orders.Http", "RL.Invoices.Sftp"]
        .iter()
        .zip(enabled)
        .map(|(name, on)| {
            format!(
                r#"{{"Name":"{name}","ReceivePortName":"RP","HostName":"ReceiveHost","AdapterName":"FILE","IsDisabled":{}}}"#,
                !on
            )
        })
        .collect();
    ps(host, scripts::RECEIVE_LOCATIONS, ExecOutput::exited(0, format!("[{}]\r\n", rows.join(","))));
}

fn row(host: &str, server: &str, host_type: u8, state: u8) -> String {
    format!(
        r#"{{"Name":"Microsoft BizTalk Server {host} {server}","HostName":"{host}","HostType":{host_type},"RunningServer":"{server}","Logon":"CONTOSO\\svc-bts","ConfigurationState":1,"IsDisabled":false,"ServiceState":{state}}}"#
    )
}

/// Production's instances (ReceiveHost on PRDBTS01, SendHost on PRDBTS02) in `state`, with the
/// isolated host's and a stopped DR instance.
fn instances(host: &FakeHost, state: u8) {
    let rows = [
        row("ReceiveHost", PRD, 1, state),
        row("SendHost", "PRDBTS02", 1, state),
        row("BizTalkServerIsolatedHost", PRD, 2, 1),
        row("ReceiveHost", "DRBTS01", 1, 1),
    ];
    ps(host, wmi::HOST_INSTANCES, ExecOutput::exited(0, format!("[{}]\r\n", rows.join(","))));
}

fn sql(host: &FakeHost, instance: &str, query: &str, code: i32, stdout: &str) {
    let argv = logshipping::sqlcmd(instance, query);
    let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    host.script_exec(PRD, "sqlcmd", &args, ExecOutput::exited(code, stdout));
}

/// The source's jobs: every BizTalk job `enabled`, the reference-count job `refcount_running`,
/// and a job that is not BizTalk's.
fn jobs(host: &FakeHost, enabled: bool, refcount_running: bool) {
    let e = u8::from(enabled);
    let r = u8::from(refcount_running);
    sql(
        host,
        SOURCE,
        logshipping::ALL_JOBS,
        0,
        &format!(
            "{BACKUP}|{e}|0\r\nDTA Purge and Archive (BizTalkDTADb)|{e}|0\r\n{REFCOUNT}|{e}|{r}\r\nNightly index maintenance|1|0\r\n"
        ),
    );
}

fn service(host: &FakeHost, server: &str, name: &str, state: Option<&str>) {
    let output = match state {
        Some(state) => ExecOutput::exited(
            0,
            format!(
                "\nSERVICE_NAME: {name}\n        TYPE               : 10  WIN32_OWN_PROCESS\n        STATE              : {state}\n        WIN32_EXIT_CODE    : 0  (0x0)\n        SERVICE_EXIT_CODE  : 0  (0x0)\n        CHECKPOINT         : 0x0\n        WAIT_HINT          : 0x0\n"
            ),
        ),
        None => ExecOutput::exited(
            1060,
            "[SC] EnumQueryServicesStatus:OpenService FAILED 1060:\n\nThe specified service does not exist as an installed service.\n",
        ),
    };
    host.script_exec(server, "sc.exe", &["query", name], output);
}

const RUNNING: &str = "4  RUNNING";
const STOPPED: &str = "1  STOPPED";

fn script_running_production(host: &FakeHost) {
    locations(host, [true, true, false]);
    ps(host, &scripts::disable_receive_location("RL.Orders.File"), ExecOutput::exited(0, ""));
    ps(host, &scripts::disable_receive_location("RL.Orders.Http"), ExecOutput::exited(0, ""));
    locations(host, [false, false, false]);
    instances(host, 4);
    ps(host, &scripts::stop_host_instance("ReceiveHost", PRD), ExecOutput::exited(0, ""));
    ps(host, &scripts::stop_host_instance("SendHost", "PRDBTS02"), ExecOutput::exited(0, ""));
    instances(host, 1);
    jobs(host, true, true);
    sql(host, SOURCE, logshipping::SOURCE_LOG_SET, 0, SET_5);
    sql(host, SOURCE, &logshipping::job_history(BACKUP), 0, "");
    let mark = logshipping::start_job_at(BACKUP, logshipping::MARK_AND_BACKUP_LOG);
    sql(host, SOURCE, &mark, 0, &format!("Job '{BACKUP}' started successfully.\r\n"));
    sql(host, SOURCE, logshipping::SOURCE_LOG_SET, 0, SET_6);
    for job in [BACKUP, "DTA Purge and Archive (BizTalkDTADb)", REFCOUNT] {
        sql(host, SOURCE, &logshipping::update_job(job, false), 0, "");
    }
    sql(host, SOURCE, &logshipping::stop_job(REFCOUNT), 0, "");
    sql(host, DR_SQL, logshipping::SHIPPED_LOG_SET, 0, "5|BTS_2026_11_22_10_00_01_000\r\n");
    sql(
        host,
        DR_SQL,
        logshipping::JOBS,
        0,
        "BTS Log Shipping - Get Backup History|1|0\r\nBTS Log Shipping - Restore Databases|1|0\r\nBTS Log Shipping - Restore To Mark|1|0\r\n",
    );
    let history = logshipping::start_job(logshipping::GET_BACKUP_HISTORY);
    sql(
        host,
        DR_SQL,
        &history,
        0,
        &format!("Job '{}' started successfully.\r\n", logshipping::GET_BACKUP_HISTORY),
    );
    sql(host, DR_SQL, logshipping::SHIPPED_LOG_SET, 0, "6|BTS_2026_11_22_10_15_01_000\r\n");
    service(host, PRD, "ENTSSO", Some(RUNNING));
    host.script_exec(
        PRD,
        "sc.exe",
        &["stop", "ENTSSO"],
        ExecOutput::exited(0, "\nSERVICE_NAME: ENTSSO\n        STATE              : 3  STOP_PENDING\n"),
    );
    service(host, PRD, "RuleEngineUpdateService", Some(RUNNING));
    host.script_exec(
        PRD,
        "sc.exe",
        &["stop", "RuleEngineUpdateService"],
        ExecOutput::exited(
            0,
            "\nSERVICE_NAME: RuleEngineUpdateService\n        STATE              : 3  STOP_PENDING\n",
        ),
    );
    service(host, "PRDBTS02", "ENTSSO", Some(STOPPED));
    service(host, "PRDBTS02", "RuleEngineUpdateService", None);
}

fn script_quiesced_production(host: &FakeHost) {
    locations(host, [false, false, false]);
    instances(host, 1);
    jobs(host, false, false);
    sql(host, SOURCE, logshipping::SOURCE_LOG_SET, 0, SET_6);
    sql(host, DR_SQL, logshipping::SHIPPED_LOG_SET, 0, "6|BTS_2026_11_22_10_15_01_000\r\n");
    for server in [PRD, "PRDBTS02"] {
        service(host, server, "ENTSSO", Some(STOPPED));
        service(host, server, "RuleEngineUpdateService", Some(STOPPED));
    }
}

#[test]
fn a_running_production_is_quiesced_in_the_documented_order_and_what_it_stopped_is_recorded() {
    let host = host();
    script_running_production(&host);

    let outcome = host.call::<BtsQuiesceSource>(Mode::Apply, input()).unwrap();

    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
    assert!(outcome.changed, "{}", outcome.summary);
    let out = &outcome.output;
    assert_eq!(out["receive_locations_disabled"], json!(["RL.Orders.File", "RL.Orders.Http"]));
    assert_eq!(
        out["host_instances_stopped"],
        json!([
            "Microsoft BizTalk Server ReceiveHost PRDBTS01",
            "Microsoft BizTalk Server SendHost PRDBTS02"
        ]),
        "production's in-process instances only: not the isolated host's, not DR's"
    );
    assert_eq!(out["mark_taken"], true);
    assert_eq!(out["last_mark"]["id"], 6);
    assert_eq!(out["last_mark"]["marked_at"], "2026-11-22T10:15:01.000Z");
    assert_eq!(
        out["jobs_disabled"],
        json!([BACKUP, "DTA Purge and Archive (BizTalkDTADb)", REFCOUNT]),
        "BizTalk's jobs only"
    );
    assert_eq!(out["jobs_stopped"], json!([REFCOUNT]));
    assert_eq!(out["destinations"][0]["newest_imported"]["id"], 6);
    assert_eq!(out["destinations"][0]["history_imported"], true);
    assert_eq!(
        out["services_stopped"],
        json!([
            { "server": PRD, "service": "ENTSSO" },
            { "server": PRD, "service": "RuleEngineUpdateService" }
        ])
    );
    assert_eq!(out["left_to_people"].as_array().map(Vec::len), Some(3));
    assert!(outcome.summary.contains("the newest log set is 6"), "{}", outcome.summary);
    // Processing stops before the mark, the mark before the jobs are disabled, the jobs before
    // the DR site imports, the services last.
    let lines = host.command_lines();
    let at = |needle: &str| {
        lines.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle} in {lines:#?}"))
    };
    assert!(at("$rl.Disable()") < at("$hi.Stop()"));
    assert!(at("$hi.Stop()") < at("@step_name = N'MarkAndBackupLog'"));
    assert!(at("@step_name = N'MarkAndBackupLog'") < at("sp_update_job"));
    assert!(at("sp_update_job") < at("N'BTS Log Shipping - Get Backup History'"));
    assert!(at("N'BTS Log Shipping - Get Backup History'") < at("sc.exe stop ENTSSO"));
    assert!(!lines.iter().any(|l| l.contains("Nightly index maintenance") && l.contains("sp_update_job")));
    assert!(!outcome.evidence.is_empty());
}

#[test]
fn a_quiesced_production_is_no_change_and_no_new_mark() {
    let host = host();
    script_quiesced_production(&host);

    let outcome = host.call::<BtsQuiesceSource>(Mode::Apply, input()).unwrap();

    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
    assert!(!outcome.changed, "{}", outcome.summary);
    assert_eq!(outcome.output["mark_taken"], false);
    assert_eq!(outcome.output["last_mark"]["id"], 6);
    assert!(outcome.summary.starts_with("production is quiesced already"), "{}", outcome.summary);
    let lines = host.command_lines();
    assert!(
        lines
            .iter()
            .all(|l| l.contains("Get-CimInstance") || l.contains("SELECT") || l.contains("sc.exe query")),
        "reads only: {lines:#?}"
    );
}

#[test]
fn check_reads_only_and_says_what_it_would_stop() {
    let host = host();
    locations(&host, [true, false, false]);
    instances(&host, 4);
    jobs(&host, true, false);
    sql(&host, SOURCE, logshipping::SOURCE_LOG_SET, 0, SET_5);
    sql(&host, DR_SQL, logshipping::SHIPPED_LOG_SET, 0, "5|BTS_2026_11_22_10_00_01_000\r\n");
    for server in [PRD, "PRDBTS02"] {
        service(&host, server, "ENTSSO", Some(RUNNING));
        service(&host, server, "RuleEngineUpdateService", Some(RUNNING));
    }

    let outcome = host.call::<BtsQuiesceSource>(Mode::Check, input()).unwrap();

    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
    assert!(outcome.changed);
    assert!(outcome.summary.starts_with("would quiesce production"), "{}", outcome.summary);
    assert_eq!(outcome.output["receive_locations_disabled"], json!(["RL.Orders.File"]));
    assert_eq!(outcome.output["host_instances_stopped"].as_array().map(Vec::len), Some(2));
    assert_eq!(outcome.output["mark_taken"], true);
    assert_eq!(outcome.output["destinations"][0]["history_imported"], true, "after the mark it would");
    assert_eq!(outcome.output["services_stopped"].as_array().map(Vec::len), Some(4));
    let lines = host.command_lines();
    assert!(
        lines.iter().all(|l| l.contains("Get-CimInstance")
            || l.contains("SET NOCOUNT ON; SELECT")
            || l.contains("sc.exe query")),
        "reads only: {lines:#?}"
    );
}

#[test]
fn a_retry_after_the_mark_does_not_take_another_and_reports_what_the_first_attempt_stopped() {
    let host = host();
    // The first attempt: everything up to the mark, then SQL Server does not answer.
    locations(&host, [true, false, false]);
    ps(&host, &scripts::disable_receive_location("RL.Orders.File"), ExecOutput::exited(0, ""));
    locations(&host, [false, false, false]);
    instances(&host, 1);
    jobs(&host, true, false);
    sql(&host, SOURCE, logshipping::SOURCE_LOG_SET, 0, SET_5);
    sql(&host, SOURCE, &logshipping::job_history(BACKUP), 0, "");
    let mark = logshipping::start_job_at(BACKUP, logshipping::MARK_AND_BACKUP_LOG);
    sql(&host, SOURCE, &mark, 0, &format!("Job '{BACKUP}' started successfully.\r\n"));
    let argv = logshipping::sqlcmd(SOURCE, logshipping::SOURCE_LOG_SET);
    let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    host.script_exec(
        PRD,
        "sqlcmd",
        &args,
        ExecOutput {
            stderr: b"Sqlcmd: Error: Microsoft ODBC Driver 17 for SQL Server : Login timeout expired.\r\n"
                .to_vec(),
            ..ExecOutput::exited(1, "")
        },
    );
    let err = host.call::<BtsQuiesceSource>(Mode::Apply, input()).unwrap_err();
    assert!(matches!(err, StepError::Retryable(_)), "{err:?}");

    // The retry: the location is disabled now, the mark is there; it is not taken again.
    locations(&host, [false, false, false]);
    instances(&host, 1);
    jobs(&host, true, false);
    sql(&host, SOURCE, logshipping::SOURCE_LOG_SET, 0, SET_6);
    sql(&host, SOURCE, &logshipping::update_job(BACKUP, false), 0, "");
    sql(&host, SOURCE, &logshipping::update_job("DTA Purge and Archive (BizTalkDTADb)", false), 0, "");
    sql(&host, SOURCE, &logshipping::update_job(REFCOUNT, false), 0, "");
    sql(&host, DR_SQL, logshipping::SHIPPED_LOG_SET, 0, "6|BTS_2026_11_22_10_15_01_000\r\n");
    for server in [PRD, "PRDBTS02"] {
        service(&host, server, "ENTSSO", Some(STOPPED));
        service(&host, server, "RuleEngineUpdateService", Some(STOPPED));
    }
    let before = host.command_lines().len();
    let outcome = host.call::<BtsQuiesceSource>(Mode::Apply, input()).unwrap();
    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
    assert!(!host.command_lines()[before..].iter().any(|l| l.contains("sp_start_job")));
    assert_eq!(outcome.output["receive_locations_disabled"], json!(["RL.Orders.File"]), "recorded");
    assert_eq!(outcome.output["mark_taken"], true);
    assert_eq!(outcome.output["last_mark"]["id"], 6);
}

#[test]
fn a_failed_last_backup_is_permanent_with_the_jobs_message() {
    let host = host();
    locations(&host, [false, false, false]);
    instances(&host, 1);
    jobs(&host, true, false);
    sql(&host, SOURCE, logshipping::SOURCE_LOG_SET, 0, SET_5);
    sql(&host, SOURCE, &logshipping::job_history(BACKUP), 0, "");
    let mark = logshipping::start_job_at(BACKUP, logshipping::MARK_AND_BACKUP_LOG);
    sql(&host, SOURCE, &mark, 0, &format!("Job '{BACKUP}' started successfully.\r\n"));
    sql(&host, SOURCE, logshipping::SOURCE_LOG_SET, 0, SET_5);
    sql(
        &host,
        SOURCE,
        &logshipping::job_history(BACKUP),
        0,
        "2|0|0|20261122|101501|The job failed.  The Job was invoked by User CONTOSO\\drover.  The last step to run was step 3 (MarkAndBackupLog).\r\n1|3|0|20261122|101501|Executed as user: CONTOSO\\svc-sqlagent. Cannot open backup device '\\\\PRDSQL01\\BizTalkBackup'. Operating system error 5(Access is denied.). [SQLSTATE 42000] (Error 3201).  The step failed.\r\n",
    );
    let err = host.call::<BtsQuiesceSource>(Mode::Apply, input()).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err:?}");
    assert!(err.message().contains("(Error 3201)"), "{}", err.message());
    assert!(!host.command_lines().iter().any(|l| l.contains("sp_update_job")), "the jobs stay enabled");
}

#[test]
fn a_production_server_that_does_not_answer_and_an_unknown_refusal() {
    let host = host();
    locations(&host, [false, false, false]);
    ps(
        &host,
        wmi::HOST_INSTANCES,
        ExecOutput::exited(0, format!("[{}]\r\n", row("SendHost", "PRDBTS02", 1, 8))),
    );
    let err = host.call::<BtsQuiesceSource>(Mode::Apply, input()).unwrap_err();
    assert!(matches!(err, StepError::Permanent(_)), "{err:?}");
    assert!(err.message().contains("PRDBTS02"), "{}", err.message());

    locations(&host, [true, false, false]);
    ps(
        &host,
        &scripts::disable_receive_location("RL.Orders.File"),
        ExecOutput {
            stderr: b"Exception calling \"Disable\" : \"Access is denied.\"\n".to_vec(),
            ..ExecOutput::exited(1, "")
        },
    );
    let err = host.call::<BtsQuiesceSource>(Mode::Apply, input()).unwrap_err();
    assert!(matches!(err, StepError::NeedsOperator(_)), "{err:?}");
    assert!(err.message().contains("Access is denied."), "{}", err.message());
}

#[test]
fn biztalk_jobs_are_known_by_their_documented_names_whatever_the_database() {
    for name in [
        "Backup BizTalk Server (BizTalkMgmtDb)",
        "MessageBox_UpdateStats_BizTalkMsgBoxDb2",
        "Monitor BizTalk Server (BizTalkMgmtDb)",
        "TrackedMessages_Copy_ContosoMsgBox",
        "dta purge and archive (BizTalkDTADb)",
    ] {
        assert!(jobs::is_biztalk_job(name), "{name}");
    }
    for name in ["Nightly index maintenance", "BTS Log Shipping - Restore Databases", "Backup"] {
        assert!(!jobs::is_biztalk_job(name), "{name}");
    }
}
