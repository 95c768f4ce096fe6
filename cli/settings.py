"""How a command's flags become ``Settings``: flags over MYDATA_* variables over the defaults."""
from __future__ import annotations

import argparse

from mydata.config import Settings


def settings_of(args: argparse.Namespace) -> Settings:
    return Settings.load(data_root=args.data_root, spark_master=args.spark_master, engine=args.engine,
                         purpose=args.purpose, as_of=args.as_of, delivery_date=args.dt)


def link_key_of(args: argparse.Namespace, command: str) -> str:
    """The subject's link key a command was given, refused in one line unless it is one."""
    from mydata.config import ConfigError
    from schemas.landing import LINK_KEY_PATTERN

    if not args.link_key:
        raise ConfigError(f"{command} needs the subject's link key")
    if not LINK_KEY_PATTERN.match(args.link_key):
        raise ConfigError(f"{command}: {len(args.link_key)} characters is not a link key (43 characters of "
                          "A-Z a-z 0-9 _ -, as the holders' tokenizer writes them)")
    return args.link_key
