"""autoseg.preprocessing."""
