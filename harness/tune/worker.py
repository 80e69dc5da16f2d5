"""``python -m harness.tune.worker <tune.yaml> --nameserver HOST --port PORT``: a BOHB worker.

Evaluates configurations for a master started with ``python -m harness.tune <tune.yaml>``
(which also starts its local worker processes with this command). Give it the same tuning
file as the master: the file defines the objective; the master only sends configurations and
budgets. On another machine, pass ``--host`` with an address of this machine that the master
can reach (docs/tuning.md), and the master's Pyro4 HMAC key (``--hmac-key KEY``, printed by the
master, or the environment variable ``HARNESS_PYRO_HMAC_KEY``). The worker exits when the master shuts it down, or after
``--idle-timeout`` seconds without a job.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from harness.tune import (
    hpbandster_compat,  # noqa: F401  (before anything is sent over Pyro4)
    pyro_hmac,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness.tune.worker", description=__doc__.splitlines()[0]
    )
    parser.add_argument("tune", help="the tuning YAML file the master runs")
    parser.add_argument("--nameserver", help="name server host (printed by the master)")
    parser.add_argument("--port", type=int, help="name server port (printed by the master)")
    parser.add_argument(
        "--out",
        help="instead of --nameserver/--port: the master's results root on a shared "
        "file system (reads the name server address it wrote there)",
    )
    parser.add_argument("--run-id", help="run id (default: the tuning file's name)")
    parser.add_argument(
        "--host", help="address of this machine that the master can reach (default: localhost)"
    )
    parser.add_argument("--worker-id", default=None, help="distinguishes workers in one process/host")
    parser.add_argument(
        "--hmac-key",
        help="the master's Pyro4 HMAC key (printed by the master; default: $HARNESS_PYRO_HMAC_KEY)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per trial (default 1)")
    parser.add_argument("--idle-timeout", type=float, default=None, help="exit after this many idle seconds")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from harness.tune.bohb import make_worker
    from harness.tune.config import TuneConfigError, load_tune

    try:
        config = load_tune(args.tune)
    except TuneConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run_id = args.run_id or config.name
    key = pyro_hmac.key_from(args.hmac_key)
    if key is None:
        print(
            f"error: no HMAC key: pass --hmac-key KEY (printed by the master) or set {pyro_hmac.ENV_VAR}",
            file=sys.stderr,
        )
        return 2
    pyro_hmac.install(key)
    objective = config.make_objective(threads=args.threads)
    worker = make_worker(
        objective,
        run_id,
        args.nameserver,
        args.port,
        host=args.host,
        failure_loss=config.failure_loss,
        worker_id=args.worker_id,
    )
    worker.timeout = args.idle_timeout
    if args.nameserver is None or args.port is None:
        if not args.out:
            print(
                "error: give --nameserver and --port (printed by the master), "
                "or --out on a shared file system",
                file=sys.stderr,
            )
            return 2
        try:
            worker.load_nameserver_credentials(str(Path(args.out) / config.name), num_tries=30)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(
        f"worker {worker.worker_id} on {socket.gethostname()}: name server {worker.nameserver}:"
        f"{worker.nameserver_port}, run {run_id}",
        flush=True,
    )
    try:
        worker.run(background=False)
    except RuntimeError as exc:  # hpbandster's "No nameserver found ..."
        print(f"error: {exc} (or the HMAC key differs from the master's)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
