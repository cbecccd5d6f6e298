"""autoseg.data."""
