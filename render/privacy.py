"""The release gate's page: group sizes before and after, what was generalised and suppressed, and
the l-diversity of a sensitive feature (``reports/privacy/<purpose>-<as_of>.html``)."""
from __future__ import annotations

from typing import Any

from features.release import BUCKET_LABELS
from mydata.manifest import RunManifest
from render import html


def page(manifest: RunManifest, outcomes: list[Any], chosen: int | None) -> str:
    p, out = manifest.parameters, manifest.outputs
    k = p["k"]
    levels = [(i, o.level.description, o.groups, o.small_groups, o.suppressed, f"{o.share:.2%}",
               html.status(o.share <= p["max_suppression"], "within", "over"),
               html.Markup("<b>chosen</b>") if i == chosen else "")
              for i, o in enumerate(outcomes)]
    buckets = BUCKET_LABELS
    first, after = outcomes[0], out.get("after_sizes", {})
    most = max([*first.sizes.values(), *after.values(), 1])
    sizes = [(b, first.sizes.get(b, 0), html.bar(first.sizes.get(b, 0), most), after.get(b, 0),
              html.bar(after.get(b, 0), most)) for b in buckets]
    facts = {"purpose": p["purpose"], "as of": p["as_of"], "k": k,
             "max suppression": f"{p['max_suppression']:.0%}",
             "release": html.status(chosen is not None, "PUBLISHED", "BLOCKED")}
    sections = [
        html.section("Generalisation levels", html.table(
            ("level", "quasi-identifiers released as", "groups", f"groups < {k}", "subjects in them",
             "share", "allowed", ""), levels),
            note="The gate takes the first level whose suppression stays within the allowed share."),
        html.section("Group sizes (groups per size)", html.table(
            ("group size", "before (raw: level 0)", "", "after (released)", ""), sizes)),
    ]
    if chosen is not None:
        o = outcomes[chosen]
        div = out["l_diversity"]
        sections += [
            html.section("What was released", html.table(("", ""), [
                ("generalised", o.level.description), ("subjects in the candidate", o.subjects),
                ("subjects suppressed", f"{o.suppressed:,} ({o.share:.2%})"),
                ("subjects published", out["published"]), ("smallest group", out["smallest_group"]),
                ("published to", html.code(out["snapshot"]))])),
            html.section(f"l-diversity of {div['feature']}", html.table(("", ""), [
                ("bands (quantiles)", div["bands"]), ("smallest l in a group", div["min_l"]),
                ("mean l", f"{div['mean_l']:.2f}"), ("groups with l < 2", f"{div['groups_below_2']:,} of "
                                                                         f"{div['groups']:,}")]),
                note="A group with l = 1 reveals the sensitive band of all its members; reported, not "
                     "gated."),
        ]
    else:
        why = manifest.error or (f"No level reaches k = {k} with at most {p['max_suppression']:.0%} of subjects "
                                 "suppressed; nothing was published.")
        sections.append(html.section("Not released", html.paragraph(why, kind="bad")))
    if "feature_health" in out:
        sections.append(health_section(out))
    return html.page(f"Release gate: {p['purpose']} features as of {p['as_of']}", facts, sections)


def health_section(out: dict[str, Any]) -> str:
    """Blank features (constant or all null) of the release, and those that were informative before."""
    blank, lost = out.get("blank_features", {}), set(out.get("went_blank", []))
    rows = [(name, status.upper(), html.status(name not in lost, "blank before too", "WENT BLANK"))
            for name, status in blank.items()]
    note = (f"{len(out['feature_health']) - len(blank)} of {len(out['feature_health'])} features are informative. "
            "A blank feature separates nobody: training leaves it out. One informative in the previous release "
            "and blank now fails the release (MYDATA_ALLOW_BLANK_FEATURES allows it).")
    if not rows:
        return html.section("Feature health", html.paragraph("No feature is constant or all null."), note=note)
    return html.section("Feature health: blank features", html.table(("feature", "is", "previous release"), rows),
                        note=note)
