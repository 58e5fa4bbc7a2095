//! Every option at once.
#![deny(warnings, clippy::pedantic)]

use oban::{worker, Backoff, UniquePeriod, Worker};

#[worker(
    queue = "billing_2",
    max_attempts = 3,
    priority = 9,
    timeout = 45,
    tags = ["billing", "invoice"],
    name = "MyApp.Workers.Invoice",
    args = InvoiceArgs,
    derive(Debug, Clone, PartialEq, Eq),
    backoff = linear(30),
    unique(
        period = 3600,
        keys = [invoice_id],
        fields = [args, queue, worker, meta],
        states = incomplete,
        timestamp = scheduled_at,
    ),
    sequence(keys = [customer], on_failure = "hold"),
)]
async fn send_invoice(invoice_id: i64, customer: String) -> Result<(), String> {
    let _ = (invoice_id, customer);
    Ok(())
}

fn main() {
    let options = InvoiceArgs::options();
    assert_eq!(InvoiceArgs::NAME, "MyApp.Workers.Invoice");
    assert_eq!(options.queue, "billing_2");
    assert_eq!(options.max_attempts, 3);
    assert_eq!(options.priority, 9);
    assert_eq!(options.tags, &["billing", "invoice"]);
    assert_eq!(options.timeout, Some(std::time::Duration::from_secs(45)));
    assert!(matches!(options.backoff, Backoff::Linear { base } if base.as_secs() == 30));
    let unique = options.unique.expect("unique");
    assert_eq!(unique.period, UniquePeriod::Seconds(3600));
    assert_eq!(unique.keys, &["invoice_id"]);
    assert_eq!(unique.fields.len(), 4);
    let sequence = options.sequence.expect("sequence");
    assert_eq!(sequence.keys, &["customer"]);
    assert_eq!(sequence.on_failure, oban::sequence::OnFailure::Hold);
    let job = InvoiceArgs::new(7, "ACME".to_owned());
    assert_eq!(
        job.args().clone(),
        InvoiceArgs {
            invoice_id: 7,
            customer: "ACME".to_owned()
        }
    );
}
