"""`mydata airflow` (the airflow CLI on the project's Airflow home) and `mydata demo`."""
from __future__ import annotations

import argparse
import sys

from cli.settings import settings_of


def cmd_airflow(args: argparse.Namespace) -> int:
    from mydata.airflow_runner import run_airflow

    result = run_airflow(settings_of(args), args.airflow_args)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


def cmd_demo(args: argparse.Namespace) -> int:
    from cli.demo import run_demo

    return run_demo(settings_of(args), subjects=args.subjects, months=args.months, seed=args.seed)
