//! Errors that stop a command. Every one of them exits with status 2 and names the file, and
//! where it can, the line, column and field.

use std::fmt;
use std::io;

/// Where in an input an error is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The path as given on the command line (`-` for stdin).
    pub file: String,
    /// 1-based line.
    pub line: Option<u64>,
    /// 1-based column.
    pub column: Option<u64>,
}

impl Location {
    /// A whole file.
    pub fn file(file: &str) -> Location {
        Location {
            file: file.to_owned(),
            line: None,
            column: None,
        }
    }

    /// A line (and maybe a column) of a file.
    pub fn at(file: &str, line: u64, column: Option<u64>) -> Location {
        Location {
            file: file.to_owned(),
            line: Some(line),
            column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        Ok(())
    }
}

/// A usage or input error: the command cannot go on. Exit status 2.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A file could not be opened or read.
    #[error("{file}: {what}: {source}")]
    Io {
        /// The path as given.
        file: String,
        /// What was being done (`cannot open`, `cannot read`, ...).
        what: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An input file is not usable (bad header, malformed JSON, bad contracts, ...).
    #[error("{location}: {message}")]
    Input {
        /// Where.
        location: Location,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A bad flag value or combination.
    #[error("{0}")]
    Usage(String),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[source] io::Error),
}

impl CliError {
    /// An input error at a location.
    pub fn input(location: Location, message: impl Into<String>) -> CliError {
        CliError::Input {
            location,
            message: message.into(),
        }
    }

    /// An error reading `file`.
    pub fn read(file: &str, source: io::Error) -> CliError {
        CliError::Io {
            file: file.to_owned(),
            what: "cannot read",
            source,
        }
    }

    /// An error opening `file`.
    pub fn open(file: &str, source: io::Error) -> CliError {
        CliError::Io {
            file: file.to_owned(),
            what: "cannot open",
            source,
        }
    }

    /// True when the output was closed by the reader (`metergate check | head`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> CliError {
        CliError::Output(e)
    }
}
