"""``cdp operators add|list|revoke``: who may call the admin routes, with which scopes (cdp.operators).

These write the OperatorsTable directly with the caller's own AWS credentials (locally, the running
`cdp dev` stack's; with ``--stack NAME``, a deployed stack's), as ``cdp sources`` does: holding
``dynamodb:PutItem``/``UpdateItem`` on that table is what it takes to mint or revoke an operator.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cdp.operators import SCOPES


def add_parser(sub: Any) -> None:
    operators = sub.add_parser("operators", help="operators of the admin routes: tokens with scopes")
    operators_sub = operators.add_subparsers(dest="operators_command", required=True)
    add = operators_sub.add_parser("add", help="add an operator and print its token (shown once)")
    add.add_argument("name", help="who the token is for (letters, digits, . _ @ + -)")
    add.add_argument("--scope", action="append", required=True, metavar="SCOPE",
                     help="repeat or comma-separate; one of: " + ", ".join(SCOPES))
    add.set_defaults(func=cmd_add)
    listing = operators_sub.add_parser("list", help="list operators (tokens are stored hashed, never shown)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=cmd_list)
    revoke = operators_sub.add_parser("revoke", help="revoke an operator's token (within the functions' cache TTL)")
    revoke.add_argument("operator_id", help="op_... as `cdp operators list` shows it")
    revoke.set_defaults(func=cmd_revoke)


def _store() -> Any:
    from cdp.adapters.operators import DynamoOperatorStore

    from .collect_cli import _settings

    return DynamoOperatorStore(_settings("operators_table"))


def cmd_add(args: argparse.Namespace) -> int:
    from cdp.errors import InvalidOperator

    scopes = [s for given in args.scope for s in given.split(",")]
    try:
        operator, token = _store().add(args.name, scopes)
    except InvalidOperator as exc:
        print(json.dumps({"error": exc.code, "reason": exc.reason, **exc.details}), file=sys.stderr)
        return 2
    print(f"operator id: {operator.operator_id}")
    print(f"scopes:      {' '.join(sorted(operator.scopes))}")
    print(f"token:       {token}   (shown once; only its hash is stored)")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for o in _store().list_operators():
        if args.json:
            print(json.dumps({"operatorId": o.operator_id, "name": o.name, "scopes": sorted(o.scopes),
                              "createdAt": o.created_at, "revokedAt": o.revoked_at}))
        else:
            state = f"revoked {o.revoked_at}" if o.revoked_at else "active"
            print(f"{o.operator_id}  {o.created_at}  {o.name}  [{' '.join(sorted(o.scopes))}]  {state}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from cdp.errors import NotFound
    from cdp.operators import is_operator_id

    if not is_operator_id(args.operator_id):
        print(f"cdp: {args.operator_id!r} is not an operator id (op_ and 12 hex digits)", file=sys.stderr)
        return 2
    try:
        operator = _store().revoke(args.operator_id)
    except NotFound:
        print(f"cdp: no operator {args.operator_id}", file=sys.stderr)
        return 1
    print(f"revoked {operator.operator_id} ({operator.name}) at {operator.revoked_at}; "
          "the admin functions refuse it within their cache TTL (OPERATOR_CACHE_SECONDS, 60 s)")
    return 0
