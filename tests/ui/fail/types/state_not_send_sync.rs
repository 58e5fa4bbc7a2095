use std::cell::Cell;

use oban::{worker, State};

#[worker]
async fn count(counter: State<Cell<u64>>) {
    counter.set(counter.get() + 1);
}

fn main() {}
