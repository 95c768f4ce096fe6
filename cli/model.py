"""`mydata model train|list|show|compare|promote|drift`: segmentation models for a data scientist."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from cli.parsing import Commands
from cli.settings import settings_of
from mydata.config import ConfigError


def _truth(settings, given: str | None) -> Path | None:
    """The reference labels asked for: a file, or (``--truth`` alone) the generator's, where it left one."""
    if given is None:
        return None
    path = Path(given) if given else settings.lake.truth / "subjects.csv"
    if not path.is_file():
        raise ConfigError(f"--truth: no reference labels at {path} (the generator leaves them only on generated data)")
    return path


def cmd_model_train(args: argparse.Namespace) -> int:
    from jobs import segment
    from models.pipeline import ModelSpec

    settings = settings_of(args)
    options = ModelSpec(algorithm=args.algorithm, k=args.k, ks=range(args.k_min, args.k_max + 1), seed=args.seed,
                        pca_components=args.pca)
    result = segment.run(settings, options, args.promote, _truth(settings, args.truth))
    print(f"registered {result.summary()}")
    _print_segments(result["segments"])
    print(f"profile: {result['report']}")
    return 0


def cmd_model_list(args: argparse.Namespace) -> int:
    from models import registry

    settings = settings_of(args)
    lake, purpose = settings.lake, settings.purpose
    current = registry.current_version(lake, purpose)
    found = registry.versions(lake, purpose)
    if not found:
        print(f"no models for {purpose} yet (`mydata model train`)")
        return 0
    print(f"{'':2}{'version':<8} {'created':<20} {'as of':<11} {'algorithm':<17} {'k':>3} {'silhouette':>10} "
          f"{'stability':>9} {'ARI truth':>9}")
    for v in found:
        meta, m = v.metadata, v.metadata.get("metrics", {})
        truth = f"{m['ari_vs_latent_types']:.3f}" if "ari_vs_latent_types" in m else "–"
        print(f"{'*' if v.version == current else '':2}{v.version:<8} {meta.get('created_at', '')[:19]:<20} "
              f"{meta.get('as_of', ''):<11} {meta.get('parameters', {}).get('algorithm', ''):<17} "
              f"{m.get('k', ''):>3} {m.get('silhouette', 0):>10.3f} {m.get('stability_ari', 0):>9.3f} {truth:>9}")
    print("* current")
    return 0


def cmd_model_show(args: argparse.Namespace) -> int:
    from models import registry
    from render.model import write_report

    settings = settings_of(args)
    lake, purpose = settings.lake, settings.purpose
    v = registry.get(lake, purpose, args.version)
    meta = v.metadata
    print(f"{purpose} {v.version}{' (current)' if registry.current_version(lake, purpose) == v.version else ''}, "
          f"created {meta.get('created_at', '')[:19]}")
    for key in ("snapshot", "snapshot_hash", "consent_snapshot"):
        print(f"  {key:<17} {meta.get(key)}")
    print(f"  {'parameters':<17} {json.dumps(meta.get('parameters'))}")
    print(f"  {'metrics':<17} {json.dumps(meta.get('metrics'))}")
    print(f"  {'features':<17} {len(meta.get('features', []))}")
    print(f"  {'libraries':<17} {json.dumps(meta.get('libraries'))}")
    _print_segments(meta.get("profile", {}).get("segments", []))
    if "profile" in meta:
        print(f"profile: {write_report(lake, meta)}")
    return 0


def cmd_model_compare(args: argparse.Namespace) -> int:
    from models import registry

    settings = settings_of(args)
    a, b = (registry.get(settings.lake, settings.purpose, name) for name in (args.first, args.second))
    diff = registry.compare(a, b)
    print(f"{a.version} vs {b.version}")
    for key in ("parameters", "metrics", "inputs"):
        for name, (left, right) in diff[key].items():
            print(f"  {key[:-1] if key != 'inputs' else 'input'} {name}: {left} -> {right}")
    for key, names in diff["features"].items():
        if names:
            print(f"  features {key.replace('_', ' ')}: {', '.join(names)}")
    if not any(diff[k] for k in ("parameters", "metrics", "inputs")) and not any(diff["features"].values()):
        print("  no difference in parameters, metrics, inputs or features")
    return 0


def cmd_model_promote(args: argparse.Namespace) -> int:
    from models import registry

    settings = settings_of(args)
    chosen = registry.promote(settings.lake, settings.purpose, args.version)
    print(f"{settings.purpose}: {chosen.version} is now current")
    return 0


def cmd_model_drift(args: argparse.Namespace) -> int:
    from jobs import drift

    settings = settings_of(args)
    result = drift.run(settings, args.baseline, args.version)
    print(f"drift {settings.purpose}: {result.summary()}")
    print(f"report: {result['report']}")
    return 0


def register(commands: Commands) -> None:
    model = commands.group("model", "segmentation models for --purpose: train and register, list, show, compare, "
                                    "promote, drift")
    p = model.add("train", cmd_model_train, "train on the published snapshot as of --as-of (default the newest) "
                                            "and register the model")
    p.add_argument("--algorithm", default="kmeans", choices=("kmeans", "minibatch_kmeans", "gmm"),
                   help="the clustering algorithm (default kmeans)")
    p.add_argument("--k", type=int, help="fixed number of segments (default: chosen over --k-min..--k-max)")
    p.add_argument("--k-min", type=int, default=3, help="fewest segments model selection tries (default 3)")
    p.add_argument("--k-max", type=int, default=10, help="most segments model selection tries (default 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed trains the same model")
    p.add_argument("--pca", type=int, help="PCA components after scaling (default: none)")
    p.add_argument("--promote", action="store_true", help="make the new version current")
    p.add_argument("--truth", nargs="?", const="", metavar="FILE",
                   help="report the ARI against reference labels: a CSV of link_key, latent_type (alone: the "
                        "generator's truth/subjects.csv)")
    model.add("list", cmd_model_list, "every registered version, the current one starred", lake="read")
    p = model.add("show", cmd_model_show, "one version's lineage, parameters, metrics and segments, and its "
                                          "profile page")
    p.add_argument("version", nargs="?", help="v0003 or 3 (default: the current)")
    p = model.add("compare", cmd_model_compare, "what differs between two versions", lake="read")
    p.add_argument("first", metavar="VERSION_A", help="v0003 or 3")
    p.add_argument("second", metavar="VERSION_B", help="the version to compare it with")
    p = model.add("promote", cmd_model_promote, "make a version current (scoring uses it)")
    p.add_argument("version", help="v0003 or 3")
    p = model.add("drift", cmd_model_drift, "drift of the snapshot as of --as-of against the model's")
    p.add_argument("version", nargs="?", help="v0003 or 3 (default: the current)")
    p.add_argument("--baseline", help="as-of date of the baseline snapshot (default: the model's)")


def _print_segments(segments: list[dict]) -> None:
    for s in segments:
        print(f"  segment {s['segment']:>2}: {s['size']:>8,} ({s['share']:6.1%})  {s['label']}")
