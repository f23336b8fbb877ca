"""Distil large French medical teacher models into small, fast, robust students."""
