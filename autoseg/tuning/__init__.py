"""autoseg.tuning."""
