//! Unit tests of the four plugins through the fake host, answered with `lab/PROTOCOL.md`'s
//! outputs ("DR SQL and log shipping") word for word.

use biztalk_common::logshipping::{self, GET_BACKUP_HISTORY, RESTORE_DATABASES, RESTORE_TO_MARK};
use drover_sdk::prelude::*;
use drover_sdk::testing::FakeHost;
use serde_json::{Value, json};

use crate::SQLCMD;
use crate::catch_up::CatchUp;
use crate::clean::Clean;
use crate::measure::Measure;
use crate::restore_to_mark::RestoreToMark;

const DR: &str = "DRSQL01";
const SOURCE: &str = "PRDSQL01";
const LOGIN_TIMEOUT: &str =
    "Sqlcmd: Error: Microsoft ODBC Driver 17 for SQL Server : Login timeout expired.\r\n";
const SET_4: &str = "4|BTS_2026_11_22_09_45_01_000\r\n";
const SET_5: &str = "5|BTS_2026_11_22_10_00_01_000\r\n";
const JOBS: &str = "BTS Log Shipping - Get Backup History|1|0\r\nBTS Log Shipping - Restore Databases|1|0\r\nBTS Log Shipping - Restore To Mark|1|0\r\n";
const RESTORING: &str = "BizTalkDTADb|RESTORING\r\nBizTalkMgmtDb|RESTORING\r\nBizTalkMsgBoxDb|RESTORING\r\nBizTalkRuleEngineDb|RESTORING\r\nSSODB|RESTORING\r\n";
const ONLINE: &str = "BizTalkDTADb|ONLINE\r\nBizTalkMgmtDb|ONLINE\r\nBizTalkMsgBoxDb|ONLINE\r\nBizTalkRuleEngineDb|ONLINE\r\nSSODB|ONLINE\r\n";

fn host() -> FakeHost {
    FakeHost::new().with_target(DR)
}

/// Scripts `sqlcmd -S <instance> … -Q <query>` run on `on`.
fn sql(host: &FakeHost, on: &str, instance: &str, query: &str, code: i32, stdout: &str, stderr: &str) {
    let argv = logshipping::sqlcmd(instance, query);
    let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    let mut output = ExecOutput::exited(code, stdout);
    output.stderr = stderr.as_bytes().to_vec();
    host.script_exec(on, SQLCMD, &args, output);
}

fn ok(host: &FakeHost, query: &str, stdout: &str) {
    sql(host, DR, DR, query, 0, stdout, "");
}

fn sets(host: &FakeHost, restored: &str, imported: &str) {
    ok(host, logshipping::LAST_RESTORED_SET, restored);
    ok(host, logshipping::SHIPPED_LOG_SET, imported);
}

/// A job's history: one run (newest first), `outcome_id` its outcome row.
fn run(outcome_id: u64, job: &str, step: &str, succeeded: bool, step_message: &str) -> String {
    let (status, word) = if succeeded { (1, "succeeded") } else { (0, "failed") };
    format!(
        "{outcome_id}|0|{status}|20261122|101501|The job {word}.  The Job was invoked by User CONTOSO\\drover.  The last step to run was step 1 ({step}).\r\n{}|1|{status}|20261122|101501|Executed as user: CONTOSO\\svc-sqlagent. {step_message}\r\n",
        outcome_id - 1
    )
    .replace("{job}", job)
}

fn start(host: &FakeHost, job: &str) {
    ok(host, &logshipping::start_job(job), &format!("Job '{job}' started successfully.\r\n"));
}

fn input() -> Value {
    json!({"destinations": [DR]})
}

fn message(err: StepError) -> (String, String) {
    let kind = match &err {
        StepError::Retryable(_) => "retryable",
        StepError::Permanent(_) => "permanent",
        StepError::NeedsOperator(_) => "needs-operator",
    };
    (kind.to_owned(), err.message().to_owned())
}

#[test]
fn each_plugin_declares_its_effect_class_and_sqlcmd() {
    assert_eq!(<Measure as Plugin>::describe().effect(), Effect::ReadOnly);
    assert_eq!(<CatchUp as Plugin>::describe().effect(), Effect::Idempotent);
    assert_eq!(<RestoreToMark as Plugin>::describe().effect(), Effect::Irreversible);
    assert_eq!(<Clean as Plugin>::describe().effect(), Effect::Irreversible);
    assert_eq!(<RestoreToMark as Plugin>::describe().name(), "logshipping-restore-to-mark");
}

