"""FMW query room (see ../shared/STYLE.md); filled by later issues."""
