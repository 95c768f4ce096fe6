"""`mydata generate`, `tokenize`, `keys` and `holders`: data, identities and the holders collected from."""
from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

from cli.parsing import Commands
from cli.settings import settings_of
from mydata.config import PURPOSES
from mydata.keys import KeyStore
from schemas.landing import MYDATA_SOURCES


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


def cmd_keys_show(args: argparse.Namespace) -> int:
    print(json.dumps(KeyStore.open(settings_of(args)).describe(), indent=1))
    return 0


def cmd_keys_rotate_link(args: argparse.Namespace) -> int:
    print(f"added {KeyStore.open(settings_of(args)).rotate_link()}")
    return cmd_keys_show(args)


def cmd_keys_rotate_purpose(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    print(f"added {KeyStore.open(settings).rotate_purpose(args.name or settings.purpose)}")
    return cmd_keys_show(args)


def cmd_holders_list(args: argparse.Namespace) -> int:
    from mydata.holders import HolderRegistry

    registry = HolderRegistry.open(settings_of(args))
    holders = registry.holders()
    print(f"{len(holders)} registered holder(s) ({registry.source}):")
    for h in holders:
        print(f"  {h.source:<8} {h.org_code:<11} since {h.since}  {h.name}")
    return 0


def cmd_holders_add(args: argparse.Namespace) -> int:
    from mydata.holders import Holder, HolderRegistry

    registry = HolderRegistry.open(settings_of(args))
    known = registry.get(args.source, args.org_code)  # renamed, it keeps its date unless --since says
    since = args.since or (known.since if known else date.today())
    holder = registry.add(Holder(args.source, args.org_code, args.name, since))
    print(f"{'updated' if known else 'registered'} {holder.source} holder {holder.org_code} ({holder.name}) "
          f"since {holder.since}")
    return cmd_holders_list(args)


def cmd_holders_remove(args: argparse.Namespace) -> int:
    from mydata.holders import HolderRegistry

    holder = HolderRegistry.open(settings_of(args)).remove(args.source, args.org_code)
    print(f"removed {holder.source} holder {holder.org_code} ({holder.name})")
    return cmd_holders_list(args)


def register(commands: Commands) -> None:
    p = commands.add("generate", cmd_generate, "write a synthetic landing zone (all sources, _SUCCESS markers)",
                     lake=None)
    p.add_argument("--subjects", type=int, required=True, help="how many data subjects")
    p.add_argument("--months", type=int, default=6, help="months of history (default 6)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed writes the same bytes")
    p.add_argument("--out", help="data root to write landing/ and truth/ under (default: --data-root)")
    p.add_argument("--start-month", default="2026-05", help="first month, YYYY-MM (default 2026-05)")
    p.add_argument("--defect-rate", type=float, default=0.005,
                   help="share of records planted with a defect ingest must quarantine (default 0.005)")
    p.add_argument("--key-mismatch-rate", type=float, default=0.005,
                   help="share of subjects whose telecom records carry link key version 2")
    p.add_argument("--chunk-size", type=int, default=5_000, help="subjects per worker task (default 5000)")
    p.add_argument("--workers", type=int, default=2, help="generator processes (default 2)")
    p.add_argument("--gzip", action="store_true", help="write .jsonl.gz")
    p.add_argument("--real-shapes", action="store_true",
                   help="deliveries as real holders make them (the demo's default): state collected again a week "
                        "later, an operator without payments or micropayments, late card deliveries, negative "
                        "card bills (docs/stages/landing.md)")

    p = commands.add("tokenize", cmd_tokenize, "replace a CI column by link_key and key_version (holders' tool)",
                     lake=None)
    p.add_argument("--in", dest="input", required=True, help="the CSV or JSON-lines file holding CI")
    p.add_argument("--out", dest="output", required=True, help="where to write it tokenized")
    p.add_argument("--ci-column", default="ci", help="the CI column or field (default ci)")
    p.add_argument("--key-version", type=int, help="link secret version (default: the newest)")

    keys = commands.group("keys", "show key versions (never values), or rotate a secret", default=cmd_keys_show,
                          lake=None)
    keys.add("show", cmd_keys_show, "the key store's versions and fingerprints (the default)", lake=None)
    keys.add("rotate-link", cmd_keys_rotate_link, "add a link secret version (holders tokenize with the newest)",
             lake=None)
    p = keys.add("rotate-purpose", cmd_keys_rotate_purpose, "add a purpose secret version (new pseudonyms)",
                 lake=None)
    p.add_argument("--name", choices=PURPOSES, help="purpose to rotate (default --purpose)")

    holders = commands.group("holders", "the data holders collected from: list, add or remove one (a delivery "
                                        "from an unregistered holder is refused)", default=cmd_holders_list,
                             lake="read")
    holders.add("list", cmd_holders_list, "every registered holder (the default)", lake="read")
    p = holders.add("add", cmd_holders_add, "register a holder, or rename one")
    _holder_options(p)
    p.add_argument("--name", required=True, help="the holder's name")
    p.add_argument("--since", help="first delivery date accepted from it, YYYY-MM-DD (default today)")
    _holder_options(holders.add("remove", cmd_holders_remove, "unregister a holder"))


def _holder_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", choices=MYDATA_SOURCES, required=True, help="the MyData source it delivers")
    parser.add_argument("--org-code", required=True, help="the holder's org_code, 10 letters or digits")
