"""The full schemathesis run over /openapi.json (not a test; the suite's
tests/test_openapi_fuzz.py is its bounded form).

    .venv/bin/python bench/openapi_fuzz.py [--max-examples 100] [--seed N] [--workers 2]

Serves the gateway on loopback (gunicorn, its own SQLite file, raised quotas, providers
at a closed loopback port: tests/support/live_gateway.py) and runs every check of
schemathesis over every operation, with the settings of tests/schemathesis.toml; prints
schemathesis's report and exits with its status (0: no failure).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.support.live_gateway import LiveGateway, generous_login_throttle, run_schemathesis  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers (and Redis-free: 1)")
    args = parser.parse_args()
    extra = ["--seed", str(args.seed)] if args.seed is not None else []
    with LiveGateway(workers=args.workers, policy_changes=[generous_login_throttle]) as gateway:
        started = time.monotonic()
        run = run_schemathesis(gateway, args.max_examples, *extra, timeout=3 * 3600)
        print(run.stdout)
        print(run.stderr, file=sys.stderr)
        print(f"schemathesis: exit {run.returncode} in {time.monotonic() - started:.0f} s "
              f"({args.max_examples} examples per operation)")
        if "Traceback" in gateway.log_tail(200000):
            print("the gateway logged a traceback:\n" + gateway.log_tail(), file=sys.stderr)
            return 1
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
