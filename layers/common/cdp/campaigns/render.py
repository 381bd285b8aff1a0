"""Templates of campaigns: Jinja2 in a sandbox, HTML autoescaped, never a blank where a trait is missing.

Variables are the person's traits (``{{ first_name }}``, ``{{ plan }}``) plus ``unsubscribe_url``.
A trait the person lacks (absent, null or blank) renders as the template's ``fallbacks`` value for it,
else as the default fallback below (``first_name`` -> ``there``; any other trait -> an empty string is
never written: the built-in fallback is ``"-"``). So "Hi {{ first_name }}" reads "Hi there", never "Hi ".
Traits are text only: a mapping or list trait renders as its fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from cdp.campaigns.definition import Template

#: Fallbacks when a template gives none for a trait; documented in docs/activation.md.
DEFAULT_FALLBACKS: Mapping[str, str] = {"first_name": "there", "name": "there", "last_name": ""}
GENERIC_FALLBACK = "-"
NAME_TRAITS = ("first_name", "firstName", "name")

_html = ImmutableSandboxedEnvironment(autoescape=True, undefined=StrictUndefined)
_plain = ImmutableSandboxedEnvironment(autoescape=False, undefined=StrictUndefined)


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


def check_source(source: str) -> str | None:
    """The reason a template text does not compile, or None."""
    try:
        _html.parse(source)
    except TemplateError as exc:
        return f"template does not compile: {exc}"
    return None


def variables_for(template: Template, traits: Mapping[str, Any], extra: Mapping[str, str]) -> dict[str, str]:
    """Each variable the template uses: the trait's text, or its fallback (never blank)."""
    values: dict[str, str] = {}
    for name in template.variables():
        if name in extra:
            values[name] = extra[name]
            continue
        raw = traits.get(name)
        if raw is None and name == "first_name":
            raw = next((traits[k] for k in NAME_TRAITS if isinstance(traits.get(k), str)), None)
        if isinstance(raw, bool) or not isinstance(raw, str | int | float) or not str(raw).strip():
            fallback = template.fallbacks.get(name, DEFAULT_FALLBACKS.get(name, GENERIC_FALLBACK))
            values[name] = fallback or GENERIC_FALLBACK
        else:
            values[name] = str(raw).strip()
    return values


def render(template: Template, traits: Mapping[str, Any], *, unsubscribe_url: str) -> Rendered:
    """Subject, text and HTML for one person; the HTML escapes every value."""
    values = variables_for(template, traits, {"unsubscribe_url": unsubscribe_url})
    subject = " ".join(_plain.from_string(template.subject).render(values).split())
    text = _plain.from_string(template.text).render(values)
    if template.html:
        html_body = _html.from_string(template.html).render(values)
    else:
        paragraphs = _html.from_string("{% for p in paragraphs %}<p>{{ p }}</p>{% endfor %}")
        html_body = paragraphs.render(paragraphs=[p for p in text.split("\n\n") if p.strip()])
    return Rendered(subject=subject, text=text, html=html_body)
