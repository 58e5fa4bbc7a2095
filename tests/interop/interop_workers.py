"""Workers of the interop tests, importable as `interop_workers` so their names are stable:
`interop_workers.Echo` and `interop_workers.Fail`, the names the Rust side inserts and registers.
"""

import sys

from oban import worker


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


def log(message):
    print(message, file=sys.stderr, flush=True)
