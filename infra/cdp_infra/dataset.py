"""A realistic synthetic customer dataset, as Segment SDKs on web and mobile would send it.

People browse anonymously, some sign up (identify with a user id and an email), some log in
again from a second device (a new anonymous id, then identify with the same user id), and
customers buy. Each device's events arrive in batches, as an SDK flushes its queue. A few
events are broken on purpose (no userId and no anonymousId) to exercise rejection.

The generator knows who each person is, so a :class:`Dataset` also carries the ground truth the
pipeline must reproduce: the identifiers each person's one profile should hold, and how many
events the collector must reject, by reason.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cdp.times import format_time

PRODUCTS = [("sku-1", "Trail Shoe", 120.0), ("sku-2", "Rain Jacket", 180.0), ("sku-3", "Wool Socks", 18.0),
            ("sku-4", "Headlamp", 45.0), ("sku-5", "Water Bottle", 25.0), ("sku-6", "Backpack", 140.0)]
PAGES = [("Home", "/"), ("Catalog", "/catalog"), ("Product", "/p"), ("Cart", "/cart"), ("Blog", "/blog")]
FIRST_NAMES = ["Alice", "Bruno", "Chloe", "Dmitri", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Keiko",
               "Liam", "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sven", "Tara"]


#: The collector's reason for an event with neither userId nor anonymousId.
MISSING_IDENTITY = "missing_identity"


@dataclass(frozen=True)
class Person:
    """One generated person and the identifiers the pipeline must unify into one profile."""

    index: int
    identified: bool  # sent an identify with a user id and an email
    identifiers: frozenset[str]  # ``type:value``; empty if every event this person sent was broken
    message_ids: frozenset[str]  # of the person's valid events: its profile's events
    orders: tuple[datetime, ...] = ()  # times of the person's valid "Order Completed" events


@dataclass
class Dataset:
    people: int
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    invalid: int = 0
    persons: list[Person] = field(default_factory=list)
    generated_at: datetime = datetime.min.replace(tzinfo=UTC)  # every event happened before it

    @property
    def events(self) -> int:
        return sum(len(b) for b in self.batches)

    @property
    def expected_profiles(self) -> list[frozenset[str]]:
        """The identifier set of each profile the pipeline must end with: one per person who sent a
        valid event (identified or anonymous-only), holding all and only that person's identifiers."""
        return [p.identifiers for p in self.persons if p.identifiers]

    def buyers(self, *, min_orders: int, after: datetime) -> set[int]:
        """The people with at least ``min_orders`` valid orders later than ``after``."""
        return {p.index for p in self.persons if sum(1 for t in p.orders if t > after) >= min_orders}

    @property
    def expected_rejections(self) -> dict[str, int]:
        """How many events the collector must reject, by reason."""
        return {MISSING_IDENTITY: self.invalid} if self.invalid else {}


