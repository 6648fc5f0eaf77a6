"""``mps-triggers``: argument parsing, configuration, and the exit status of every subcommand.

Each subcommand is ``run_<name>(args) -> int``; :func:`main` turns a :class:`~.common.UsageError` or a
:class:`~mps_triggers.exceptions.ConfigError` into exit status 2 with the argument or variable named, and
Ctrl-C into 1 (work already done is kept; ``--resume`` continues it).
"""
from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from typing import Any, Callable

from .common import UsageError, load_env_file, note

EPILOG_BACKFILL = """\
examples:
  # what would happen: objects per route, skips per reason, already in the ledger, time at the rate
  mps-triggers backfill s3://media-in/uploads/ --dry-run
  # submit at 50 ProcessMedia requests/s (the rest of MPS's 100/s stays for live uploads), one line per object
  mps-triggers backfill s3://media-in/uploads/ --rate 50 --report backfill.jsonl
  # after Ctrl-C or a crash: continue from the checkpoint, without listing again or submitting anything twice
  mps-triggers backfill s3://media-in/uploads/ --rate 50 --report backfill.jsonl --resume
  # a COS bucket, an S3 Inventory, a list of keys
  mps-triggers backfill cos://media-1250000000/uploads/ --region ap-guangzhou
  mps-triggers backfill s3://inventory-bucket/media-in/daily/2026-11-20T01-00Z/manifest.json
  mps-triggers backfill keys.txt --bucket s3://media-in
  # let the deployed function do the work: S3 notifications to its upload queue
  mps-triggers backfill s3://media-in/uploads/ --via-queue https://sqs.us-east-1.amazonaws.com/123456789012/uploads
"""

EPILOG_DEPLOY_SCF = """\
examples:
  cp deploy/scf/config.example.toml deploy/scf/config.toml     # then fill in region, appid, buckets, ScheduleId
  python3 tasks.py package-scf --layer                          # the zips, into build/scf/
  export TENCENTCLOUD_SECRET_ID=AKID... TENCENTCLOUD_SECRET_KEY=...
  mps-triggers deploy scf --dry-run                             # what would be created or changed, nothing sent
  mps-triggers deploy scf                                       # do it; run again after any change
  mps-triggers deploy scf --write-tccli deploy/scf/tccli        # the same requests for tccli, by hand
"""

EPILOG_REPROCESS = """\
examples:
  # run two objects again (generation 1: a SessionId MPS has not seen); running this again submits nothing
  mps-triggers reprocess s3://media-in/uploads/a.mp4 s3://media-in/uploads/b.mp4
  # the failed objects of a backfill report, or of `mps-triggers report --failed --format keys`
  grep '"result": "failed"' backfill.jsonl | mps-triggers reprocess --from-file -
  # a whole prefix, a third time
  mps-triggers reprocess --prefix s3://media-in/uploads/2026-11-20/ --generation 2 --dry-run
"""


def _common(p: argparse.ArgumentParser, formats: tuple[str, ...] = ("table", "json")) -> None:
    p.add_argument("--env-file", metavar="FILE", help="read the functions' environment variables from FILE "
                                                         "(dotenv syntax; its values win over the environment)")
    p.add_argument("--format", dest="fmt", choices=formats, default="table",
                   help="results on stdout: " + ", ".join(formats) + " (default table)")
    p.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    p.add_argument("--verbose", action="store_true", help="the core's JSON log lines on stderr")


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 100 (MPS's ProcessMedia quota per account)")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _submission_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate", type=_rate, default=50.0, metavar="N",
                   help="ProcessMedia requests per second, retries included (default 50, at most 100); "
                        "less while MPS's window is full")
    p.add_argument("--concurrency", type=_positive, default=32, metavar="N",
                   help="requests in flight at once (default 32)")
    p.add_argument("--dry-run", action="store_true", help="submit nothing; print the plan")
    p.add_argument("--report", metavar="FILE", help="one JSON line per object: storage, bucket, key, route, "
                                                    "session_id, result (submitted|duplicate|skipped|failed), "
                                                    "task_id, reason")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    p.add_argument("--restart", action="store_true", help="drop an interrupted run's checkpoint and begin again")
    p.add_argument("--state-dir", default=".mps-triggers", metavar="DIR",
                   help="where checkpoints are kept (default .mps-triggers)")
    p.add_argument("--region", help="the COS bucket's region (or COS_REGION), when the URI does not say")
    p.add_argument("--bucket", metavar="URI", help="the bucket of bare keys in a key file: s3://bucket or "
                                                   "cos://bucket-appid (a path after it is a key prefix)")


