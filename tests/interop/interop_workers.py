"""Workers of the interop tests, importable as `interop_workers` so their names are stable:
`interop_workers.Echo` and `interop_workers.Fail`, the names the Rust side inserts and registers.
"""

import sys

from oban import worker
from oban.job import Record


@worker(queue="default")
class Echo:
    """Completes, and reports the job it ran on stdout (the test counts runs per job)."""

    async def process(self, job):
        print(f"ran {job.id}", flush=True)


@worker(queue="default", max_attempts=1)
class Fail:
    """Fails with a message naming the job: with one attempt, the job is discarded and the
    message is in its `errors`."""

    async def process(self, job):
        print(f"ran {job.id}", flush=True)
        raise RuntimeError(f"python failure {job.id}")


@worker(queue="default")
class Recorder:
    """Records a value of every JSON kind, for the Rust side to read back."""

    async def process(self, job):
        print(f"ran {job.id}", flush=True)
        return Record(
            {"rows": 3, "file": "export.csv", "ok": True, "none": None, "ratio": 0.5,
             "big": 3_000_000_000, "tags": ["a", "é"], "nested": {"n": -7}}
        )


def log(message):
    print(message, file=sys.stderr, flush=True)
