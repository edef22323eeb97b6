"""What sign-on costs on the read path: token validation and row scopes, on a 1M-row snapshot.

Starts the real test identity provider (tests/idp, `npm ci --prefix tests/idp` first), gets
real access tokens through its login form (a viewer, and a user scoped to three groups:
the scoped queries stay inside them, so scope and no scope return the same rows and the
difference is the enforcement's cost), then starts two `fmw serve` processes on the same snapshot — `auth.mode =
"allowlist"` and `auth.mode = "oidc"` — and times narrow JSON reads, A/B interleaved:

* in process: `SignOn.principal` on a real token (validation alone), p50 per call;
* 1 client, sequential: p50 per request without a token (allowlist), with the viewer's
  token, and with the scoped token (the scope adds a predicate and prunes the files);
* 20 clients: p50/p95 of the same, uncached (``Cache-Control: no-cache``) and cached.

A script that prints, not a test that asserts.

    PYTHONPATH=. python bench/bench_auth.py                  # 1,000,000 rows
    PYTHONPATH=. python bench/bench_auth.py --rows 100000 --reuse
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_api import (  # noqa: E402
    RssPoller,
    Stats,
    build,
    free_port,
    load,
    narrow_paths,
    start_server,
    wait_idle,
)

REDIRECT = "http://127.0.0.1:9/callback"
CLIENT = {"client_id": "fmw-bench", "client_secret": "bench-secret", "redirect_uris": [REDIRECT]}


def toml_config(issuer: str, scoped_groups: list[str]) -> str:
    groups = ", ".join(json.dumps(g) for g in scoped_groups)
    return (f'[auth]\nmode = "oidc"\nissuer = "{issuer}"\nclient_id = "fmw-bench"\n'
            f'audience = "fmw-api"\n\n[[auth.roles]]\ngroup = "readers"\nrole = "viewer"\n\n'
            f'[[auth.roles]]\ngroup = "ims"\nrole = "scoped"\nfeature_groups = [{groups}]\n')


def start(workdir: Path, name: str, port: int, db: str, config: str | None
          ) -> subprocess.Popen[bytes]:
    folder = workdir / name
    folder.mkdir(parents=True, exist_ok=True)
    extra = {"FMW_API_WARM_DOWNLOADS": "0"}
    if config is not None:
        (folder / "fmw.toml").write_text(config, encoding="utf-8", newline="\n")
        extra["FMW_CONFIG"] = str(folder / "fmw.toml")
    return start_server(workdir, port, db, folder=folder, env_extra=extra)


def validation_cost(issuer: str, token: str, n: int, *, remembered: bool
                    ) -> tuple[float, float]:
    """p50 and p95 (µs) of `SignOn.principal` on a valid token, keys already fetched: the
    signature checked every time, or the token `remembered` from an earlier request."""
    from api.signon import SignOn
    from fmw.authconfig import AuthConfig, RoleRule
    cfg = AuthConfig(mode="oidc", issuer=issuer, client_id="fmw-bench", audience="fmw-api",
                     roles=(RoleRule("readers", "viewer"),))
    sign_on = SignOn(cfg, check_token=lambda s: (None, "none"), check_key=lambda s: None)
    sign_on.principal(token, dev=False)
    times = []
    for _ in range(n):
        if not remembered:
            sign_on.verifier._valid.clear()
        t0 = time.perf_counter()
        sign_on.principal(token, dev=False)
        times.append(time.perf_counter() - t0)
    times.sort()
    return statistics.median(times) * 1e6, times[int(len(times) * 0.95)] * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out-auth")
    p.add_argument("--reuse", action="store_true", help="reuse the workdir's snapshot")
    p.add_argument("--rounds", type=int, default=3, help="A/B rounds per scenario")
    args = p.parse_args(argv)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if args.reuse and (workdir / "groups.json").is_file():
        groups = json.loads((workdir / "groups.json").read_text())
    else:
        groups = build(workdir, args.rows)
    from tests.oidc_provider import Provider
    users = {"vic": {"password": "v", "name": "Vic", "groups": ["readers"]},
             "sam": {"password": "s", "name": "Sam", "groups": ["ims"]}}
    idp = Provider.start(workdir / "idp", users=users, clients=[CLIENT])
    servers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        viewer = idp.login("vic", "v", "fmw-bench", "bench-secret", REDIRECT)["access_token"]
        scoped = idp.login("sam", "s", "fmw-bench", "bench-secret", REDIRECT)["access_token"]
        for remembered in (False, True):
            p50, p95 = validation_cost(idp.issuer, viewer, 2000, remembered=remembered)
            what = "token remembered" if remembered else "signature checked (RS256)"
            print(f"token validation in process, {what}: p50 {p50:.0f} µs, p95 {p95:.0f} µs")
        names = sorted(groups)
        db = f"postgresql://fmw@127.0.0.1:{free_port()}/fmw"  # v1 needs no database
        ports = {"allowlist": free_port(), "oidc": free_port()}
        servers["allowlist"] = start(workdir, "allowlist", ports["allowlist"], db, None)
        servers["oidc"] = start(workdir, "oidc", ports["oidc"], db,
                                toml_config(idp.issuer, names[:3]))
        procs = {k: psutil.Process(v.pid) for k, v in servers.items()}
        pollers = {k: RssPoller(v.pid) for k, v in servers.items()}
        for poller in pollers.values():
            poller.start()
        narrow = narrow_paths(groups)
        scoped_paths = [path for path in narrow if path.split("?")[0].rsplit("/", 1)[1]
                        in names[:3]] or narrow
        # the scoped user's queries (its three groups) are compared with the same queries
        # without sign-on; the viewer's with the broad mix
        cases = [("allowlist, no token", "allowlist", narrow, None),
                 ("oidc, viewer token", "oidc", narrow, viewer),
                 ("allowlist, scoped's paths", "allowlist", scoped_paths, None),
                 ("oidc, scoped token", "oidc", scoped_paths, scoped)]
        for label, srv, paths, token in cases:  # warm every server and path once
            auth = {"Authorization": f"Bearer {token}"} if token else {}
            w = load("warm", ports[srv], paths, 2, 40, headers=auth)
            if w.errors:
                raise SystemExit(f"{label}: {w.errors} errors while warming up; see the logs")
        fresh = {"Cache-Control": "no-cache"}
        plan = [("1 client, uncached", 1, 150, fresh), ("20 clients, uncached", 20, 20, fresh),
                ("20 clients, cached", 20, 20, {})]
        results: dict[tuple[str, str], list[Stats]] = {}
        for scenario, clients, per, extra in plan:
            for _ in range(args.rounds):  # A/B/C interleaved: the machine's noise hits all
                for label, srv, paths, token in cases:
                    auth = {"Authorization": f"Bearer {token}"} if token else {}
                    wait_idle(procs[srv])
                    st = load(label, ports[srv], paths, clients, per,
                              headers={**auth, **extra}, server=procs[srv])
                    results.setdefault((scenario, label), []).append(st)
        print()
        base: dict[str, float] = {}
        for (scenario, label), runs in results.items():
            times = [t for r in runs for t in r.times]
            errors = sum(r.errors for r in runs)
            times.sort()
            p50 = statistics.median(times) * 1000
            p95 = times[int(len(times) * 0.95)] * 1000
            cpu = sum(r.server_cpu_s for r in runs) / max(1, len(times)) * 1000
            if label.startswith("allowlist"):
                base[scenario] = p50
                delta = ""
            else:  # against the allowlist line just above (same queries)
                delta = f"  p50 {p50 - base[scenario]:+.2f} ms vs allowlist"
            print(f"{scenario:<22} {label:<26} {len(times):>5} req  p50 {p50:7.2f} ms  "
                  f"p95 {p95:7.2f} ms  server cpu/req {cpu:5.2f} ms  errors {errors}{delta}")
        print("\nserver peak RSS: " + ", ".join(f"{k} {v.peak / 2**20:.0f} MiB"
                                               for k, v in pollers.items()))
        print("target: validation + scope <= 1 ms p50 per request; narrow JSON p95 at 20 "
              "clients within 10 % of allowlist")
    finally:
        for proc in servers.values():
            proc.terminate()
        for proc in servers.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        idp.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
