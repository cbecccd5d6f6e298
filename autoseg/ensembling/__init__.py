"""autoseg.ensembling."""
