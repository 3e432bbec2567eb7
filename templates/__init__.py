"""Jinja templates shipped with helpdeskd (package data)."""
