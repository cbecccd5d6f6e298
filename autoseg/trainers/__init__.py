"""autoseg.trainers."""
