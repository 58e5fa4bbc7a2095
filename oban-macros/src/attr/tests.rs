//! The option grammar as a whole: every option parses, and every mistake is reported while the
//! rest is kept.

use super::*;

fn parse(args: &str) -> (Options, Vec<String>) {
    let cx = Ctxt::new();
    let options = Options::parse(&cx, args.parse().unwrap());
    let errors = match cx.check() {
        Ok(()) => Vec::new(),
        Err(tokens) => tokens
            .to_string()
            .split("compile_error !")
            .skip(1)
            .map(|e| e.trim().to_owned())
            .collect(),
    };
    (options, errors)
}

#[test]
fn suggestions() {
    assert_eq!(closest("queu", OPTIONS), Some("queue"));
    assert_eq!(closest("max_attempt", OPTIONS), Some("max_attempts"));
    assert_eq!(closest("Priority", OPTIONS), Some("priority"));
    assert_eq!(closest("uniq", OPTIONS), Some("unique"));
    assert_eq!(
        closest("order", &["order_id", "recipient"]),
        Some("order_id")
    );
    assert_eq!(closest("colour", OPTIONS), None);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}

#[test]
fn every_option_parses() {
    let (options, errors) = parse(
        r#"queue = "mailers", max_attempts = 10, priority = 3, timeout = "1m",
           tags = ["a", "b"], name = "App.Send", args = SendArgs, derive(Debug),
           backoff = exponential(base = 2, max = "1h"),
           unique(period = infinity, keys = [order_id], fields = [args, queue],
                  states = incomplete, timestamp = scheduled_at)"#,
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(options.queue.as_deref(), Some("mailers"));
    assert_eq!(options.max_attempts, Some(10));
    assert_eq!(options.priority, Some(3));
    assert_eq!(options.timeout_ms, Some(60_000));
    assert_eq!(options.tags, Some(vec!["a".to_owned(), "b".to_owned()]));
    assert_eq!(options.name.as_deref(), Some("App.Send"));
    assert_eq!(
        options.args.map(|a| a.to_string()).as_deref(),
        Some("SendArgs")
    );
    assert_eq!(options.derives.len(), 1);
    assert!(matches!(
        options.backoff,
        Some(Backoff::Exponential {
            base: 2_000,
            max: 3_600_000
        })
    ));
    let unique = options.unique.expect("unique");
    assert!(matches!(unique.period, Some(Period::Infinity)));
    assert_eq!(unique.keys.map(|k| k.len()), Some(1));
    assert!(unique.fields == Some(vec![UniqueField::Args, UniqueField::Queue]));
    assert!(unique.states == Some(UniqueStates::Incomplete));
    assert!(unique.timestamp == Some(UniqueTimestamp::ScheduledAt));
}

#[test]
fn every_mistake_is_reported_and_the_rest_is_kept() {
    let (options, errors) =
        parse(r#"queue = "Bad Queue", priority = 10, queue = "x", colour = 1, max_attempts = 5"#);
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(
        errors[0].contains("try `queue = \\\"bad_queue\\\"`"),
        "{}",
        errors[0]
    );
    assert!(
        errors[2].contains("`queue` set multiple times"),
        "{}",
        errors[2]
    );
    assert!(
        errors[3].contains("unknown option `colour`"),
        "{}",
        errors[3]
    );
    assert_eq!(options.max_attempts, Some(5));
    assert_eq!(options.queue, None);
}

#[test]
fn a_missing_value_is_reported_on_its_option() {
    let (_, errors) = parse("queue = , priority = 1");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("`queue` needs a value"), "{}", errors[0]);
}

#[test]
fn half_valid_unique_is_dropped_whole() {
    let (options, errors) = parse("unique(period = 60, states = finished)");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(options.unique.is_none());
}