def parser() -> argparse.ArgumentParser:
    """The whole command line."""
    top = argparse.ArgumentParser(
        prog="mps-triggers", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Day-2 operations for mps-triggers, on the same core as the functions: it reads the same "
                    "environment variables (MPS_ROUTES, MPS_SCHEDULE_ID, ARCHIVE_URI, ...), so routes, the "
                    "recursion guard, output folders and SessionIds are what the live path computes.",
        epilog="exit status: 0 done (or skipped on purpose), 1 some object or message failed, 2 usage or "
               "configuration error\nrun 'mps-triggers COMMAND --help' for a command's options and examples")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")

    b = sub.add_parser("backfill", help="submit the objects already in a bucket", epilog=EPILOG_BACKFILL,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="List SOURCE, decide each object as the submit function would (skips, recursion "
                                   "guard, routes), leave out what the ledger says was submitted, and submit the "
                                   "rest to MPS at --rate. SOURCE: s3://bucket/prefix, cos://bucket-appid/prefix, "
                                   "an S3 or COS inventory manifest.json (URI or local file), a file of keys, or - "
                                   "(stdin).")
    b.add_argument("source", metavar="SOURCE")
    _submission_options(b)
    b.add_argument("--reprocess", action="store_true",
                   help="also submit objects the ledger already holds (MPS still refuses a SessionId it saw in "
                        "the last 3 days: use `reprocess` to run objects again on purpose)")
    b.add_argument("--via-queue", metavar="QUEUE_URL",
                   help="send S3 notifications to the upload queue instead: the deployed function submits them")
    _common(b)

    r = sub.add_parser("reprocess", help="submit objects again on purpose, with a new SessionId generation",
                       epilog=EPILOG_REPROCESS, formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Submit objects again inside MPS's 3-day SessionId window. The SessionId is "
                                   "derived with --generation (the same object and generation always give the same "
                                   "SessionId, so a reprocess is itself idempotent); the generation is recorded in "
                                   "the SessionContext and the ledger. Objects: URIs as arguments, --from-file "
                                   "(one per line: URIs, bare keys with --bucket, or the JSON lines of a report), "
                                   "or --prefix.")
    r.add_argument("objects", nargs="*", metavar="URI", help="s3://bucket/key or cos://bucket-appid/key")
    r.add_argument("--from-file", metavar="FILE", help="objects one per line (- for stdin)")
    r.add_argument("--prefix", action="append", default=[], metavar="URI",
                   help="every object under s3://bucket/prefix or cos://bucket-appid/prefix (repeatable)")
    r.add_argument("--generation", type=_positive, default=1, metavar="N",
                   help="the SessionId generation (default 1; 2 for a third run of the same objects, ...)")
    _submission_options(r)
    _common(r)

    from .operations import add_parsers
    add_parsers(sub, _common)
    from . import reports
    reports.add_parsers(sub, _common)

    d = sub.add_parser("deploy", help="deploy the functions (scf: Tencent SCF, from one config file)")
    targets = d.add_subparsers(dest="target", metavar="TARGET")
    scf = targets.add_parser("scf", help="create or update everything on SCF, idempotent", epilog=EPILOG_DEPLOY_SCF,
                             formatter_class=argparse.RawDescriptionHelpFormatter,
                             description="Create or update, from one config file, the CAM roles and policies, the "
                                         "layer, the three functions, their triggers (COS, function URL, timer), "
                                         "the submit function's reserved concurrency, async retries and dead-letter "
                                         "queue, and wire the function URL into the submit function, in one run. "
                                         "Reads always run; --dry-run prints every write without sending it.")
    scf.add_argument("--config", default="deploy/scf/config.toml", metavar="FILE",
                     help="the deployment config (default deploy/scf/config.toml; see config.example.toml)")
    scf.add_argument("--packages", metavar="DIR", help="the zips of `python3 tasks.py package-scf --layer` "
                                                        "(default: the config's packages.dir, build/scf)")
    scf.add_argument("--dry-run", action="store_true", help="read the current state, print every write, send none")
    scf.add_argument("--endpoint", metavar="HOST", help="send SCF and CAM calls to HOST (a local fake API)")
    scf.add_argument("--write-tccli", metavar="DIR",
                     help="only write the same requests as tccli --cli-input-json files into DIR (the manual path)")
    _common(scf)
    return top


def _quiet_logs(verbose: bool) -> None:
    """The core logs JSON lines to stdout (the functions' log stream); here stdout holds results, so they go to
    stderr with ``--verbose`` and nowhere otherwise."""
    from mps_triggers.logs import JsonFormatter, logger

    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    else:
        logger.addHandler(logging.NullHandler())


