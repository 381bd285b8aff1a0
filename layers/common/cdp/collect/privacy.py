"""``POST /v1/privacy/requests`` and ``GET /v1/privacy/requests/{id}``: admin-only, like the profile API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cdp.errors import CdpError, NotFound
from cdp.operators import Caller

from .http import HttpResponse, error_response
from .profiles import AdminAccess, refused_caller


def privacy_response(action: Callable[[], Any], *, authorization: str | None, access: AdminAccess,
                     route: str) -> tuple[HttpResponse, Caller | None]:
    """200 with the request's view (``action`` returns the record), 400 naming a malformed request
    or identifier, 401 without a valid token, 403 without the route's scope (``privacy:write`` to
    ask, ``privacy:read`` for a status), 404 for an unknown request id, 503 on a store error; and
    who asked (None if unknown)."""
    caller = None
    try:
        caller = access.caller(authorization, route)
        request = action()
        if request is None:
            raise NotFound("privacy_request_not_found")
    except CdpError as exc:
        return error_response(exc), caller or refused_caller(exc)
    view = request.view()
    if view["result"].get("nothing_found"):
        view["message"] = "nothing found for this identifier" + (
            f"; already erased by {view['result']['already_erased_by']}" if view["result"].get("already_erased_by")
            else "") + (" (suppressed all the same)" if request.kind in ("erase", "suppress") else "")
    return HttpResponse(200, view), caller
