//! `sqlcmd` for the Backup BizTalk Server job's steps (issue 18, F14; `lab/PROTOCOL.md`,
//! "Re-protect"): reading a job's steps and `sp_update_jobstep`, word for word as
//! `biztalk_common::backup_job` (in `plugins/`) builds them, answered from the SQL Server Agent
//! of [`crate::logshipping::agent_jobs`]. The rest of the re-protection (`sp_update_job`,
//! `sp_ForceFullBackup`, a job's history) is [`super::sql_logshipping`]'s.

use super::sql_logshipping::no_such;
use super::sqlcmd::{refused, server_and_query, unquote};
use super::{Ctx, Output};
use crate::logshipping;

/// A job's steps: `<step_id>|<step_name>|<command on one line>`.
const JOB_STEPS: (&str, &str) = (
    "SET NOCOUNT ON; SELECT s.step_id, s.step_name, REPLACE(REPLACE(s.command, CHAR(13), N' '), CHAR(10), N' ') FROM msdb.dbo.sysjobsteps s JOIN msdb.dbo.sysjobs j ON j.job_id = s.job_id WHERE j.name = ",
    " ORDER BY s.step_id",
);
/// `sp_update_jobstep @job_name = N'<job>', @step_id = <n>, @command = N'<command>'`.
const UPDATE_JOB_STEP: (&str, &str, &str) =
    ("EXEC msdb.dbo.sp_update_jobstep @job_name = ", ", @step_id = ", ", @command = ");

/// `sqlcmd <args…>` when they are one of this module's command lines.
pub fn run(ctx: &mut Ctx<'_>, args: &[String]) -> Option<Output> {
    let (server, query) = server_and_query(args)?;
    let request = Request::of(query)?;
    if let Err(why) = ctx.connect_sql(server) {
        return Some(refused(why));
    }
    let server = ctx.lab.server_name(server).unwrap_or_else(|| server.to_owned());
    Some(request.answer(ctx, &server))
}

enum Request {
    Steps(String),
    Update(String, u32, String),
}

impl Request {
    fn of(query: &str) -> Option<Request> {
        if let Some(rest) = query.strip_prefix(JOB_STEPS.0) {
            return Some(Request::Steps(unquote(rest.strip_suffix(JOB_STEPS.1)?)?));
        }
        let rest = query.strip_prefix(UPDATE_JOB_STEP.0)?;
        let (job, rest) = rest.split_once(UPDATE_JOB_STEP.1)?;
        let (step, command) = rest.split_once(UPDATE_JOB_STEP.2)?;
        Some(Request::Update(unquote(job)?, step.parse().ok()?, unquote(command)?))
    }

    fn answer(self, ctx: &mut Ctx<'_>, server: &str) -> Output {
        let (Request::Steps(job) | Request::Update(job, _, _)) = &self;
        let Some((jobs, _)) = logshipping::agent_mut(ctx.lab, server) else {
            return no_such("@job_name", job, server);
        };
        let Some(found) = jobs.iter_mut().find(|j| j.name.eq_ignore_ascii_case(job)) else {
            return no_such("@job_name", job, server);
        };
        match self {
            Request::Steps(_) => Output::ok(
                found
                    .steps
                    .iter()
                    .map(|s| format!("{}|{}|{}\r\n", s.id, s.name, s.command.replace(['\r', '\n'], " ")))
                    .collect::<String>(),
            ),
            Request::Update(_, step_id, command) => match found.steps.iter_mut().find(|s| s.id == step_id) {
                Some(step) => {
                    step.command = command;
                    Output::ok("")
                }
                None => no_such("@step_id", &step_id.to_string(), server),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::exec;
    use super::*;
    use crate::init::fresh_lab;
    use crate::logshipping::BACKUP_JOB;
    use crate::state::Lab;

    /// The plugins' module, whose command lines the lab must accept word for word.
    const PLUGIN: &str = include_str!("../../../plugins/biztalk-common/src/backup_job.rs");

    fn sql(lab: &mut Lab, server: &str, query: &str) -> Output {
        exec(lab, "DRBTS01", &["sqlcmd", "-S", server, "-E", "-b", "-h", "-1", "-W", "-s", "|", "-Q", query])
    }

    #[test]
    fn the_queries_are_the_plugins_word_for_word() {
        assert!(PLUGIN.contains(JOB_STEPS.0) && PLUGIN.contains(JOB_STEPS.1));
        for part in [UPDATE_JOB_STEP.0, UPDATE_JOB_STEP.1, UPDATE_JOB_STEP.2] {
            assert!(PLUGIN.contains(part), "{part}");
        }
    }

    #[test]
    fn the_backup_jobs_steps_are_read_and_one_command_changed() {
        let mut lab = fresh_lab();
        let steps = format!("{}N'{BACKUP_JOB}'{}", JOB_STEPS.0, JOB_STEPS.1);
        let out = sql(&mut lab, "PRDSQL01", &steps).stdout_text();
        assert!(
            out.contains(
                "\r\n3|MarkAndBackupLog|exec [dbo].[sp_MarkAll] 'BTS', '\\\\PRDSQL01\\BizTalkBackup'\r\n"
            ),
            "{out}"
        );
        assert_eq!(out.lines().count(), 4);
        let update = format!(
            "{}N'{BACKUP_JOB}'{}3{}N'exec [dbo].[sp_MarkAll] ''BTS'', ''m:\\B'''",
            UPDATE_JOB_STEP.0, UPDATE_JOB_STEP.1, UPDATE_JOB_STEP.2
        );
        assert_eq!(sql(&mut lab, "PRDSQL01", &update).code, 0);
        assert!(
            sql(&mut lab, "PRDSQL01", &steps)
                .stdout_text()
                .contains("3|MarkAndBackupLog|exec [dbo].[sp_MarkAll] 'BTS', 'm:\\B'\r\n")
        );
        let bad = update.replace("@step_id = 3", "@step_id = 9");
        let out = sql(&mut lab, "PRDSQL01", &bad);
        assert_eq!(
            (out.code, out.stdout_text().contains("The specified @step_id ('9') does not exist.")),
            (1, true)
        );
        let none = format!("{}N'Nope'{}", JOB_STEPS.0, JOB_STEPS.1);
        assert_eq!(sql(&mut lab, "PRDSQL01", &none).code, 1);
        assert_eq!(sql(&mut lab, "DRSQL01", &steps).code, 1, "no backup job before Restore To Mark");
    }
}