#[test]
fn measure_gives_the_sets_and_the_data_loss_window_after_the_disaster() {
    let host = host();
    sets(&host, SET_4, SET_5);
    sql(&host, DR, SOURCE, logshipping::SOURCE_LOG_SET, 1, "", LOGIN_TIMEOUT);
    let input = json!({"destinations": [DR], "source": SOURCE, "failure_time": "2026-11-22T10:07:30Z"});
    let outcome = host.call::<Measure>(Mode::Check, input).expect("measured");
    assert!(!outcome.changed);
    let out = &outcome.output;
    assert_eq!(out["instances"][0]["last_restored"]["id"], 4);
    assert_eq!(out["instances"][0]["newest_imported"]["mark"], "BTS_2026_11_22_10_00_01_000");
    assert_eq!(out["agree"], true);
    assert_eq!(out["production_alive"], false);
    assert_eq!(
        out["source"]["error"],
        "Sqlcmd: Error: Microsoft ODBC Driver 17 for SQL Server : Login timeout expired."
    );
    assert_eq!(
        out["rpo"],
        json!({"recovery_point": "2026-11-22T10:00:01.000Z", "failure_time": "2026-11-22T10:07:30Z"})
    );
    assert_eq!(outcome.evidence.len(), 3, "one piece of evidence per sqlcmd");
    assert!(host.unused_scripts().is_empty());
}

#[test]
fn measure_says_when_production_is_alive_and_refuses_a_time_without_a_zone() {
    let host = host();
    sets(&host, SET_4, SET_5);
    sql(
        &host,
        DR,
        SOURCE,
        logshipping::SOURCE_LOG_SET,
        0,
        "6|BTS_2026_11_22_10_15_01_000|2026-11-22T10:15:01\r\n",
        "",
    );
    let outcome =
        host.call::<Measure>(Mode::Apply, json!({"destinations": [DR], "source": SOURCE})).expect("measured");
    assert_eq!(outcome.output["production_alive"], true);
    assert_eq!(outcome.output["sets_behind_source"], 1);
    assert_eq!(outcome.output["rpo"], json!({"recovery_point": "2026-11-22T10:00:01.000Z"}));
    assert!(outcome.summary.contains("PRDSQL01 still answers"), "{}", outcome.summary);

    let bad = json!({"destinations": [DR], "source": SOURCE, "failure_time": "2026-11-22 10:07"});
    let (kind, why) = message(host.call::<Measure>(Mode::Apply, bad).unwrap_err());
    assert_eq!(kind, "permanent");
    assert!(why.contains("not an RFC 3339 time"), "{why}");
}

#[test]
fn a_failover_refuses_a_live_production_unless_quiesced_and_a_drill_states_its_cost() {
    let call = |extra: Value| {
        let host = host();
        sets(&host, SET_4, SET_5);
        let alive = "6|BTS_2026_11_22_10_15_01_000|2026-11-22T10:15:01\r\n";
        sql(&host, DR, SOURCE, logshipping::SOURCE_LOG_SET, 0, alive, "");
        let mut input =
            json!({"destinations": [DR], "source": SOURCE, "failure_time": "2026-11-22T10:07:30Z"});
        input.as_object_mut().expect("object").extend(extra.as_object().cloned().unwrap_or_default());
        host.call::<Measure>(Mode::Check, input)
    };
    let (kind, why) = message(call(json!({"mode": "failover"})).unwrap_err());
    assert_eq!(kind, "permanent");
    assert!(why.contains("production's PRDSQL01 still answers") && why.contains("split brain"), "{why}");
    assert!(why.contains("source-quiesced=true") && why.contains("drill"), "{why}");

    let quiesced = call(json!({"mode": "failover", "source_quiesced": true})).expect("declared quiesced");
    assert!(!quiesced.output["briefing"].as_str().unwrap_or_default().contains("Drill cost"));
    let drill = call(json!({"mode": "drill"})).expect("a drill with production alive");
    let briefing = drill.output["briefing"].as_str().unwrap_or_default().to_owned();
    assert!(briefing.starts_with("Recovery point: log set 5 (BTS_2026_11_22_10_00_01_000), marked 2026-11-22T10:00:01.000Z. Data loss: everything after 2026-11-22T10:00:01.000Z up to the failure at 2026-11-22T10:07:30Z. Production's PRDSQL01 answers, 1 log set(s) ahead of the DR site."), "{briefing}");
    assert!(
        briefing.contains("Drill cost:") && briefing.contains("a window without DR protection"),
        "{briefing}"
    );

    // Production gone: a drill is refused, a failover goes on.
    let lost_host = || {
        let host = host();
        sets(&host, SET_4, SET_5);
        sql(&host, DR, SOURCE, logshipping::SOURCE_LOG_SET, 1, "", LOGIN_TIMEOUT);
        host
    };
    let input = json!({"destinations": [DR], "source": SOURCE, "mode": "drill"});
    let (kind, why) = message(lost_host().call::<Measure>(Mode::Check, input).unwrap_err());
    assert_eq!(kind, "permanent");
    assert!(why.contains("does not answer") && why.contains("this is a failover"), "{why}");
    let input = json!({"destinations": [DR], "source": SOURCE, "mode": "failover"});
    let host = lost_host();
    let lost = host.call::<Measure>(Mode::Check, input).expect("a failover");
    assert!(
        lost.output["briefing"]
            .as_str()
            .unwrap_or_default()
            .contains("Production's PRDSQL01 does not answer.")
    );
}

