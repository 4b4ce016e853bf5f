"""Researcher templates: ready-to-run notebooks."""
