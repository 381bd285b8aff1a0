"""The segments a deployment runs: the built-in lifecycle segments plus the repository's definitions."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cdp.errors import InvalidSegment, NotFound
from cdp.segments.definition import LIFECYCLE_STAGES, LifecycleCondition, SegmentDefinition, load_segments

BUILTIN_SOURCE = "<built-in>"


def lifecycle_segments() -> list[SegmentDefinition]:
    """One segment per lifecycle stage, named ``lifecycle-<stage>`` (e.g. ``lifecycle-new-customer``)."""
    return [
        SegmentDefinition(
            name=f"lifecycle-{stage.replace('_', '-')}",
            condition=LifecycleCondition((stage,)),
            description=f"Profiles whose lifecycle stage is {stage.replace('_', ' ')}.",
            source=BUILTIN_SOURCE,
        )
        for stage in LIFECYCLE_STAGES
    ]


def all_segments(directory: str | Path | None) -> list[SegmentDefinition]:
    """Built-in segments and every definition under ``directory``; a name may be defined once."""
    builtins = lifecycle_segments()
    defined = load_segments(directory) if directory is not None else []
    taken = {d.name for d in builtins}
    for defn in defined:
        if defn.name in taken:
            raise InvalidSegment(
                f"{defn.source}:1: name: {defn.name!r} is the name of a built-in segment",
                file=defn.source,
                line=1,
                field="name",
            )
    return sorted(builtins + defined, key=lambda d: d.name)


def find_segment(defns: Iterable[SegmentDefinition], name: str) -> SegmentDefinition:
    for defn in defns:
        if defn.name == name:
            return defn
    raise NotFound(f"no segment named {name!r}", segment=name)
