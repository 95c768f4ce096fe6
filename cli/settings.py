"""How a command's flags become ``Settings``: flags over MYDATA_* variables over the defaults."""
from __future__ import annotations

import argparse

from mydata.config import Settings


def settings_of(args: argparse.Namespace) -> Settings:
    return Settings.load(data_root=args.data_root, spark_master=args.spark_master, engine=args.engine,
                         purpose=args.purpose, as_of=args.as_of, delivery_date=args.dt)
