"""Everything a person sees: progress, tables, messages."""
