"""The customer journey map (config/journey.yaml): which events put a person at which 5A stage.

Stages follow the customer journey of LEO CDP (after Kotler's 5A): awareness, attraction, ask,
action, advocacy. A rule names an event (``event:`` for a track event's name, or ``type:`` for
page/screen views) and optional property filters (``where: {path: value or [values]}``, compared as
text). Problems raise :class:`cdp.errors.InvalidJourney` naming the file and the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cdp.errors import InvalidJourney

JOURNEY_STAGES = ("awareness", "attraction", "ask", "action", "advocacy")
_RULE_KEYS = ("event", "type", "where")


@dataclass(frozen=True, slots=True)
class JourneyRule:
    stage: str
    event: str | None = None
    type: str | None = None
    where: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()  # (property path, any of values)

    @property
    def label(self) -> str:
        what = f"event {self.event}" if self.event else f"type {self.type}"
        filters = ", ".join(f"{'.'.join(p)} in {list(v)}" for p, v in self.where)
        return f"{what} ({filters})" if filters else what


@dataclass(frozen=True, slots=True)
class JourneyMap:
    rules: tuple[JourneyRule, ...]  # in stage order: a rule's index orders the stages too

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(s for s in JOURNEY_STAGES if any(r.stage == s for r in self.rules))


def _fail(source: str, node: yaml.Node, reason: str) -> InvalidJourney:
    line = node.start_mark.line + 1
    return InvalidJourney(f"{source}:{line}: {reason}", file=source, line=line)


def _text(source: str, node: yaml.Node, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.tag.endswith(":null") or not str(node.value).strip():
        raise _fail(source, node, f"{what} must be a non-empty text")
    return str(node.value)


def _rule(source: str, stage: str, node: yaml.Node) -> JourneyRule:
    if not isinstance(node, yaml.MappingNode):
        raise _fail(source, node, f"stages.{stage}: each rule is a mapping with event (or type) and where")
    fields: dict[str, yaml.Node] = {}
    for key, value in node.value:
        name = str(key.value)
        if name not in _RULE_KEYS:
            raise _fail(source, key, f"stages.{stage}: unknown key {name!r}; expected one of {list(_RULE_KEYS)}")
        if name in fields:
            raise _fail(source, key, f"stages.{stage}: {name}: duplicate key")
        fields[name] = value
    if ("event" in fields) == ("type" in fields):
        raise _fail(source, node, f"stages.{stage}: a rule names exactly one of event or type")
    where: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    if "where" in fields:
        filters = fields["where"]
        if not isinstance(filters, yaml.MappingNode) or not filters.value:
            raise _fail(source, filters, f"stages.{stage}.where: a mapping of property -> value or [values]")
        for key, value in filters.value:
            path = tuple(_text(source, key, f"stages.{stage}.where: a property name").split("."))
            items = value.value if isinstance(value, yaml.SequenceNode) else [value]
            if not items:
                raise _fail(source, value, f"stages.{stage}.where.{'.'.join(path)}: no values")
            where.append((path, tuple(_text(source, v, f"stages.{stage}.where.{'.'.join(path)}") for v in items)))
    return JourneyRule(
        stage=stage,
        event=_text(source, fields["event"], f"stages.{stage}.event") if "event" in fields else None,
        type=_text(source, fields["type"], f"stages.{stage}.type") if "type" in fields else None,
        where=tuple(where),
    )


def parse_journey(text: str, source: str = "journey.yaml") -> JourneyMap:
    try:
        doc: Any = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise InvalidJourney(f"{source}:{line}: not valid YAML: {exc.problem or exc}", file=source, line=line) from exc
    if doc is None or not isinstance(doc, yaml.MappingNode):
        raise InvalidJourney(f"{source}:1: a journey map is a mapping with stages", file=source, line=1)
    stages_node = next((v for k, v in doc.value if k.value == "stages"), None)
    for key, _ in doc.value:
        if key.value != "stages":
            raise _fail(source, key, f"unknown key {key.value!r}; expected stages")
    if not isinstance(stages_node, yaml.MappingNode) or not stages_node.value:
        raise _fail(source, stages_node or doc, "stages: a mapping of stage -> list of rules")
    by_stage: dict[str, list[JourneyRule]] = {}
    for key, value in stages_node.value:
        stage = str(key.value)
        if stage not in JOURNEY_STAGES:
            raise _fail(source, key, f"stages: unknown stage {stage!r}; expected some of {list(JOURNEY_STAGES)}")
        if stage in by_stage:
            raise _fail(source, key, f"stages: {stage}: duplicate key")
        if not isinstance(value, yaml.SequenceNode) or not value.value:
            raise _fail(source, value, f"stages.{stage}: a non-empty list of rules")
        by_stage[stage] = [_rule(source, stage, rule) for rule in value.value]
    return JourneyMap(tuple(r for s in JOURNEY_STAGES for r in by_stage.get(s, [])))


def load_journey(path: Path) -> JourneyMap:
    return parse_journey(path.read_text(encoding="utf-8"), path.name)
