//! The text search of a [`JobFilter`](super::JobFilter): the `LIKE` pattern the database engines
//! bind, and the same test in Rust for the inline engine.

use crate::job::Job;

/// A non-blank search, trimmed. Engines bind [`Search::pattern`] and [`Search::id`]; the inline
/// engine calls [`Search::matches`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Search {
    text: String,
}

impl Search {
    /// The search for `raw`, or `None` when it is empty or only whitespace.
    pub(crate) fn new(raw: &str) -> Option<Search> {
        let text = raw.trim();
        (!text.is_empty()).then(|| Search {
            text: text.to_owned(),
        })
    }

    /// A `LIKE` pattern finding the text anywhere: `%text%` with the text's own `\`, `%` and `_`
    /// escaped by a backslash (PostgreSQL's default escape; SQLite's statements say
    /// `ESCAPE '\'`). Always bound, never formatted into a statement.
    pub(crate) fn pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.text.len() + 2);
        pattern.push('%');
        for c in self.text.chars() {
            if matches!(c, '\\' | '%' | '_') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        pattern
    }

    /// The id the text names, when it is an integer.
    pub(crate) fn id(&self) -> Option<i64> {
        self.text.parse().ok()
    }

    /// Whether `job` matches, as the database engines decide it: the text, ignoring the case of
    /// ASCII letters, in the worker, the args' JSON or the errors' JSON, or the text equal to the
    /// id.
    pub(crate) fn matches(&self, job: &Job) -> bool {
        if self.id() == Some(job.id) {
            return true;
        }
        let needle = self.text.to_ascii_lowercase();
        let found = |haystack: &str| haystack.to_ascii_lowercase().contains(&needle);
        found(&job.worker)
            || found(&job.args.to_string())
            || serde_json::to_string(&job.errors).is_ok_and(|errors| found(&errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_text_is_no_search() {
        assert_eq!(Search::new(""), None);
        assert_eq!(Search::new(" \t\n"), None);
        assert_eq!(Search::new("  mail ").unwrap().text, "mail");
    }

    #[test]
    fn wildcards_and_the_escape_are_escaped() {
        let pattern = |text: &str| Search::new(text).unwrap().pattern();
        assert_eq!(pattern("mail"), "%mail%");
        assert_eq!(pattern("50%"), "%50\\%%");
        assert_eq!(pattern("a_b"), "%a\\_b%");
        assert_eq!(pattern("C:\\tmp"), "%C:\\\\tmp%");
        assert_eq!(pattern("'; DROP"), "%'; DROP%", "quotes are data in a bind");
    }

    #[test]
    fn case_is_ignored_for_ascii_letters() {
        let job: Job = serde_json::from_value(serde_json::json!({
            "id": 7, "state": "available", "queue": "default", "worker": "Mailer.Send",
            "args": {"city": "Zürich", "name": "ÉCOLE"}, "meta": {}, "tags": [], "errors": [],
            "attempt": 0, "max_attempts": 20, "priority": 0, "attempted_by": [],
            "inserted_at": "2026-01-01T00:00:00Z", "scheduled_at": "2026-01-01T00:00:00Z",
            "attempted_at": null, "completed_at": null, "discarded_at": null, "cancelled_at": null
        }))
        .unwrap();
        let found = |text: &str| Search::new(text).unwrap().matches(&job);
        assert!(found("mailer.SEND"));
        assert!(found("zürICH"));
        assert!(!found("zÜrich"), "only ASCII letters fold");
        assert!(!found("école"));
        assert!(found("7"), "the id");
        assert!(!found("20"), "max_attempts is not searched");
    }

    #[test]
    fn integers_name_ids() {
        assert_eq!(Search::new(" 42 ").unwrap().id(), Some(42));
        assert_eq!(Search::new("42a").unwrap().id(), None);
        assert_eq!(Search::new("99999999999999999999").unwrap().id(), None);
    }
}