def submit_job(kind: str, rate: float, concurrency: int) -> Any:
    """The submit function's job, configured from the environment, with an MPS client paced at ``rate``, less when
    MPS's window is full (:func:`mps_triggers.mps.rate_windows`).
    Raises :class:`~mps_triggers.exceptions.ConfigError`."""
    from mps_triggers.config import load_settings
    from mps_triggers.mps import MpsClient, rate_windows
    from mps_triggers.retries import RateLimiter, RetryPolicy
    from mps_triggers.secrets import mps_credentials
    from mps_triggers.submit import SubmitJob

    s = load_settings()
    client = MpsClient(s.mps_endpoint, functools.partial(mps_credentials, s), region=s.mps_region,
                       timeout=s.mps_timeout, retry=RetryPolicy(max_attempts=s.mps_max_attempts),
                       max_connections=max(10, concurrency), pace=RateLimiter(rate), windows=rate_windows(rate))
    return SubmitJob(s, client=client, origin=kind)


def _options(args: argparse.Namespace, kind: str, generation: int) -> Any:
    from .backfill import Options

    if args.resume and args.restart:
        raise UsageError("--resume/--restart", "choose one")
    return Options(kind=kind, rate=args.rate, concurrency=args.concurrency, dry_run=args.dry_run, report=args.report,
                   resume=args.resume, restart=args.restart, state_dir=args.state_dir,
                   reprocess=getattr(args, "reprocess", False), generation=generation,
                   via_queue=getattr(args, "via_queue", None), fmt=args.fmt, progress=not args.no_progress)


def run_backfill(args: argparse.Namespace) -> int:
    from .backfill import Run
    from .sources import Stores, open_source

    options = _options(args, "backfill", 0)
    job = submit_job("backfill", args.rate, args.concurrency)
    stores = Stores(job.settings, args.region or os.environ.get("COS_REGION"))
    source = open_source(args.source, stores, args.bucket)
    sqs = None
    if args.via_queue:
        if args.source.startswith("cos://"):
            raise UsageError("--via-queue", "the upload queue takes S3 notifications; COS objects are submitted "
                                            "directly (leave out --via-queue)")
        from .operations import sqs_client
        sqs = sqs_client(args.via_queue)
    return Run(job, source, options, sqs).execute()


def run_reprocess(args: argparse.Namespace) -> int:
    from .backfill import Run
    from .sources import KeysSource, PrefixesSource, PrefixSource, Stores, parse_uri

    if not (args.objects or args.from_file or args.prefix):
        raise UsageError("reprocess", "name objects: URIs as arguments, --from-file FILE (or -), or --prefix URI")
    options = _options(args, "reprocess", args.generation)
    job = submit_job("reprocess", args.rate, args.concurrency)
    stores = Stores(job.settings, args.region or os.environ.get("COS_REGION"))
    parts: list[Any] = []
    if args.objects:
        parts.append(KeysSource("<arguments>", stores, args.bucket, lines=args.objects))
    if args.from_file:
        parts.append(KeysSource(args.from_file, stores, args.bucket))
    for prefix in args.prefix:
        parts.append(PrefixSource(parse_uri(prefix, "--prefix"), stores))
    source = parts[0] if len(parts) == 1 else PrefixesSource(parts)
    return Run(job, source, options).execute()


def _commands() -> dict[str, Callable[[argparse.Namespace], int]]:
    from .operations import COMMANDS as operations
    from .reports import COMMANDS as reports

    return {"backfill": run_backfill, "reprocess": run_reprocess, "deploy": run_deploy, **operations, **reports}


def run_deploy(args: argparse.Namespace) -> int:
    if args.target != "scf":
        raise UsageError("deploy", "name the target: mps-triggers deploy scf (SAM deploys AWS: sam deploy)")
    from .deploy_scf import run

    return run(args)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (``sys.argv[1:]``); returns the exit status."""
    from mps_triggers.exceptions import ConfigError, MpsTriggersError

    p = parser()
    args = p.parse_args(argv)
    if not args.command:
        p.print_help(sys.stderr)
        return 2
    from mps_triggers.logs import logger

    handlers = list(logger.handlers)  # put back on return: main() may run inside another program (or a test)
    try:
        load_env_file(args.env_file)
        _quiet_logs(args.verbose)
        return _commands()[args.command](args)
    except UsageError as exc:
        note(f"mps-triggers {args.command}: error: {exc}")
        return 2
    except ConfigError as exc:
        note(f"mps-triggers {args.command}: configuration error: {exc.variable}: {exc.problem}")
        return 2
    except MpsTriggersError as exc:  # a bucket or queue that cannot be read: say which, and stop
        note(f"mps-triggers {args.command}: error: {type(exc).__name__}: {exc}")
        return 2 if "NoSuchBucket" in str(exc) else 1
    except KeyboardInterrupt:
        note(f"mps-triggers {args.command}: interrupted")
        return 1
    finally:
        logger.handlers[:] = handlers
