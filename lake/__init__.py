"""FMW lake room (see ../shared/STYLE.md); filled by later issues."""
