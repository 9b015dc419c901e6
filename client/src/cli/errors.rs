//! How a command fails: a message and the exit code scripts branch on
//! (see the module header of `cli` for the table).

use super::*;

/// A failure with the exit code a script can branch on.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<tonic::Status> for CliError {
    fn from(s: tonic::Status) -> Self {
        let code = s.code();
        CliError {
            code: 10 + code as i32,
            // The daemon's words may quote what someone typed.
            message: format!(
                "{}: {}",
                render::code_name(code),
                render::printable(s.message())
            ),
        }
    }
}

impl From<ConnectError> for CliError {
    fn from(e: ConnectError) -> Self {
        CliError {
            code: 3,
            message: e.to_string(),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError {
            code: 1,
            message: e.to_string(),
        }
    }
}

pub(super) fn usage(message: impl Into<String>) -> CliError {
    CliError {
        code: 2,
        message: message.into(),
    }
}
