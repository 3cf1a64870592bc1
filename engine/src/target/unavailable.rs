//! A server that cannot be reached as the inventory describes it (its logon's password secret
//! has no value, say): every call fails with the same permanent error, so the run fails the
//! steps that need the server and nothing else.

use async_trait::async_trait;

use super::{Command, ExecOutput, TargetError, Transport};

/// Fails every call with its message, as a permanent error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnavailableTransport {
    message: String,
}

impl UnavailableTransport {
    /// A transport whose every call fails with `message`, which should name the server.
    pub fn new(message: impl Into<String>) -> Self {
        UnavailableTransport { message: message.into() }
    }

    /// Why it is unavailable.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn fail<T>(&self) -> Result<T, TargetError> {
        Err(TargetError::permanent(self.message.clone()))
    }
}

#[async_trait]
impl Transport for UnavailableTransport {
    async fn exec(&self, _command: &Command) -> Result<ExecOutput, TargetError> {
        self.fail()
    }

    async fn read_file(&self, _path: &str) -> Result<Vec<u8>, TargetError> {
        self.fail()
    }

    async fn write_file(&self, _path: &str, _contents: &[u8]) -> Result<(), TargetError> {
        self.fail()
    }

    async fn remove_file(&self, _path: &str) -> Result<(), TargetError> {
        self.fail()
    }
}
