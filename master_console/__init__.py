"""master_console: see ../shared/DESIGN.md; filled in by later issues."""
