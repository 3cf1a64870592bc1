//! [`Request`]: an operator command as it waits in the journal for the process that applies it
//! (`approve`, `retry`, `skip`, `cancel`, `compensate`). A row is its kind, its step key and its data
//! (`{"comment": …}`, and `"output"` for a skip); [`Request::from_parts`] reads one back.

use serde::Deserialize;
use serde_json::{Value, json};

/// An operator command.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Let an approval gate pass.
    Approve {
        /// The approval step's instance.
        step: String,
        /// Why, for the record.
        comment: Option<String>,
    },
    /// Run a failed, cancelled or needs-operator step instance again.
    Retry {
        /// The instance.
        step: String,
        /// Why, for the record.
        comment: Option<String>,
    },
    /// Mark a step instance done without running it, with the output later steps see.
    Skip {
        /// The instance.
        step: String,
        /// Why, for the record.
        comment: Option<String>,
        /// Its output, checked against the plugin's output schema when applied.
        output: Value,
    },
    /// Stop the run.
    Cancel {
        /// Why, for the record.
        comment: Option<String>,
    },
    /// Undo what the run changed: the compensations of its completed compensable steps.
    Compensate {
        /// Why, for the record.
        comment: Option<String>,
    },
}

/// A journal row that is no request this build knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct UnreadableRequest {
    /// The row's kind.
    pub kind: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The data of a request row.
#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    output: Value,
}

impl Request {
    /// The command's name, as in the journal and on the command line.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Approve { .. } => "approve",
            Request::Retry { .. } => "retry",
            Request::Skip { .. } => "skip",
            Request::Cancel { .. } => "cancel",
            Request::Compensate { .. } => "compensate",
        }
    }

    /// The step instance it names (none for a cancel).
    pub fn step_key(&self) -> Option<&str> {
        match self {
            Request::Approve { step, .. } | Request::Retry { step, .. } | Request::Skip { step, .. } => {
                Some(step)
            }
            Request::Cancel { .. } | Request::Compensate { .. } => None,
        }
    }

    /// The operator's comment.
    pub fn comment(&self) -> Option<&str> {
        match self {
            Request::Approve { comment, .. }
            | Request::Retry { comment, .. }
            | Request::Skip { comment, .. }
            | Request::Cancel { comment }
            | Request::Compensate { comment } => comment.as_deref(),
        }
    }

    /// The row's data, as the journal stores it.
    pub fn data(&self) -> Value {
        match self {
            Request::Skip { comment, output, .. } => json!({ "comment": comment, "output": output }),
            _ => json!({ "comment": self.comment() }),
        }
    }

    /// The request a journal row holds.
    pub fn from_parts(
        kind: &str,
        step_key: Option<&str>,
        data: &Value,
    ) -> Result<Request, UnreadableRequest> {
        let unreadable = |reason: String| UnreadableRequest { kind: kind.to_string(), reason };
        let Data { comment, output } = Data::deserialize(data)
            .map_err(|e| unreadable(format!("the {kind} command's data cannot be read: {e}")))?;
        let step =
            || step_key.map(str::to_string).ok_or_else(|| unreadable("the command names no step".into()));
        Ok(match kind {
            "approve" => Request::Approve { step: step()?, comment },
            "retry" => Request::Retry { step: step()?, comment },
            "skip" => Request::Skip { step: step()?, comment, output },
            "cancel" => Request::Cancel { comment },
            "compensate" => Request::Compensate { comment },
            _ => return Err(unreadable(format!("unknown command {kind}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_reads_back_from_the_row_it_writes() {
        let requests = [
            Request::Approve { step: "gate".into(), comment: Some("go".into()) },
            Request::Retry { step: "join[DRBTS01]".into(), comment: None },
            Request::Skip {
                step: "probe".into(),
                comment: Some("by hand".into()),
                output: json!({ "ok": true }),
            },
            Request::Cancel { comment: None },
            Request::Compensate { comment: Some("undo".into()) },
        ];
        for request in requests {
            let read = Request::from_parts(request.kind(), request.step_key(), &request.data());
            assert_eq!(read, Ok(request));
        }
    }

    #[test]
    fn rows_written_by_earlier_builds_read_as_they_meant() {
        // `drover skip` wrote `{"comment": null, "output": …}`; a skip without output meant null.
        let skip = Request::from_parts("skip", Some("a"), &json!({ "comment": null })).expect("a skip");
        assert_eq!(skip, Request::Skip { step: "a".into(), comment: None, output: Value::Null });
        assert_eq!(skip.data(), json!({ "comment": null, "output": null }));
        assert_eq!(Request::Cancel { comment: Some("x".into()) }.data(), json!({ "comment": "x" }));
    }

    #[test]
    fn a_row_no_request_fits_says_why() {
        let unknown = Request::from_parts("compensate-twice", None, &json!({})).expect_err("unknown");
        assert_eq!(unknown.to_string(), "unknown command compensate-twice");
        assert_eq!(unknown.kind, "compensate-twice");
        let no_step = Request::from_parts("approve", None, &json!({})).expect_err("no step");
        assert_eq!(no_step.to_string(), "the command names no step");
        let bad = Request::from_parts("retry", Some("a"), &json!({ "comment": 3 })).expect_err("bad data");
        assert!(bad.to_string().contains("cannot be read"), "{bad}");
    }
}
