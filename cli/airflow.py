"""`mydata airflow` (the airflow CLI on the project's Airflow home, `ui`, or `pool`) and `mydata demo`."""
from __future__ import annotations

import argparse
import sys

from cli.parsing import Commands
from cli.settings import settings_of


def cmd_airflow(args: argparse.Namespace) -> int:
    from mydata.airflow_runner import ensure_db, run_airflow
    from mydata.orchestration import lake_pool_command

    airflow_args = args.airflow_args[1:] if args.airflow_args[:1] == ["--"] else args.airflow_args  # `airflow -- …`
    if airflow_args[:1] == ["ui"]:
        return _serve_ui(args, airflow_args[1:])
    settings = settings_of(args)
    ensure_db(settings)  # a fresh home gets its metadata DB first, as the demo's does
    if airflow_args == ["pool"]:  # the lake's pool in a metadata DB migrated elsewhere (docker-compose)
        airflow_args = lake_pool_command(settings)
    result = run_airflow(settings, airflow_args)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


def _serve_ui(args: argparse.Namespace, ui_args: list[str]) -> int:
    """`mydata airflow ui [--port N]`: the Airflow UI on the embedded home until Ctrl-C."""
    from mydata.devtools.airflow_stack import StackError, start_ui, ui_password_file

    parser = argparse.ArgumentParser(prog="mydata airflow ui", description=_serve_ui.__doc__)
    parser.add_argument("--port", type=int, default=8080)
    port = parser.parse_args(ui_args).port
    settings = settings_of(args)
    print(f"airflow ui: parsing the DAGs and starting the api-server on {settings.lake.airflow_home} …", flush=True)
    try:
        stack = start_ui(settings, port)
    except StackError as exc:
        print(f"mydata airflow ui: {exc}", file=sys.stderr)
        return 1
    print(f"airflow ui: http://127.0.0.1:{port}  (user admin; its password is in {ui_password_file(settings)}); "
          f"server log {stack.logs / 'api-server.log'}; Ctrl-C stops it", flush=True)
    try:
        stack.processes["api-server"].wait()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from cli.demo import run_demo

    return run_demo(settings_of(args), subjects=args.subjects, months=args.months, seed=args.seed)


def register(commands: Commands) -> None:
    p = commands.add("demo", cmd_demo, "generate sample data and run the pipeline DAG through Airflow", lake=None)
    p.add_argument("--subjects", type=int, default=2_000, help="data subjects to generate (default 2000)")
    p.add_argument("--months", type=int, default=6, help="months of history (default 6)")
    p.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    p = commands.add("airflow", cmd_airflow, "run the airflow CLI against the project's Airflow home; `mydata "
                                             "airflow ui [--port 8080]` serves its UI at http://127.0.0.1:8080; "
                                             "`mydata airflow pool` sets the lake's pool of one slot", lake=None)
    p.add_argument("airflow_args", nargs=argparse.REMAINDER, help="the airflow command and its arguments")
