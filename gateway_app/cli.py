"""The `gateway` command: db upgrade, seed --demo, worker, backup, restore."""
import argparse
import logging
import sys


def cmd_db_upgrade(args):
    from .migrate import upgrade
    from .settings import from_environment
    url = from_environment()["SQLALCHEMY_DATABASE_URL"]
    upgrade(url, args.revision)
    print(f"database upgraded to {args.revision}")


def cmd_seed(args):
    from . import create_app
    from .demo import seed_demo
    if not args.demo:
        print("nothing to seed: pass --demo", file=sys.stderr)
        return 2
    app = create_app()
    with app.app_context():
        credentials = seed_demo(calls_per_company=args.calls, largest_company_calls=args.largest)
    print("demo companies (email / password / tier):")
    for row in credentials:
        print(f"  {row['email']}  {row['password']}  {row['tier']}")
    return 0


def cmd_worker(args):
    """Drain the outbox (bookings, emails, meter events, recordings), report settled usage to
    Stripe and delete expired exports."""
    from . import create_app
    from .integrations.usage_reporting import report_due_usage
    from .outbox import run_worker
    from .services.call_exports import SWEEP_INTERVAL, delete_expired_exports
    app = create_app()
    interval = app.extensions["gateway"].policy["integrations"]["usage_report_interval"]

    # fail at start with a clear message; later database blips are retried by the loop
    with app.extensions["gateway_engine"].connect():
        pass
    with app.app_context():
        run_worker(once=args.once, poll_interval=args.poll_interval,
                   housekeeping=[(interval, report_due_usage),
                                 (SWEEP_INTERVAL, delete_expired_exports)])
    return 0


def cmd_backup(args):
    """Dump the database into the file store (or list the dumps there)."""
    from . import create_app
    from .backups import list_backups, take_backup
    app = create_app()
    state = app.extensions["gateway"]
    if args.list:
        for item in list_backups(state.files):
            print(f"{item.key.rsplit('/', 1)[-1]}  {item.size} bytes  {item.modified:%Y-%m-%d %H:%M:%S}Z")
        return 0
    name = take_backup(app.extensions["gateway_engine"], state.files, state.policy["files"]["backups_keep"])
    print(f"backup written: {name} ({state.files.description})")
    return 0


def cmd_restore(args):
    """Load a dump from the file store into an empty database."""
    from . import create_app
    from .backups import BackupError, restore_backup
    from .files import FileMissing
    from .migrate import upgrade
    app = create_app()
    url = app.config["SQLALCHEMY_DATABASE_URL"]
    try:
        counts = restore_backup(app.extensions["gateway_engine"], app.extensions["gateway"].files,
                                args.name, force=args.force, upgrade=lambda: upgrade(url))
    except BackupError as exc:
        print(f"gateway: restore refused: {one_line(exc)}", file=sys.stderr)
        return 1
    except FileMissing:
        print(f"gateway: no backup named {args.name} (see gateway backup --list)", file=sys.stderr)
        return 1
    print(f"restored {args.name}: {sum(counts.values())} rows in {len(counts)} tables")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="gateway", description="Voice-agent API gateway")
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="database migrations")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_upgrade = db_commands.add_parser("upgrade", help="apply Alembic migrations")
    db_upgrade.add_argument("revision", nargs="?", default="head")
    db_upgrade.set_defaults(handler=cmd_db_upgrade)

    seed = commands.add_parser("seed", help="load data")
    seed.add_argument("--demo", action="store_true", help="demo companies, one per tier (idempotent)")
    seed.add_argument("--calls", type=int, default=3000, help="calls per demo company")
    seed.add_argument("--largest", type=int, default=3000,
                      help="calls for the unlimited-tier company (benchmarks use 100000)")
    seed.set_defaults(handler=cmd_seed)

    worker = commands.add_parser("worker", help="deliver the durable outbox")
    worker.add_argument("--once", action="store_true", help="deliver what is due, then exit")
    worker.add_argument("--poll-interval", type=float, default=1.0)
    worker.set_defaults(handler=cmd_worker)

    backup = commands.add_parser("backup", help="dump the database into the file store")
    backup.add_argument("--list", action="store_true", help="list the dumps in the file store")
    backup.set_defaults(handler=cmd_backup)

    restore = commands.add_parser("restore", help="load a dump into an empty database")
    restore.add_argument("name", help="a dump's name, as gateway backup --list shows it")
    restore.add_argument("--force", action="store_true",
                         help="replace the rows of a database that is not empty")
    restore.set_defaults(handler=cmd_restore)
    return parser


def one_line(text):
    return " ".join(str(text).split())


def database_problem(exc):
    """Name the database the command could not use, without its password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError
    from .settings import from_environment
    try:
        url = make_url(from_environment()["SQLALCHEMY_DATABASE_URL"]).render_as_string(hide_password=True)
    except ArgumentError:
        return "DATABASE_URL is not a database URL (expected e.g. mysql://user:pass@host/db)"
    reason = getattr(exc, "orig", None) or exc
    return f"cannot use the database {url} (DATABASE_URL): {one_line(reason)}"


def main(argv=None):
    from sqlalchemy.exc import SQLAlchemyError
    from .files import StorageError
    from .policy import PolicyError
    from .settings import SettingsError
    from .logs import configure_logging
    configure_logging()
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # start-up chatter
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except (PolicyError, SettingsError) as exc:
        print(f"gateway: {one_line(exc)}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        print(f"gateway: {database_problem(exc)}", file=sys.stderr)
        return 1
    except StorageError as exc:
        print(f"gateway: file storage: {one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
