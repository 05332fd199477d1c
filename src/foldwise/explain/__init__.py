"""Explanation maps of fold models (Grad-CAM, attention rollout) and their overlays; used by stage ``explain``."""
