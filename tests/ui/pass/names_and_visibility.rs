//! Visibility, renamed structs and raw identifiers; workers in modules, used from outside.
#![deny(warnings, missing_docs, clippy::pedantic)]

mod workers {
    use oban::worker;

    /// Imports a file.
    #[worker(args = ImportFile, name = "Importer.File")]
    pub(crate) async fn import(r#type: String, mut path: String, attempts: Option<u32>) {
        path.push_str(&r#type);
        let _ = attempts;
    }

    pub mod nested {
        //! Deeper.

        /// Visible to the crate.
        #[oban::worker]
        pub async fn reindex(table: String) {
            let _ = table;
        }
    }

    // The macro carries `cfg`s written after it over to what it generates.
    #[oban::worker]
    #[cfg(any())]
    async fn never_compiled(nothing: NoSuchType) {}
}

fn main() {
    use oban::Worker;

    let job = workers::ImportFile::new("csv".to_owned(), "/tmp/a".to_owned(), Some(1));
    assert_eq!(job.args().r#type, "csv");
    assert_eq!(workers::ImportFile::NAME, "Importer.File");
    let _ = workers::nested::Reindex::new("jobs".to_owned());
    let args = workers::nested::Reindex {
        table: "jobs".to_owned(),
    };
    let _ = args.table;
}
