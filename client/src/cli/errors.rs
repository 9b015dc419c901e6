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
        // The daemon names the API's fields; the user typed flags.
        let said = match code {
            tonic::Code::InvalidArgument => crate::requests::in_flag_words(s.message()),
            _ => s.message().to_string(),
        };
        CliError {
            code: 10 + code as i32,
            // The daemon's words may quote what someone typed.
            message: format!("{}: {}", render::code_name(code), render::printable(&said)),
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
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // `hotfixctl watch | head`: the reader has what it wanted.
            return CliError::closed_pipe();
        }
        CliError {
            code: 1,
            message: e.to_string(),
        }
    }
}

impl CliError {
    /// The output's reader went away (a closed pipe): nothing failed and
    /// nothing is said; the process exits 0.
    pub fn closed_pipe() -> CliError {
        CliError {
            code: 0,
            message: String::new(),
        }
    }

    /// Whether this is [`CliError::closed_pipe`].
    pub fn is_closed_pipe(&self) -> bool {
        self.code == 0
    }
}

pub(super) fn usage(message: impl Into<String>) -> CliError {
    CliError {
        code: 2,
        message: message.into(),
    }
}
