"""autoseg.planner."""
