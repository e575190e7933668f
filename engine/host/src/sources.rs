//! The text of every file a run compiled, by display name: diagnostics quote it. Its own
//! module so the compiler (program) and the renderer (diagnostics) both sit on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Source text by display name. Cheap to clone; shared by a program and its diagnostics.
#[derive(Clone, Default)]
pub(crate) struct Sources(Arc<Mutex<HashMap<String, Arc<str>>>>);

impl Sources {
    /// Remember a file's text.
    pub(crate) fn insert(&self, name: &str, text: &str) {
        self.0.lock().expect("sources lock").insert(name.to_string(), text.into());
    }
    /// A file's text.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<str>> {
        self.0.lock().expect("sources lock").get(name).cloned()
    }
    /// Every file's display name.
    pub(crate) fn names(&self) -> Vec<String> {
        self.0.lock().expect("sources lock").keys().cloned().collect()
    }
}