#[test]
fn restore_to_mark_finished_by_an_interrupted_attempt_is_this_steps_recovery_not_already() {
    let host = host();
    ok(&host, logshipping::DATABASE_STATES, RESTORING);
    ok(&host, logshipping::JOBS, JOBS);
    ok(&host, &logshipping::update_job(GET_BACKUP_HISTORY, false), "");
    ok(&host, &logshipping::update_job(RESTORE_DATABASES, false), "");
    ok(&host, &logshipping::job_history(RESTORE_TO_MARK), "");
    start(&host, RESTORE_TO_MARK);
    ok(&host, &logshipping::job_history(RESTORE_TO_MARK), "");
    let (kind, _) = message(host.call::<RestoreToMark>(Mode::Apply, input()).unwrap_err());
    assert_eq!(kind, "retryable", "started, no outcome yet");
    // The job finished meanwhile: the next attempt of the same step finds the databases ONLINE.
    ok(&host, logshipping::DATABASE_STATES, ONLINE);
    ok(&host, logshipping::SHIPPED_LOG_SET, SET_5);
    let outcome = host.call::<RestoreToMark>(Mode::Apply, input()).expect("recovered by this step");
    assert!(!outcome.changed, "this attempt changed nothing: {}", outcome.summary);
    assert!(outcome.summary.contains("an earlier attempt of this step recovered"), "{}", outcome.summary);
    assert_eq!(outcome.output["instances"][0]["already"], false, "the steps after it must still run");
    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());
}

#[test]
fn catch_up_runs_restore_databases_where_an_instance_lags() {
    let host = host();
    sets(&host, "2|BTS_2026_11_22_09_15_01_000\r\n", SET_5);
    ok(&host, logshipping::JOBS, JOBS);
    ok(&host, &logshipping::job_history(RESTORE_DATABASES), "");
    start(&host, RESTORE_DATABASES);
    ok(
        &host,
        &logshipping::job_history(RESTORE_DATABASES),
        &run(2, RESTORE_DATABASES, "Restore Databases", true, "The step succeeded."),
    );
    sets(&host, SET_4, SET_5);
    let outcome = host.call::<CatchUp>(Mode::Apply, input()).expect("caught up");
    assert!(outcome.changed);
    assert_eq!(outcome.output["caught_up"], json!([DR]));
    assert_eq!(outcome.output["restored_set"]["id"], 4);
    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());

    // Caught up: reads only.
    let host = self::host();
    sets(&host, SET_4, SET_5);
    let outcome = host.call::<CatchUp>(Mode::Apply, input()).expect("nothing to do");
    assert!(!outcome.changed);
    assert_eq!(host.command_lines().len(), 2);
}

#[test]
fn a_gap_in_the_log_chain_stops_catch_up_with_sql_servers_error() {
    let host = host();
    sets(&host, "3|BTS_2026_11_22_09_30_01_000\r\n", SET_5);
    ok(&host, logshipping::JOBS, JOBS);
    ok(&host, &logshipping::job_history(RESTORE_DATABASES), "");
    start(&host, RESTORE_DATABASES);
    let failed = "The log in this backup set begins at LSN 5000000001, which is too recent to apply to the database. An earlier log backup that includes LSN 4000000001 can be restored. [SQLSTATE 42000] (Error 4305)  RESTORE LOG is terminating abnormally. [SQLSTATE 42000] (Error 3013).  The step failed.";
    ok(
        &host,
        &logshipping::job_history(RESTORE_DATABASES),
        &run(2, RESTORE_DATABASES, "Restore Databases", false, failed),
    );
    let (kind, why) = message(host.call::<CatchUp>(Mode::Apply, input()).unwrap_err());
    assert_eq!(kind, "permanent");
    assert!(why.contains("the log chain has a gap on DRSQL01"), "{why}");
    assert!(why.contains("(Error 4305)"), "{why}");
}

