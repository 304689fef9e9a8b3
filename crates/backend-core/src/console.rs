//! Function logs: [`Console`], what `ctx.console()` (and `ctx.log(…)`) writes to, and the
//! [`LogLine`]s it keeps.
//!
//! A function's lines travel two ways. To the client that called it, as Convex sends them
//! (`logLines` on a query's result in a `Transition`, on a mutation's or an action's response,
//! on the HTTP API's envelopes), each a string `[LEVEL] message` that the official clients
//! print to the console as `[CONVEX Q(path)] [LEVEL] message`; a backend started for
//! production turns this off ([`BackendConfig::client_logs`](crate::BackendConfig)). And to
//! the backend's execution log (see `execution_log`), always.
//!
//! A call keeps at most [`MAX_LOG_LINES`] lines of at most [`MAX_LOG_LINE_BYTES`] bytes each,
//! Convex's limits: a longer line is cut (on a character boundary) and marked, and the last
//! line a call may keep says that the rest were left out.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The most lines one function call keeps (Convex's limit); the last of them is the notice
/// that later lines were left out.
pub const MAX_LOG_LINES: usize = 256;
/// The most bytes of one line's message (Convex's limit); a longer message is cut and marked.
pub const MAX_LOG_LINE_BYTES: usize = 32 * 1024;
/// What ends a message that was cut at [`MAX_LOG_LINE_BYTES`].
const TRUNCATED_MARKER: &str = " (truncated due to length exceeding limit)";

/// A line's level, as `console.debug`, `console.log`, `console.info`, `console.warn` and
/// `console.error` in Convex.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    /// `console.debug`.
    Debug,
    /// `console.log`.
    Log,
    /// `console.info`.
    Info,
    /// `console.warn`.
    Warn,
    /// `console.error`.
    Error,
}

impl LogLevel {
    /// The level's name on the wire (`LOG`, `WARN`, …).
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Log => "LOG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }
}

/// One line a function logged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    /// Its level.
    pub level: LogLevel,
    /// The message as Convex shows it: a string argument in quotes (`'hello'`).
    pub message: String,
    /// When it was logged, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

impl LogLine {
    /// The line as Convex sends it to clients: `[LOG] 'hello'`.
    pub fn client_line(&self) -> String {
        format!("[{}] {}", self.level.name(), self.message)
    }
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.level.name(), self.message)
    }
}

/// Where a function's log lines go: `ctx.console().log("…")`, `.info`, `.warn`, `.error`,
/// `.debug` (or `ctx.log("…")`). Clones write to the same lines; the functions a query or a
/// mutation calls in its transaction write to its console.
///
/// ```
/// use keel_backend_core::{FunctionError, QueryCtx};
///
/// async fn list(ctx: QueryCtx, _args: serde_json::Value) -> Result<usize, FunctionError> {
///     let posts = ctx.db().query("posts").collect().await?;
///     ctx.log(format!("{} posts", posts.len()));
///     if posts.is_empty() {
///         ctx.console().warn("no posts yet");
///     }
///     Ok(posts.len())
/// }
/// ```
#[derive(Clone, Default)]
pub struct Console {
    lines: Arc<parking_lot::Mutex<Vec<LogLine>>>,
}

impl fmt::Debug for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Console")
            .field("lines", &self.lines.lock().len())
            .finish()
    }
}

impl Console {
    /// Logs `message` at level `LOG` (`console.log`).
    pub fn log(&self, message: impl AsRef<str>) {
        self.write(LogLevel::Log, message.as_ref());
    }

    /// Logs `message` at level `INFO` (`console.info`).
    pub fn info(&self, message: impl AsRef<str>) {
        self.write(LogLevel::Info, message.as_ref());
    }

    /// Logs `message` at level `WARN` (`console.warn`).
    pub fn warn(&self, message: impl AsRef<str>) {
        self.write(LogLevel::Warn, message.as_ref());
    }

    /// Logs `message` at level `ERROR` (`console.error`).
    pub fn error(&self, message: impl AsRef<str>) {
        self.write(LogLevel::Error, message.as_ref());
    }

    /// Logs `message` at level `DEBUG` (`console.debug`).
    pub fn debug(&self, message: impl AsRef<str>) {
        self.write(LogLevel::Debug, message.as_ref());
    }

