"""FMW api room (see ../shared/STYLE.md); filled by later issues."""