#[test]
fn restore_to_mark_disables_the_jobs_runs_once_and_checks_the_databases() {
    let host = host();
    ok(&host, logshipping::DATABASE_STATES, RESTORING);
    ok(&host, logshipping::JOBS, JOBS);
    ok(&host, &logshipping::update_job(GET_BACKUP_HISTORY, false), "");
    ok(&host, &logshipping::update_job(RESTORE_DATABASES, false), "");
    ok(&host, &logshipping::job_history(RESTORE_TO_MARK), "");
    start(&host, RESTORE_TO_MARK);
    ok(
        &host,
        &logshipping::job_history(RESTORE_TO_MARK),
        &run(2, RESTORE_TO_MARK, "Restore To Mark", true, "The step succeeded."),
    );
    ok(&host, logshipping::DATABASE_STATES, ONLINE);
    ok(&host, logshipping::SHIPPED_LOG_SET, SET_5);
    let outcome = host.call::<RestoreToMark>(Mode::Apply, input()).expect("recovered");
    assert!(outcome.changed);
    let instance = &outcome.output["instances"][0];
    assert_eq!(instance["recovered_to"]["marked_at"], "2026-11-22T10:00:01.000Z");
    assert!(instance["databases"].as_array().unwrap().iter().all(|d| d["state"] == "ONLINE"));
    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());

    // Already recovered: no change, the job is not started again.
    let host = self::host();
    ok(&host, logshipping::DATABASE_STATES, ONLINE);
    ok(&host, logshipping::SHIPPED_LOG_SET, SET_5);
    let with_time = json!({"destinations": [DR], "failure_time": "2026-11-22T10:07:30Z"});
    let outcome = host.call::<RestoreToMark>(Mode::Apply, with_time).expect("no change");
    assert!(!outcome.changed);
    assert_eq!(outcome.output["instances"][0]["already"], true);
    // The data-loss window of the mark recovered to, for the report.
    assert_eq!(
        outcome.output["rpo"],
        json!({"recovery_point": "2026-11-22T10:00:01.000Z", "failure_time": "2026-11-22T10:07:30Z"})
    );
    assert!(!host.command_lines().iter().any(|l| l.contains("sp_start_job")));
}

#[test]
fn restore_to_mark_failing_stops_with_the_jobs_message() {
    let host = host();
    ok(&host, logshipping::DATABASE_STATES, RESTORING);
    ok(
        &host,
        logshipping::JOBS,
        "BTS Log Shipping - Get Backup History|0|0\r\nBTS Log Shipping - Restore Databases|0|0\r\nBTS Log Shipping - Restore To Mark|1|0\r\n",
    );
    ok(&host, &logshipping::job_history(RESTORE_TO_MARK), "");
    start(&host, RESTORE_TO_MARK);
    let failed = "Cannot open backup device '\\\\PRDSQL01\\BizTalkBackup\\PRDSQL01_BizTalkMgmtDb_Log_BTS_2026_11_22_10_00_01_000.bak'. Operating system error 53(The network path was not found.). [SQLSTATE 42000] (Error 3201)  RESTORE LOG is terminating abnormally. [SQLSTATE 42000] (Error 3013).  The step failed.";
    ok(
        &host,
        &logshipping::job_history(RESTORE_TO_MARK),
        &run(2, RESTORE_TO_MARK, "Restore To Mark", false, failed),
    );
    let (kind, why) = message(host.call::<RestoreToMark>(Mode::Apply, input()).unwrap_err());
    assert_eq!(kind, "permanent");
    assert!(why.contains("SQL Server errors 3201, 3013"), "{why}");
    assert!(why.contains("Operating system error 53"), "{why}");
    assert!(
        !host.command_lines().iter().any(|l| l.contains("sp_update_job")),
        "the jobs were disabled already"
    );
}

