"""Python Oban (the pinned package) as the interop tests drive it. One command per run:

    node.py install-sql                       print the package's schema SQL
    node.py install URL                       install the schema (oban.schema.install)
    node.py insert URL WORKER COUNT           insert COUNT jobs; print their ids, one a line
    node.py work URL NODE                     run a node with queue `default` until stdin closes
    node.py errors URL ID                     print the job's errors as JSON
    node.py recorded URL ID                   print the job's recorded value as JSON

Every command ends on its own within its limit; `work` prints `started` once its queue runs.
"""

import asyncio
import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from psycopg_pool import AsyncConnectionPool  # noqa: E402

from oban import Oban  # noqa: E402
from oban.schema import install, install_sql  # noqa: E402
from oban._recorded import decode_recorded  # noqa: E402

import interop_workers  # noqa: E402

LIMIT = 60.0


async def pool_for(url):
    pool = AsyncConnectionPool(conninfo=url, open=False, min_size=1, max_size=4)
    await pool.open()
    return pool


async def until_stdin_closes():
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


async def main(argv):
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    command = argv[0]
    if command == "install-sql":
        print(install_sql())
        return
    pool = await pool_for(argv[1])
    try:
        if command == "install":
            await install(pool)
        elif command == "insert":
            worker = getattr(interop_workers, argv[2].rsplit(".", 1)[-1])
            oban = Oban(pool=pool)
            jobs = [worker.new({"n": n}) for n in range(int(argv[3]))]
            for job in await oban.enqueue_many(*jobs):
                print(job.id, flush=True)
        elif command == "work":
            oban = Oban(
                pool=pool,
                node=argv[2],
                queues={"default": 5},
                # Every periodic loop runs within the test, so each of Python Oban's maintenance
                # queries meets the schema (a failing loop logs a traceback, which fails the test).
                stager={"interval": 0.1},
                lifeline={"interval": 0.2},
                pruner={"interval": 0.2},
                refresher={"interval": 0.2},
                metrics={"interval": 0.2},
            )
            async with oban:
                print("started", flush=True)
                await until_stdin_closes()
        elif command == "errors":
            oban = Oban(pool=pool)
            job = await oban.get_job(int(argv[2]))
            print(json.dumps(job.errors, default=str), flush=True)
        elif command == "recorded":
            oban = Oban(pool=pool)
            job = await oban.get_job(int(argv[2]))
            print(json.dumps(decode_recorded(job.meta["return"])), flush=True)
        else:
            raise SystemExit(f"unknown command {command}")
    finally:
        await pool.close()


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1:]), LIMIT))
