"""Results per campaign, read from the lake: sends, outcomes and conversions.

Nothing is kept beside the lake: every outcome is an event there (``Email Sent`` .. ``Email Clicked``
from SES through the feedback function, ``Unsubscribed`` from the collector), each carrying its
``campaign`` property. A conversion is the campaign's chosen event by the same person within N
days after a send (people resolved through the identity snapshot by user id, anonymous id or
email: outcome events carry only the address they were sent to).
Queries are written once (DuckDB syntax) and rendered for Athena or DuckDB.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from cdp.campaigns.definition import Campaign
from cdp.campaigns.feedback import OUTCOMES
from cdp.reports.queries import build

OUTCOME_COUNTS = """
SELECT e.properties ->> '$.campaign' AS campaign, e.event AS event, COUNT(DISTINCT e.message_id) AS n
FROM events AS e
WHERE e.dt >= :since AND e.event IN :names
GROUP BY 1, 2
"""

CONVERSIONS = """
WITH resolved AS (
  SELECT COALESCE(iu.profile_id, ia.profile_id, ie.profile_id) AS profile_id, e.event, e.timestamp,
         e.properties ->> '$.campaign' AS campaign
  FROM events AS e
  LEFT JOIN identity AS iu ON iu.identifier = 'user_id:' || e.user_id
  LEFT JOIN identity AS ia ON ia.identifier = 'anonymous_id:' || e.anonymous_id
  LEFT JOIN identity AS ie ON ie.identifier = 'email:' || e.email
  WHERE e.dt >= :since AND (e.event = :goal OR e.event = 'Email Sent')
), sends AS (
  SELECT profile_id, MIN(timestamp) AS sent_at FROM resolved
  WHERE event = 'Email Sent' AND campaign = :campaign AND profile_id IS NOT NULL GROUP BY 1
)
SELECT COUNT(DISTINCT s.profile_id) AS converted
FROM sends AS s JOIN resolved AS r ON r.profile_id = s.profile_id AND r.event = :goal
WHERE r.timestamp > s.sent_at AND r.timestamp <= s.sent_at + INTERVAL :days DAY
"""


@dataclass
class CampaignResults:
    campaign: str
    outcomes: dict[str, int] = field(default_factory=dict)  # sent, delivered, bounced, ... unsubscribed
    conversions: int | None = None
    conversion_event: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"campaign": self.campaign, **{k: self.outcomes.get(k, 0) for k in OUTCOMES.values()},
                "conversions": self.conversions, "conversion_event": self.conversion_event}


def outcome_sql(dialect: str, since: str) -> str:
    names = exp.Tuple(expressions=[exp.Literal.string(n) for n in OUTCOMES])
    return build(OUTCOME_COUNTS, dialect, since=since, names=names)


def conversion_sql(dialect: str, since: str, campaign: Campaign) -> str:
    assert campaign.conversion is not None
    return build(CONVERSIONS, dialect, since=since, goal=campaign.conversion.event, campaign=campaign.name,
                 days=exp.Literal.string(str(campaign.conversion.within_days)))


def campaign_results(engine: Any, campaigns: Iterable[Campaign], *, since: str) -> list[CampaignResults]:
    """Results of each campaign since the day ``since`` (``YYYY-MM-DD``)."""
    chosen = list(campaigns)
    results = {c.name: CampaignResults(c.name) for c in chosen}
    for row in engine.run(outcome_sql(engine.dialect, since)).rows:
        found = results.get(str(row["campaign"]))
        if found is not None:
            found.outcomes[OUTCOMES[str(row["event"])]] = int(row["n"])
    for campaign in chosen:
        if campaign.conversion is not None:
            rows = engine.run(conversion_sql(engine.dialect, since, campaign)).rows
            results[campaign.name].conversions = int(rows[0]["converted"]) if rows else 0
            results[campaign.name].conversion_event = campaign.conversion.event
    return [results[c.name] for c in chosen]
