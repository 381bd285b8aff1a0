"""``GET /v1/pixel?data=<base64 JSON event>``: tracking for email opens and pages without JavaScript."""

from __future__ import annotations

import base64
import binascii

from cdp.errors import MalformedRequest

#: A transparent 1×1 GIF (43 bytes).
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def pixel_body(data: str | None) -> bytes:
    """The JSON bytes of the ``data`` parameter: base64, standard or URL-safe, padded or not."""
    if not data:
        raise MalformedRequest("missing_pixel_data")
    text = data.strip().replace("-", "+").replace("_", "/").replace(" ", "+")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedRequest("invalid_pixel_data") from exc
