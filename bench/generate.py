"""Synthetic feature-status extracts for the sync benchmark, built with Arrow compute only.

`generate` writes a CSV with the columns of the demo's ``volte_status.csv`` ("Feature Group",
"Feature", "MCC", "MNC", "Status", "Value", "Owner", "Updated"); `mutate` turns such a file into
"the next day's" extract. Both are vectorised (no Python loop over rows) and deterministic for a
seed, so a million rows take a few seconds; neither needs numpy.

Identities (group, feature, mcc, mnc) are unique: row ``i`` uses MCC/MNC pair ``i mod P`` of the
shipped list (all pairs are cycled through) and, for a fixed pair, a different feature on each
pass (``(i // P + 7 * pair) mod 2000``); past ``2000 * P`` rows a ``#n`` suffix keeps names apart.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

COLUMNS: tuple[str, ...] = (
    "Feature Group", "Feature", "MCC", "MNC", "Status", "Value", "Owner", "Updated",
)
#: Canonical statuses, weighted by repetition (enabled is the common case).
STATUSES: tuple[str, ...] = (
    ("enabled",) * 9 + ("disabled",) * 4 + ("testing",) * 3 + ("planned",) * 2
    + ("not_supported", "deprecated")
)
STATUS_SET: tuple[str, ...] = tuple(dict.fromkeys(STATUSES))
VALUES: tuple[str, ...] = (
    "", "", "", "1", "0", "auto", "EVS-WB", "EVS-SWB", "AMR-WB", "S8HR", "LBO", "30", "60",
    "120", "IMS APN", "default", "opt-in", "opt-out",
)
OWNERS: tuple[str, ...] = tuple(
    f"{first} {last} ({team})"
    for first, last, team in (
        ("Minjun", "Kim", "Seoul Ops"), ("Seoyeon", "Lee", "Seoul Ops"),
        ("Jiho", "Park", "IMS Core"), ("Emily", "Carter", "US Ops"),
        ("Daniel", "Brooks", "US Ops"), ("Yuki", "Tanaka", "JP Ops"),
        ("Haruto", "Sato", "JP Ops"), ("Lena", "Schmidt", "EU Ops"),
        ("Lukas", "Weber", "EU Ops"), ("Oliver", "Smith", "UK Ops"),
        ("Chloe", "Martin", "FR Ops"), ("Priya", "Sharma", "IN Ops"),
        ("Arjun", "Patel", "IN Ops"), ("Mia", "Nguyen", "APAC Ops"),
        ("Jack", "Wilson", "AU Ops"), ("Lucas", "Silva", "LATAM Ops"),
    )
)
GROUPS: tuple[tuple[str, str], ...] = (
    ("volte", "VoLTE"), ("vonr", "VoNR"), ("vilte", "ViLTE"), ("rcs", "RCS"), ("esim", "eSIM"),
    ("wifi_calling", "Wi-Fi Calling"), ("sms", "SMS"), ("mms", "MMS"), ("ussd", "USSD"),
    ("nr_sa", "5G SA"), ("nr_nsa", "5G NSA"), ("lte_m", "LTE-M"), ("nb_iot", "NB-IoT"),
    ("carrier_aggregation", "Carrier Aggregation"), ("dual_sim", "Dual SIM"),
    ("roaming", "Roaming"), ("emergency", "Emergency Calling"), ("eps_fallback", "EPS Fallback"),
    ("number_portability", "Number Portability"), ("visual_voicemail", "Visual Voicemail"),
    ("call_forwarding", "Call Forwarding"), ("caller_id", "Caller ID"),
    ("spam_filter", "Spam Filter"), ("tethering", "Tethering"), ("apn", "APN Settings"),
    ("ims", "IMS"), ("ims_data_channel", "IMS Data Channel"), ("mcptt", "Mission Critical PTT"),
    ("slicing", "Network Slicing"), ("vowifi_roaming", "VoWiFi Roaming"),
    ("satellite", "Satellite Messaging"), ("rtt", "Real-Time Text"), ("hd_voice", "HD Voice"),
    ("conference", "Conference Calling"), ("video_calling", "Video Calling"),
    ("wearables", "Wearables"), ("entitlement", "Entitlement"), ("otp", "OTP Delivery"),
    ("cell_broadcast", "Cell Broadcast"), ("wea", "Wireless Emergency Alerts"),
    ("data_saver", "Data Saver"), ("hotspot", "Hotspot"), ("fixed_wireless", "Fixed Wireless"),
    ("private_network", "Private Network"), ("edge", "Edge Computing"),
    ("iot_roaming", "IoT Roaming"), ("ecall", "eCall"), ("sim_lock", "SIM Lock"),
    ("parental_control", "Parental Control"), ("billing", "Billing Events"),
)
ASPECTS: tuple[str, ...] = (
    "", "Roaming", "Default On", "UI Toggle", "Emergency", "Codec Policy", "Handover", "Timer",
    "Fallback", "Provisioning", "Entitlement Check", "Dual SIM", "Wearables", "Tablets",
    "Prepaid", "Postpaid", "Enterprise", "MVNO", "Retry Policy", "Rate Limit", "Logging",
    "Analytics", "Carrier Config", "OTA Update", "Max Sessions", "QoS Class", "Priority",
    "Barring", "Allow List", "Test Mode", "Low Power", "Accessibility", "Multi-Device",
    "Inbound", "Outbound", "Pilot Region", "Legacy Devices", "5G Devices", "Kids Plan",
    "Business Plan",
)
FEATURES_PER_GROUP = len(ASPECTS)
N_FEATURES = len(GROUPS) * FEATURES_PER_GROUP
#: "Updated" timestamps fall in the year before this day; mutated rows get the day after.
BASE_DAY = datetime(2025, 6, 2)


def _pairs() -> tuple[pa.Array, pa.Array]:
    """(mcc, mnc) of every pair in the shipped MCC/MNC list, in a stable order."""
    from ledger.reference import mcc_mnc_table

    table = mcc_mnc_table().table.select(["mcc", "mnc"])
    table = table.sort_by([("mcc", "ascending"), ("mnc", "ascending")])
    return table.column("mcc").combine_chunks(), table.column("mnc").combine_chunks()


def _feature_names() -> tuple[pa.Array, pa.Array]:
    """(group slug, feature name) for each of the `N_FEATURES` features."""
    groups, names = [], []
    for slug, title in GROUPS:
        for aspect in ASPECTS:
            groups.append(slug)
            names.append(f"{title} {aspect}".strip())
    return pa.array(groups, pa.string()), pa.array(names, pa.string())


def _arange(n: int) -> pa.Array:
    return pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), n)), 1)


def _mod(a: pa.Array, m: int) -> pa.Array:
    return pc.subtract(a, pc.multiply(pc.divide(a, m), m))


def _randint(n: int, k: int, rng: random.Random) -> pa.Array:
    """n uniform ints in [0, k), from a stream seeded by `rng`."""
    r = pc.random(n, initializer=rng.getrandbits(62))
    return pc.min_element_wise(pc.cast(pc.floor(pc.multiply(r, k)), pa.int64()), k - 1)


def _timestamps(n: int, start: datetime, span_s: int, rng: random.Random) -> pa.Array:
    """n "yyyy-mm-dd hh:mm:ss" strings in [start, start + span_s)."""
    base = int((start - datetime(1970, 1, 1)).total_seconds())
    secs = pc.add(_randint(n, span_s, rng), base)
    return pc.strftime(pc.cast(secs, pa.timestamp("s")), format="%Y-%m-%d %H:%M:%S")


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pv.write_csv(table, path, write_options=pv.WriteOptions(quoting_style="needed"))


def generate(path: Path, rows: int, seed: int) -> None:
    """Write a CSV of `rows` feature-status rows with unique identities.

    Args:
        path: the CSV to write (UTF-8, header `COLUMNS`); parent folders are created.
        rows: number of data rows (>= 0).
        seed: same seed, same bytes.
    """
    if rows < 0:
        raise ValueError("rows must be >= 0")
    rng = random.Random(seed)
    mccs, mncs = _pairs()
    groups, names = _feature_names()
    n_pairs = len(mccs)
    i = _arange(rows)
    pair = _mod(i, n_pairs)
    k = pc.divide(i, n_pairs)
    feature = _mod(pc.add(k, pc.multiply(pair, 7)), N_FEATURES)
    cycle = pc.divide(k, N_FEATURES)
    name = pc.take(names, feature)
    suffix = pc.binary_join_element_wise(" #", pc.cast(pc.add(cycle, 1), pa.string()), "")
    name = pc.if_else(pc.greater(cycle, 0), pc.binary_join_element_wise(name, suffix, ""), name)
    table = pa.table({
        "Feature Group": pc.take(groups, feature),
        "Feature": name,
        "MCC": pc.take(mccs, pair),
        "MNC": pc.take(mncs, pair),
        "Status": pc.take(pa.array(STATUSES), _randint(rows, len(STATUSES), rng)),
        "Value": pc.take(pa.array(VALUES), _randint(rows, len(VALUES), rng)),
        "Owner": pc.take(pa.array(OWNERS), _randint(rows, len(OWNERS), rng)),
        "Updated": _timestamps(rows, BASE_DAY - timedelta(days=365), 365 * 86400, rng),
    })
    _write(table, path)


def read_extract(path: Path) -> pa.Table:
    """Read a generated CSV with every column as text (so MNC "05" stays "05")."""
    opts = pv.ConvertOptions(column_types=dict.fromkeys(COLUMNS, pa.string()),
                             strings_can_be_null=False, quoted_strings_can_be_null=False)
    return pv.read_csv(path, convert_options=opts)


def mutate(src: Path, dst: Path, changed: float = 0.05, added_removed: float = 0.01,
           seed: int = 1) -> None:
    """Write the next day's extract: some statuses change, some rows go, some rows arrive.

    Exactly ``round(n * changed)`` rows get a different status (and a fresh value and
    "Updated" time), ``round(n * added_removed)`` other rows are removed, and as many new rows
    are appended: copies of further distinct rows under a new feature name
    (``"<feature> (rollout <seed>)"``), dropped if that identity already exists.

    Args:
        src: a CSV with `COLUMNS` (from `generate` or an earlier `mutate`).
        dst: where to write the result; may be `src` (it is read whole first).
        changed: share of rows whose status changes.
        added_removed: share of rows removed, and the same share of rows added.
        seed: same inputs and seed, same bytes.
    """
    if not (0 <= changed and 0 <= added_removed and changed + 2 * added_removed <= 1):
        raise ValueError("need changed >= 0, added_removed >= 0, changed + 2*added_removed <= 1")
    rng = random.Random(seed)
    table = read_extract(src)
    n = table.num_rows
    n_changed, n_moved = round(n * changed), round(n * added_removed)
    # A random permutation position per row picks disjoint sets of exact sizes.
    rank = pc.rank(pc.random(n, initializer=rng.getrandbits(62)), tiebreaker="first")
    removed = pc.less_equal(rank, n_moved)
    is_changed = pc.and_(pc.greater(rank, n_moved), pc.less_equal(rank, n_moved + n_changed))
    donor = pc.and_(pc.greater(rank, n_moved + n_changed),
                    pc.less_equal(rank, n_moved + n_changed + n_moved))
    next_day = _timestamps(n, BASE_DAY + timedelta(days=1), 86400, rng)

    statuses = pa.array(STATUS_SET)
    k = len(STATUS_SET)
    old = pc.fill_null(pc.index_in(table.column("Status"), value_set=statuses), 0)
    # Shift by 1..k-1 places so the new status always differs from the old one.
    new_status = pc.take(statuses, _mod(pc.add(pc.add(old, 1), _randint(n, k - 1, rng)), k))
    new_value = pc.take(pa.array(VALUES), _randint(n, len(VALUES), rng))
    columns = {c: table.column(c) for c in COLUMNS}
    columns["Status"] = pc.if_else(is_changed, new_status, columns["Status"])
    columns["Value"] = pc.if_else(is_changed, new_value, columns["Value"])
    columns["Updated"] = pc.if_else(is_changed, next_day, columns["Updated"])
    day = pa.table(columns)

    added = day.filter(donor)
    added = added.set_column(1, "Feature", pc.binary_join_element_wise(
        added.column("Feature"), f" (rollout {seed})", ""))
    added = added.set_column(4, "Status", pc.take(
        pa.array(["testing", "planned"]), _randint(added.num_rows, 2, rng)))
    added = added.set_column(7, "Updated", pc.filter(next_day, donor))
    added = added.filter(pc.invert(pc.is_in(_keys(added), value_set=_keys(day))))
    _write(pa.concat_tables([day.filter(pc.invert(removed)), added]), dst)


def _keys(table: pa.Table) -> pa.Array:
    """One string per identity (group, feature, mcc, mnc) for set membership tests."""
    parts = [table.column(c) for c in ("Feature Group", "Feature", "MCC", "MNC")]
    return pc.binary_join_element_wise(*parts, "\x1f").combine_chunks()