    /// Logs `message` at `level`, within the limits.
    pub fn write(&self, level: LogLevel, message: &str) {
        let mut lines = self.lines.lock();
        if lines.len() >= MAX_LOG_LINES {
            return;
        }
        let line = if lines.len() == MAX_LOG_LINES - 1 {
            LogLine {
                level: LogLevel::Error,
                message: format!(
                    "Log overflow (maximum {MAX_LOG_LINES}). Remaining log lines omitted."
                ),
                timestamp_ms: now_ms(),
            }
        } else {
            LogLine {
                level,
                message: quoted(truncated(message)),
                timestamp_ms: now_ms(),
            }
        };
        tracing::info!(target: "keel::function_log", "{line}");
        lines.push(line);
    }

    /// The lines so far.
    pub fn lines(&self) -> Vec<LogLine> {
        self.lines.lock().clone()
    }

    /// Forgets the lines (a mutation's conflicting attempt: only the attempt that commits
    /// reports its lines).
    pub(crate) fn clear(&self) {
        self.lines.lock().clear();
    }
}

/// The lines as clients receive them.
pub(crate) fn client_lines(lines: &[LogLine]) -> Vec<String> {
    lines.iter().map(LogLine::client_line).collect()
}

/// A call's outcome with the lines it logged, as its client receives them (`[LOG] 'hello'`;
/// none when the backend sends clients no logs, see
/// [`BackendConfig::client_logs`](crate::BackendConfig)).
#[derive(Clone, Debug)]
pub struct Logged<T> {
    /// The call's value or error.
    pub result: Result<T, crate::FunctionError>,
    /// Its log lines for the client.
    pub log_lines: Vec<String>,
}

impl<T> Logged<T> {
    /// An outcome without log lines (the call failed before its function ran, or another
    /// node ran it).
    pub(crate) fn bare(result: Result<T, crate::FunctionError>) -> Logged<T> {
        Logged {
            result,
            log_lines: Vec::new(),
        }
    }
}

/// `message` cut to [`MAX_LOG_LINE_BYTES`] on a character boundary and marked, if longer.
fn truncated(message: &str) -> std::borrow::Cow<'_, str> {
    if message.len() <= MAX_LOG_LINE_BYTES {
        return message.into();
    }
    let mut end = MAX_LOG_LINE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{TRUNCATED_MARKER}", &message[..end]).into()
}

/// A string argument as Convex's console shows it: in single quotes, or in double quotes when
/// it holds a single quote and no double one; backslashes and the chosen quote escaped.
fn quoted(message: std::borrow::Cow<'_, str>) -> String {
    let quote = if message.contains('\'') && !message.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(message.len() + 2);
    out.push(quote);
    for c in message.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_convex_sends_them() {
        let console = Console::default();
        console.log("hello");
        console.warn("it's");
        console.error("a 'b' \"c\"\n\\");
        let lines = client_lines(&console.lines());
        assert_eq!(
            lines,
            [
                "[LOG] 'hello'",
                "[WARN] \"it's\"",
                "[ERROR] 'a \\'b\\' \"c\"\\n\\\\'"
            ]
        );
    }

    #[test]
    fn a_call_keeps_at_most_256_lines_the_last_saying_so() {
        let console = Console::default();
        for i in 0..1000 {
            console.info(format!("line {i}"));
        }
        let lines = console.lines();
        assert_eq!(lines.len(), MAX_LOG_LINES);
        assert_eq!(lines[254].message, "'line 254'");
        assert_eq!(
            lines[255].client_line(),
            "[ERROR] Log overflow (maximum 256). Remaining log lines omitted."
        );
    }

    #[test]
    fn a_long_line_is_cut_on_a_character_boundary_and_marked() {
        let console = Console::default();
        console.log("é".repeat(MAX_LOG_LINE_BYTES));
        let message = &console.lines()[0].message;
        assert!(message.ends_with(&format!("{TRUNCATED_MARKER}'")));
        let body = &message[1..message.len() - TRUNCATED_MARKER.len() - 1];
        assert_eq!(body.len(), MAX_LOG_LINE_BYTES);
        assert!(body.chars().all(|c| c == 'é'));
    }
}