#[test]
fn an_interrupted_restore_to_mark_without_a_trace_needs_an_operator() {
    let host = host();
    host.ctx(Mode::Apply).state_set("restore-to-mark-started:DRSQL01", "0").unwrap();
    ok(&host, logshipping::DATABASE_STATES, RESTORING);
    ok(&host, logshipping::JOBS, JOBS);
    ok(&host, &logshipping::job_history(RESTORE_TO_MARK), "");
    let (kind, why) = message(host.call::<RestoreToMark>(Mode::Apply, input()).unwrap_err());
    assert_eq!(kind, "needs-operator");
    assert!(why.contains("whether it started is unclear"), "{why}");
    assert!(!host.command_lines().iter().any(|l| l.contains("sp_start_job")));

    let host = self::host();
    ok(&host, logshipping::DATABASE_STATES, "BizTalkDTADb|ONLINE\r\nBizTalkMgmtDb|RESTORING\r\n");
    let (kind, why) = message(host.call::<RestoreToMark>(Mode::Apply, input()).unwrap_err());
    assert_eq!(kind, "needs-operator");
    assert!(why.contains("BizTalkMgmtDb RESTORING"), "{why}");
}

#[test]
fn an_answer_drover_does_not_know_needs_an_operator_with_the_raw_text() {
    let host = host();
    sql(&host, DR, DR, logshipping::LAST_RESTORED_SET, 1, "", "Sqlcmd: Fehler: etwas anderes.\r\n");
    let (kind, why) = message(host.call::<CatchUp>(Mode::Check, input()).unwrap_err());
    assert_eq!(kind, "needs-operator");
    assert!(why.contains("Sqlcmd: Fehler: etwas anderes."), "{why}");
}

#[test]
fn clean_drops_a_recovered_destination_forces_a_full_backup_and_reenables_the_jobs() {
    let host = host();
    let disabled = "BTS Log Shipping - Get Backup History|0|0\r\nBTS Log Shipping - Restore Databases|0|0\r\nBTS Log Shipping - Restore To Mark|1|0\r\n";
    let source_jobs =
        "Backup BizTalk Server (BizTalkMgmtDb)|1|0\r\nTrackedMessages_Copy_BizTalkMsgBoxDb|1|0\r\n";
    sql(&host, DR, SOURCE, logshipping::ALL_JOBS, 0, source_jobs, "");
    ok(&host, logshipping::DATABASE_STATES, ONLINE);
    ok(&host, logshipping::JOBS, disabled);
    // Restore To Mark recreated the source's two jobs; the DBA's own job stays.
    let here = format!(
        "{disabled}Backup BizTalk Server (BizTalkMgmtDb)|1|0\r\nDBA - Index maintenance|1|0\r\nTrackedMessages_Copy_BizTalkMsgBoxDb|1|0\r\n"
    );
    ok(&host, logshipping::ALL_JOBS, &here);
    ok(&host, &logshipping::delete_job("Backup BizTalk Server (BizTalkMgmtDb)"), "");
    ok(&host, &logshipping::delete_job("TrackedMessages_Copy_BizTalkMsgBoxDb"), "");
    ok(&host, &logshipping::log_shipping_clean(SOURCE), "");
    sql(&host, DR, SOURCE, logshipping::FORCE_FULL_BACKUP, 0, "", "");
    ok(&host, &logshipping::update_job(GET_BACKUP_HISTORY, true), "");
    ok(&host, &logshipping::update_job(RESTORE_DATABASES, true), "");
    let outcome =
        host.call::<Clean>(Mode::Apply, json!({"destinations": [DR], "source": SOURCE})).expect("cleaned");
    assert!(outcome.changed);
    assert_eq!(outcome.output["full_backup_forced"], true);
    assert_eq!(outcome.output["instances"][0]["dropped"].as_array().unwrap().len(), 5);
    assert_eq!(
        outcome.output["instances"][0]["deleted_jobs"],
        json!(["Backup BizTalk Server (BizTalkMgmtDb)", "TrackedMessages_Copy_BizTalkMsgBoxDb"])
    );
    assert!(host.unused_scripts().is_empty(), "{:?}", host.unused_scripts());

    // Shipping logs again: nothing to do.
    let host = self::host();
    sql(&host, DR, SOURCE, logshipping::ALL_JOBS, 0, source_jobs, "");
    ok(&host, logshipping::DATABASE_STATES, RESTORING);
    ok(&host, logshipping::JOBS, JOBS);
    let outcome = host
        .call::<Clean>(Mode::Apply, json!({"destinations": [DR], "source": SOURCE}))
        .expect("nothing to do");
    assert!(!outcome.changed, "{}", outcome.summary);
}
