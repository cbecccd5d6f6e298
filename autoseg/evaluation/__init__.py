"""autoseg.evaluation."""
