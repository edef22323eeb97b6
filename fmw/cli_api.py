"""CLI commands of the HTTP API: `fmw serve`, `fmw apikey create|list|revoke`,
`fmw token list|revoke` (users' personal API tokens), `fmw audit verify|anchor`.

`register(subparsers)` adds them to the `fmw` parser (see fmw/cli.py); each handler is a thin
front over `api.server`, `ledger.access` and `ledger.audit`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from fmw import render
from fmw.logs import log_to_console
from fmw.settings import Settings


def register(subparsers: Any) -> None:
    """Add serve, apikey and audit to the `fmw` subparsers."""
    s = subparsers.add_parser("serve", help="run the HTTP API (waitress), 127.0.0.1:8000 by default")
    s.add_argument("--host", help="address to listen on (default: api_host, 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default: api_port, 8000)")
    s.set_defaults(func=cmd_serve)

    ak = subparsers.add_parser("apikey", help="API keys for the dev API").add_subparsers(
        dest="apikey_cmd", required=True)
    s = ak.add_parser("create", help="create a key and print it (shown only once)")
    s.add_argument("name", help="who or what uses the key, e.g. 'ops-laptop'")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_apikey_create)
    s = ak.add_parser("list", help="keys (never their secrets)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_apikey_list)
    s = ak.add_parser("revoke", help="revoke a key by id or prefix")
    s.add_argument("key", help="key id or prefix (from `fmw apikey list`)")
    s.set_defaults(func=cmd_apikey_revoke)

    tk = subparsers.add_parser("token", help="users' personal API tokens (sign-on)"
                               ).add_subparsers(dest="token_cmd", required=True)
    s = tk.add_parser("list", help="every user's tokens (never their secrets)")
    s.add_argument("--user", help="only this user's (the provider's subject)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_token_list)
    s = tk.add_parser("revoke", help="revoke a user's token by prefix or id (API processes "
                      "stop accepting it within 30 s)")
    s.add_argument("token", help="token prefix or id (from `fmw token list`)")
    s.set_defaults(func=cmd_token_revoke)

    au = subparsers.add_parser("audit", help="the dev API audit log").add_subparsers(
        dest="audit_cmd", required=True)
    s = au.add_parser("verify", help="check the audit log's hash chain (exit 1 when broken)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_audit_verify)
    s = au.add_parser("anchor", help="write the audit log's head outside the database "
                      "(backups do this too; `verify` checks every anchor)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_audit_anchor)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from api.server import serve
    log_to_console()
    serve(settings, args.host, args.port)
    return 0



def _ready(settings: Settings) -> Any:
    from ledger.schema import connect_current
    return connect_current(settings, autocommit=True)


def cmd_apikey_create(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.access import create_key
    with _ready(settings) as conn:
        made = create_key(conn, args.name)
    if args.json:
        print(json.dumps({"id": made.key.id, "name": made.key.name, "prefix": made.key.prefix,
                          "key": made.secret}))
    else:
        render.out(f"API key {made.key.id} ({made.key.name}), shown only this once:")
        print(made.secret)
        render.out("use it as `Authorization: Bearer <key>`; revoke with "
                   f"`fmw apikey revoke {made.key.prefix}`")
    return 0


def cmd_apikey_list(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.access import list_keys
    with _ready(settings) as conn:
        keys = list_keys(conn)
    if args.json:
        print(json.dumps([{**k.__dict__, **{f: (getattr(k, f).isoformat() if getattr(k, f)
                                                 else None) for f in
                                             ("created_at", "last_used_at", "revoked_at")}}
                          for k in keys]))
        return 0
    if not keys:
        render.out("no API keys; create one with `fmw apikey create NAME`")
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        used = f"last used {k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never used"
        render.out(f"{k.id:>4}  {k.prefix}  {k.name:<24} created {k.created_at:%Y-%m-%d %H:%M}"
                   f"  {used}  {state}")
    return 0


def cmd_apikey_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.access import revoke_key
    with _ready(settings) as conn:
        k = revoke_key(conn, args.key)
    render.out(f"revoked API key {k.id} ({k.name}, {k.prefix})")
    return 0


def cmd_token_list(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.tokens import list_for
    with _ready(settings) as conn:
        tokens = list_for(conn, args.user)
    if args.json:
        print(json.dumps([{**t.as_json(), "subject": t.subject, "user_name": t.user_name}
                          for t in tokens], default=str, ensure_ascii=False))
        return 0
    if not tokens:
        render.out("no personal API tokens (users make them in the explorer's API tokens page)")
    for t in tokens:
        state = (f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at
                 else f"expires {t.expires_at:%Y-%m-%d}")
        used = f"last used {t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never used"
        render.out(f"{t.id:>4}  {t.prefix}  {t.user_name} ({t.subject})  {t.name!r}  {t.role}"
                   f"  {used}  {state}")
    return 0


def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.tokens import revoke
    with _ready(settings) as conn:
        t = revoke(conn, args.token)
    render.out(f"revoked personal token {t.id} ({t.prefix}) of {t.user_name} ({t.subject})")
    return 0


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from ledger import audit
    from ops.backup import backup_anchors
    from ops.config import backup_root
    anchors, unreadable = audit.load_anchors(settings.data_dir)
    anchors += backup_anchors(backup_root(settings))
    with _ready(settings) as conn:
        v = audit.verify_chain(conn)
        problems = [*v.problems, *unreadable, *audit.check_anchors(conn, anchors)]
    ok = not problems
    if args.json:
        print(json.dumps({"ok": ok, "rows": v.rows, "head_seq": v.head_seq,
                          "head_hash": v.head_hash, "anchors_checked": len(anchors),
                          "problems": problems}))
    elif ok:
        render.out(f"audit log intact: {v.rows:,} rows, head {v.head_seq} {v.head_hash}; "
                   f"{len(anchors)} anchor(s) outside the database match")
    else:
        for p in problems:
            render.error(p)
        render.error(f"audit log BROKEN: {len(problems)} problem(s) in {v.rows:,} rows")
    return 0 if ok else 1


def cmd_audit_anchor(args: argparse.Namespace, settings: Settings) -> int:
    from ledger import audit
    with _ready(settings) as conn:
        anchor = audit.head(conn)
    path = audit.save_anchor(settings.data_dir, anchor)
    if args.json:
        print(json.dumps({**anchor.as_json(), "file": str(path)}))
    else:
        render.out(f"audit head row {anchor.seq} {anchor.hash} anchored in {path}; keep a "
                   "copy of that line somewhere the database's admins cannot write")
    return 0
