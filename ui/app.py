"""The Streamlit entry point: ``streamlit run ui/app.py -- --config F --data-dir D``.

`fmw ui` / `fmw up` start it with the right flags (see `ui.launch`). It sets the page up,
lets only signed-in users with a role past (``auth.mode = "oidc"``, `ui.access`), counts the
page view and runs the page the navigation picked.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script by Streamlit: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st  # noqa: E402

from fmw.errors import FmwError  # noqa: E402
from ui import access, context, navigation  # noqa: E402

#: Tighter margins than Streamlit's defaults, so a page fits a 1366x768 screen.
STYLE = """<style>
[data-testid="stMainBlockContainer"] {padding: 4.2rem 2rem 2rem 2rem;}
[data-testid="stSidebarUserContent"] {padding-top: 1rem;}
h1 {font-size: 1.8rem !important; padding: 0.2rem 0 0.4rem 0 !important;}
</style>"""


def main() -> None:
    # no page_icon: a :material/...: icon makes the browser fetch its SVG from Google
    st.set_page_config(page_title="FMW explorer",
                       layout="wide", initial_sidebar_state="expanded")
    st.html(STYLE)
    try:
        settings, ui = context.config()
    except FmwError as exc:  # a bad fmw.toml: say so instead of a traceback
        st.error(f"The explorer cannot start: {exc}")
        st.stop()
    # sign-on: nothing but the sign-in page until signed in with a role (`ui.access`); the
    # role comes from the API's role map (`GET /api/me`)
    viewer = access.gate(settings.auth, context.me_lookup(settings, ui))
    navigation.run(viewer, oidc=settings.auth.oidc)


main()
