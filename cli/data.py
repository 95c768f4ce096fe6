"""`mydata generate`, `tokenize`, `keys` and `holders`: data, identities and the holders collected from."""
from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

from cli.settings import settings_of
from mydata.config import ConfigError
from mydata.keys import KeyStore


def cmd_generate(args: argparse.Namespace) -> int:
    from mydata.devtools.synth import GeneratorOptions, generate
    from mydata.devtools.synth.generator import REAL_SHAPES

    settings = settings_of(args)
    out = Path(args.out) if args.out else settings.data_root
    keystore = KeyStore.open(settings.replace(data_root=out) if args.out else settings)
    if args.key_mismatch_rate > 0 and 2 not in keystore.link_versions:
        ref = keystore.rotate_link()
        print(f"key store: added {ref} (the generator simulates a holder that already rotated)")
    options = GeneratorOptions(
        subjects=args.subjects, months=args.months, seed=args.seed,
        start_month=date.fromisoformat(args.start_month + "-01"), defect_rate=args.defect_rate,
        key_mismatch_rate=args.key_mismatch_rate, chunk_size=args.chunk_size,
        workers=args.workers, compress=args.gzip, **(REAL_SHAPES if args.real_shapes else {}))
    started = time.perf_counter()
    summary = generate(out, options, keystore)
    elapsed = time.perf_counter() - started
    print(f"generated {summary.subjects:,} subjects x {args.months} months into {out / 'landing'} "
          f"in {elapsed:.1f}s")
    print(f"  deliveries: {', '.join(summary.deliveries)}"
          + (" (plus each month's refresh a week later and late card records ten days later)"
             if options.real_shapes else ""))
    for source, count in summary.records.items():
        print(f"  {source:<14} {count:>12,} records")
    print(f"  planted defects: {summary.total_defects:,} ({summary.defect_rate:.3%} of "
          f"{summary.total_records:,} records; asked {args.defect_rate:.3%})")
    print(f"  ground truth: {out / 'truth'}")
    return 0


def cmd_tokenize(args: argparse.Namespace) -> int:
    from mydata.tokenizer import tokenize_file

    keystore = KeyStore.open(settings_of(args))
    version = args.key_version or keystore.current_link_version
    result = tokenize_file(Path(args.input), Path(args.output), keystore.link_secret(version),
                           version, ci_column=args.ci_column)
    print(f"tokenized {result.records:,} records with link key version {result.key_version} "
          f"into {result.out}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    keystore = KeyStore.open(settings_of(args))
    if args.action == "rotate-link":
        print(f"added {keystore.rotate_link()}")
    elif args.action == "rotate-purpose":
        print(f"added {keystore.rotate_purpose(args.name or settings_of(args).purpose)}")
    print(json.dumps(keystore.describe(), indent=1))
    return 0


def cmd_holders(args: argparse.Namespace) -> int:
    from mydata.holders import Holder, HolderRegistry

    registry = HolderRegistry.open(settings_of(args))
    if args.action == "add":
        if not (args.source and args.org_code and args.name):
            raise ConfigError("holders add needs --source, --org-code and --name")
        known = registry.get(args.source, args.org_code)  # renamed, it keeps its date unless --since says
        since = args.since or (known.since if known else date.today())
        holder = registry.add(Holder(args.source, args.org_code, args.name, since))
        print(f"{'updated' if known else 'registered'} {holder.source} holder {holder.org_code} ({holder.name}) "
              f"since {holder.since}")
    elif args.action == "remove":
        if not (args.source and args.org_code):
            raise ConfigError("holders remove needs --source and --org-code")
        holder = registry.remove(args.source, args.org_code)
        print(f"removed {holder.source} holder {holder.org_code} ({holder.name})")
    holders = registry.holders()
    print(f"{len(holders)} registered holder(s) ({registry.source}):")
    for h in holders:
        print(f"  {h.source:<8} {h.org_code:<11} since {h.since}  {h.name}")
    return 0
