"""A person's matching keys, normalised and SHA-256 hashed as each ad platform documents it.

Meta (Custom Audiences, "Customer file custom audiences" > hashing and normalisation,
developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences): every key is
trimmed and lower-cased, then SHA-256, hex. EMAIL as is; PHONE digits only, with the country code
and no leading zeros; FN/LN lower-case letters without punctuation (UTF-8 kept: accents are allowed);
CT lower-case letters without spaces or punctuation; ST the 2-letter code; ZIP without spaces (US:
first 5 digits); COUNTRY the 2-letter ISO 3166-1 code; GEN ``m`` or ``f``.

Google (Data Manager API, "Format user data", developers.google.com/data-manager/api/devguides/
concepts/formatting): email_address lower-cased with all whitespace removed and, for gmail.com and
googlemail.com only, dots of the local part and any ``+suffix`` removed; phone_number in E.164
(``+`` and country code); given_name / family_name lower-cased and trimmed; region_code the
2-letter code (not hashed) and postal_code as is (not hashed); hashes SHA-256, hex encoded
(``encoding: HEX`` on the request).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cdp.identity.identifiers import normalise_value

_SPACES = re.compile(r"\s+")
_NOT_DIGIT = re.compile(r"\D")
_PUNCTUATION = re.compile(r"[^\w]|_|\d", re.UNICODE)
_GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class PersonKeys:
    """What the profile knows about a person to match them on an ad platform (raw, not hashed)."""

    profile_id: str
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()  # E.164, as identity resolution stores them
    first_name: str | None = None
    last_name: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    gender: str | None = None

    @property
    def matchable(self) -> bool:
        return bool(self.emails or self.phones)


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def person_keys(profile: Mapping[str, Any]) -> PersonKeys:
    """Keys from a profile view: emails and phones from the validated identifiers; names and place
    from traits (``first_name``/``firstName``, ``last_name``/``lastName``, ``address.city`` ...)."""
    identifiers = profile.get("identifiers") or {}
    traits = profile.get("traits") or {}
    raw_address = traits.get("address")
    address: Mapping[str, Any] = raw_address if isinstance(raw_address, Mapping) else {}
    emails = tuple(e for v in identifiers.get("email") or [] if (e := normalise_value("email", str(v))))
    phones = tuple(str(v) for v in identifiers.get("phone") or [] if str(v).startswith("+"))

    def trait(*names: str, source: Mapping[str, Any] = traits) -> str | None:
        for name in names:
            if (value := _text(source.get(name))) is not None:
                return value
        return None

    return PersonKeys(
        profile_id=str(profile.get("profile_id")), emails=emails, phones=phones,
        first_name=trait("first_name", "firstName"), last_name=trait("last_name", "lastName"),
        city=trait("city", source=address) or trait("city"), state=trait("state", source=address) or trait("state"),
        postal_code=trait("postal_code", "postalCode", source=address) or trait("postal_code", "postalCode"),
        country=trait("country", source=address) or trait("country"), gender=trait("gender"))


# ---------------------------------------------------------------- Meta

#: The multi-key schema we send, in this order (Meta's field names).
META_SCHEMA: tuple[str, ...] = ("EMAIL", "PHONE", "FN", "LN", "CT", "ST", "ZIP", "COUNTRY", "GEN")


def meta_email(value: str) -> str | None:
    text = value.strip().lower()
    return text if "@" in text else None


def meta_phone(value: str) -> str | None:
    digits = _NOT_DIGIT.sub("", value).lstrip("0")
    return digits if len(digits) >= 7 else None


def meta_name(value: str) -> str | None:
    # Lower-case, no punctuation or spaces; letters of any script are kept (UTF-8), as Meta allows.
    text = _PUNCTUATION.sub("", unicodedata.normalize("NFC", value).lower())
    return text or None


def meta_zip(value: str, country: str | None) -> str | None:
    text = _SPACES.sub("", value).lower().replace("-", "")
    if (country or "").lower() == "us":
        text = text[:5]
    return text or None


def meta_two_letters(value: str) -> str | None:
    text = value.strip().lower()
    return text if len(text) == 2 and text.isalpha() else None


def meta_gender(value: str) -> str | None:
    text = value.strip().lower()[:1]
    return text if text in ("m", "f") else None


def meta_row(keys: PersonKeys) -> list[str] | None:
    """One ``data`` row in :data:`META_SCHEMA` order: each key normalised then hashed, "" if unknown.

    None when the person has neither email nor phone (names alone match too few people to send).
    """
    email = next((e for raw in keys.emails if (e := meta_email(raw))), None)
    phone = next((p for raw in keys.phones if (p := meta_phone(raw))), None)
    if email is None and phone is None:
        return None
    values = [
        email, phone,
        meta_name(keys.first_name) if keys.first_name else None,
        meta_name(keys.last_name) if keys.last_name else None,
        meta_name(keys.city) if keys.city else None,
        meta_two_letters(keys.state) if keys.state else None,
        meta_zip(keys.postal_code, keys.country) if keys.postal_code else None,
        meta_two_letters(keys.country) if keys.country else None,
        meta_gender(keys.gender) if keys.gender else None,
    ]
    return [sha256_hex(v) if v else "" for v in values]


# ---------------------------------------------------------------- Google


def google_email(value: str) -> str | None:
    text = _SPACES.sub("", value).lower()
    local, at, domain = text.partition("@")
    if not at or not local or not domain:
        return None
    if domain in _GMAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        if not local:
            return None
    return f"{local}@{domain}"


def google_phone(value: str) -> str | None:
    text = value.strip()
    if not text.startswith("+"):
        return None
    digits = _NOT_DIGIT.sub("", text)
    return f"+{digits}" if 7 <= len(digits) <= 15 else None


def google_name(value: str) -> str | None:
    text = value.strip().lower()
    return text or None


def google_user_identifiers(keys: PersonKeys) -> list[dict[str, Any]]:
    """``userData.userIdentifiers`` of one member: hashed email(s), phone(s) and, with a name, postal
    code and country, one ``address`` (at most 10 identifiers per member, per the API reference)."""
    identifiers: list[dict[str, Any]] = []
    for email in dict.fromkeys(e for raw in keys.emails if (e := google_email(raw))):
        identifiers.append({"emailAddress": sha256_hex(email)})
    for phone in dict.fromkeys(p for raw in keys.phones if (p := google_phone(raw))):
        identifiers.append({"phoneNumber": sha256_hex(phone)})
    given = google_name(keys.first_name) if keys.first_name else None
    family = google_name(keys.last_name) if keys.last_name else None
    region = meta_two_letters(keys.country) if keys.country else None
    if given and family and region and keys.postal_code:
        identifiers.append({"address": {"givenName": sha256_hex(given), "familyName": sha256_hex(family),
                                        "regionCode": region.upper(), "postalCode": keys.postal_code.strip()}})
    return identifiers[:10]
