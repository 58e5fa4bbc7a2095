//! How results are shown: tables for people, JSON for scripts, colour only on a terminal.

use std::io::IsTerminal;

use comfy_table::{presets, Cell, Color, ContentArrangement, Table};
use oban_core::JobState;
use serde::Serialize;

use crate::exit::{Error, Result};

/// Where results go and in which form.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    /// One JSON document on stdout instead of tables and sentences.
    pub(crate) json: bool,
    /// Colour in tables: stdout is a terminal and `NO_COLOR` is unset.
    pub(crate) colour: bool,
    /// Progress bars: stderr is a terminal and the output is not JSON.
    pub(crate) progress: bool,
}

impl Output {
    /// Decides from the flag and the process's terminals and environment.
    pub(crate) fn detect(json: bool) -> Self {
        let no_colour = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            json,
            colour: !json && !no_colour && std::io::stdout().is_terminal(),
            progress: !json && std::io::stderr().is_terminal(),
        }
    }

    /// Prints `value` as one pretty JSON document.
    pub(crate) fn json<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|err| Error::new(format!("cannot write JSON: {err}")))?;
        println!("{text}");
        Ok(())
    }

    /// An empty table with these headers, styled for this output.
    pub(crate) fn table<I, S>(&self, headers: I) -> Table
    where
        I: IntoIterator<Item = S>,
        S: Into<Cell>,
    {
        let mut table = Table::new();
        table
            .load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(headers);
        if !self.colour {
            table.force_no_tty();
        } else {
            table.enforce_styling();
        }
        table
    }

    /// A state's name, coloured by what it asks of an operator.
    pub(crate) fn state_cell(&self, state: JobState) -> Cell {
        let cell = Cell::new(state.as_str());
        match state {
            JobState::Discarded => cell.fg(Color::Red),
            JobState::Retryable => cell.fg(Color::Yellow),
            JobState::Executing => cell.fg(Color::Cyan),
            JobState::Completed => cell.fg(Color::Green),
            _ => cell,
        }
    }
}
