"""autoseg.inference."""
