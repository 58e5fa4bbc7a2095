//! The schema's migrations: [`Admin::migration_status`] and [`Admin::migrate`].

use serde::Serialize;

use super::Admin;
use crate::error::Result;

/// Which schema steps of this build are applied to the database (recorded in
/// `oban_rust_migrations`), as `oban migrate --check` reports them.
///
/// JSON: `{"up_to_date": false, "steps": [{"version": 1, "description": "install oban_jobs",
/// "applied": true}, ..], "pending": [7], "unknown": []}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MigrationStatus {
    /// Whether every step this build knows is applied ([`MigrationStatus::up_to_date`]).
    pub up_to_date: bool,
    /// Every step this build knows, in order, with whether it is applied.
    pub steps: Vec<MigrationStep>,
    /// The versions not applied yet, in order: what [`Admin::migrate`] would apply.
    pub pending: Vec<i32>,
    /// Versions recorded as applied that this build does not know (a newer release migrated
    /// the database).
    pub unknown: Vec<i32>,
}

impl MigrationStatus {
    /// Whether nothing is pending.
    pub fn up_to_date(&self) -> bool {
        self.pending.is_empty()
    }
}

/// One schema step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MigrationStep {
    /// Its version (1, 2, ..).
    pub version: i32,
    /// What it does.
    pub description: String,
    /// Whether it is recorded as applied.
    pub applied: bool,
}

impl Admin {
    /// The schema steps this build knows and which of them the database has. A database where
    /// only another Oban (Elixir, Python) installed the table has none recorded: every step is
    /// pending, and [`Admin::migrate`] keeps that table as it is.
    pub async fn migration_status(&self) -> Result<MigrationStatus> {
        let versions = self.engine.schema_versions().await?;
        let steps: Vec<MigrationStep> = versions
            .known
            .iter()
            .map(|(version, description)| MigrationStep {
                version: *version,
                description: description.clone(),
                applied: versions.applied.contains(version),
            })
            .collect();
        let pending = steps
            .iter()
            .filter(|s| !s.applied)
            .map(|s| s.version)
            .collect::<Vec<_>>();
        let unknown = versions
            .applied
            .iter()
            .copied()
            .filter(|v| !versions.known.iter().any(|(known, _)| known == v))
            .collect();
        Ok(MigrationStatus {
            up_to_date: pending.is_empty(),
            steps,
            pending,
            unknown,
        })
    }

    /// Applies the pending steps (see [`crate::migrate()`]): idempotent, safe beside running
    /// nodes and other migrators.
    pub async fn migrate(&self) -> Result<()> {
        self.engine.schema_migrate().await
    }
}
