"""autoseg.viz."""
