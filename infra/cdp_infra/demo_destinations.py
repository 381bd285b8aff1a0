"""The demo's destinations: the three of ``examples/destinations/`` pointed at the loopback fakes.

``start`` runs a Meta fake, a Data Manager fake and a webhook receiver and stores each destination's
secret in the local stack with the fake's address (honoured only because the local stack sets
``ALLOW_LOCAL_ENDPOINTS``). ``summarise`` counts what each fake holds against what it must hold:
an audience, the members of its segments with ``ads`` consent and an email; a webhook, one signed
message per entry into its segments.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from .fakes import GoogleFake, MetaFake, WebhookReceiver
from .template import DESTINATIONS_DIR, EXAMPLE_DESTINATIONS


@dataclass
class DemoDestinations:
    destinations: dict[str, Any]
    fakes: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        for fake in self.fakes.values():
            fake.stop()


def start(pipeline: Any) -> DemoDestinations:
    from cdp.activation.destinations import load_destinations
    from cdp.activation.webhooks import new_secret

    found = DemoDestinations(load_destinations([DESTINATIONS_DIR, EXAMPLE_DESTINATIONS]))
    prefix = os.environ.get("DESTINATION_SECRET_PREFIX", "")
    secrets = pipeline.client("secretsmanager")
    for name, destination in found.destinations.items():
        if destination.type == "meta_audience":
            fake: Any = MetaFake(access_token="demo-meta-token").start()
            value = {"access_token": "demo-meta-token", "base_url": fake.url}
        elif destination.type == "google_audience":
            # The OAuth form of the secret: the client exchanges the refresh token at the fake's /token.
            fake = GoogleFake(client_id="demo-client", client_secret="demo-client-secret",
                              refresh_token="demo-refresh-token").start()
            value = {"client_id": "demo-client", "client_secret": "demo-client-secret",
                     "refresh_token": "demo-refresh-token", "base_url": fake.url, "token_url": f"{fake.url}/token"}
        else:
            signing = new_secret()
            fake = WebhookReceiver(signing).start()
            value = {"secret": signing, "url": f"{fake.url}/hooks/cdp"}
        found.fakes[name] = fake
        secrets.create_secret(Name=prefix + destination.secret, SecretString=json.dumps(value))
    return found


def summarise(pipeline: Any, demo: DemoDestinations, segments: dict[str, dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per destination: ``pushed`` (what the fake holds), ``expected`` and contract ``violations``."""
    from cdp.activation.audiences.normalise import person_keys
    from cdp.activation.audiences.sync import StoreProfileViews, may_send_ads
    from cdp.adapters.dynamo_profiles import DynamoIdentityStore
    from cdp.adapters.membership import DynamoMembershipStore

    settings = pipeline.settings
    membership = DynamoMembershipStore(settings)
    views = StoreProfileViews(DynamoIdentityStore(settings))
    out: dict[str, dict[str, int]] = {}
    for name, destination in demo.destinations.items():
        fake = demo.fakes[name]
        if destination.type == "webhook":
            pushed = len(fake.messages)
            expected = sum(int(segments.get(s, {}).get("entered", 0)) for s in destination.segments)
        else:
            ids = sorted({pid for s in destination.segments for pid in membership.members(s)})
            profiles = views.views(ids)
            expected = sum(1 for v in profiles.values() if may_send_ads(v) and person_keys(v).emails)
            pushed = len(fake.members(destination.options.get("audience_id") or destination.options["user_list_id"]))
        out[name] = {"pushed": pushed, "expected": expected, "requests": len(fake.requests),
                     "violations": len(fake.violations)}
    return out


def format_lines(destinations: dict[str, dict[str, int]]) -> list[str]:
    return [f"  pushed to {name:<24} {d['pushed']:>7,}   (expected {d['expected']:,}; "
            f"{d['requests']:,} requests, {d['violations']} contract violations)"
            for name, d in destinations.items()]