class _Device:
    def __init__(self, rng: random.Random, kind: str) -> None:
        self.anonymous_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self.kind = kind
        self.events: list[dict[str, Any]] = []

    def context(self) -> dict[str, Any]:
        if self.kind == "web":
            return {"library": {"name": "analytics.js", "version": "5.2.0"},
                    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0", "locale": "en-US"}
        return {"library": {"name": "analytics-ios", "version": "4.1.0"},
                "device": {"id": self.anonymous_id, "type": "ios"}, "os": {"name": "iOS", "version": "17.5"}}


def generate(people: int = 1000, events: int = 20000, *, seed: int = 7, now: datetime | None = None,
             invalid_ratio: float = 0.005, batch_size: int = 100) -> Dataset:
    """``people`` people whose devices send at least ``events`` events in all."""
    rng = random.Random(seed)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    per_person = max(4, events // people)
    devices: list[_Device] = []
    owners: list[tuple[int, bool, list[_Device]]] = []
    for i in range(people):
        mine, identified = _person(rng, i, per_person, now)
        owners.append((i, identified, mine))
        devices.extend(mine)
    dataset = Dataset(people=people, generated_at=now)
    total = sum(len(d.events) for d in devices)
    # Top up to the requested volume with more browsing on the first device of random people.
    while total < events:
        device = rng.choice(devices)
        device.events.append(_page(rng, device, now - timedelta(minutes=rng.randint(1, 600))))
        total += 1
    for device in devices:
        stream = sorted(device.events, key=lambda e: e["timestamp"])
        for event in stream:
            # Break only behavioural events: a lost identify would leave a buyer without an email.
            if event["type"] in ("page", "screen", "track") and rng.random() < invalid_ratio:
                event.pop("anonymousId", None)
                event.pop("userId", None)
                dataset.invalid += 1
        for start in range(0, len(stream), batch_size):
            dataset.batches.append(stream[start:start + batch_size])
    rng.shuffle(dataset.batches)
    dataset.persons = [Person(i, identified, _identifiers(i, identified, mine), _valid_message_ids(mine),
                              _valid_orders(mine)) for i, identified, mine in owners]
    return dataset


def _identifiers(index: int, identified: bool, devices: list[_Device]) -> frozenset[str]:
    """What the person's profile must hold: the user id and email it identified with, and each
    device it used (an anonymous id; on mobile also the device id) unless all its events were broken."""
    found: set[str] = set()
    if identified:
        found |= {f"user_id:{_user_id(index)}", f"email:{_email(index)}"}
    for device in devices:
        if any("anonymousId" in e for e in device.events):
            found.add(f"anonymous_id:{device.anonymous_id}")
            if device.kind != "web":
                found.add(f"device_id:{device.anonymous_id}")
    return frozenset(found)


def _valid_message_ids(devices: list[_Device]) -> frozenset[str]:
    return frozenset(e["messageId"] for d in devices for e in d.events if "anonymousId" in e)


def _valid_orders(devices: list[_Device]) -> tuple[datetime, ...]:
    return tuple(sorted(datetime.strptime(e["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
                        for d in devices for e in d.events
                        if "anonymousId" in e and e.get("event") == "Order Completed"))


def _user_id(index: int) -> str:
    return f"user-{index:05d}"


def _email(index: int) -> str:
    return f"{FIRST_NAMES[index % len(FIRST_NAMES)].lower()}.{index}@example.com"


def _base(rng: random.Random, device: _Device, kind: str, at: datetime, user_id: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": kind,
        "messageId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "anonymousId": device.anonymous_id,
        "timestamp": format_time(at),
        "context": device.context(),
    }
    if user_id:
        event["userId"] = user_id
    return event


def _page(rng: random.Random, device: _Device, at: datetime, user_id: str | None = None) -> dict[str, Any]:
    name, path = rng.choice(PAGES)
    event = _base(rng, device, "page", at, user_id)
    event.update(name=name, properties={"path": path, "url": f"https://shop.example.com{path}"})
    if device.kind != "web":
        event["type"] = "screen"
    return event


def ads_consent(index: int) -> bool:
    """Whether person ``index`` grants the ``ads`` purpose at signup (no random draw: the rest of
    the dataset is the same with or without it)."""
    return index % 4 != 0


def _person(rng: random.Random, index: int, per_person: int, now: datetime) -> tuple[list[_Device], bool]:
    """The person's devices, with their events, and whether the person signed up."""
    first = FIRST_NAMES[index % len(FIRST_NAMES)]
    email = _email(index)
    user_id = _user_id(index)
    # Several months of history: early customers go quiet long enough to churn, and a quarter of
    # the people pause for weeks or months and come back (returning customers).
    start = now - timedelta(days=rng.randint(5, 150), minutes=rng.randint(0, 1440))
    web = _Device(rng, "web")
    devices = [web]
    clock = start
    n = max(3, int(rng.gauss(per_person, per_person / 3)))
    signs_up = rng.random() < 0.65
    buys = signs_up and rng.random() < 0.55
    second_device = signs_up and rng.random() < 0.35
    signup_at = n // 3
    pause_at = n // 2 if rng.random() < 0.25 else -1
    identified = False
    current = web
    for k in range(n):
        if k == pause_at:
            clock += timedelta(days=rng.randint(20, 100))
        clock = min(now - timedelta(seconds=1), clock + timedelta(minutes=rng.randint(5, 2000)))
        uid = user_id if identified else None
        if signs_up and k == signup_at:
            identify = _base(rng, current, "identify", clock, user_id)
            identify["traits"] = {"email": email, "first_name": first, "plan": "free", "created_at": format_time(clock)}
            # Ad consent at signup (Segment's categoryPreferences): three people in four grant it.
            identify["context"]["consent"] = {"categoryPreferences": {"ads": ads_consent(index)}}
            current.events.append(identify)
            current.events.append({**_base(rng, current, "track", clock, user_id), "event": "Signed Up",
                                   "properties": {"method": "email"}})
            identified = True
            continue
        if second_device and identified and k == signup_at + 2:
            current = _Device(rng, "ios")
            devices.append(current)
            login = _base(rng, current, "identify", clock, user_id)
            login["traits"] = {"email": email}
            current.events.append(login)
            continue
        roll = rng.random()
        if buys and identified and roll < 0.22:
            sku, product, price = rng.choice(PRODUCTS)
            qty = rng.randint(1, 3)
            current.events.append({**_base(rng, current, "track", clock, uid), "event": "Order Completed",
                                   "properties": {"order_id": f"o-{index}-{k}", "revenue": price * qty,
                                                  "currency": "USD",
                                                  "products": [{"sku": sku, "name": product, "quantity": qty}]}})
        elif roll < 0.5:
            sku, product, price = rng.choice(PRODUCTS)
            current.events.append({**_base(rng, current, "track", clock, uid), "event": "Product Viewed",
                                   "properties": {"sku": sku, "name": product, "price": price}})
        else:
            current.events.append(_page(rng, current, clock, uid))
    return devices, signs_up
