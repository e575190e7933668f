//! JSON lines: `--output json` on stdout, and `events.jsonl` in the artifacts directory.

use crate::events::{Event, Sink};
use std::io::Write;
use std::sync::Mutex;

/// Writes one JSON object per event, one per line.
pub(crate) struct JsonLines(Mutex<Box<dyn Write + Send>>);

impl JsonLines {
    /// Write to `w` (stdout or a file).
    pub(crate) fn new(w: Box<dyn Write + Send>) -> Self {
        Self(Mutex::new(w))
    }
}

impl Sink for JsonLines {
    fn emit(&self, event: &Event) {
        let mut w = self.0.lock().expect("json sink lock");
        if let Ok(line) = serde_json::to_string(event) {
            let _ = writeln!(w, "{line}");
            let _ = w.flush();
        }
    }
}
