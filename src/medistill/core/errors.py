"""The errors medistill raises for a person to fix: each names the file, key or line, and what
to do. They live here, below every other module, so any layer can raise or catch them."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration problem, phrased for the person who has to fix it."""


class TeacherSourceError(ValueError):
    """A teacher source that cannot be resolved, with what to do about it."""


class CorpusSourceError(ValueError):
    """A corpus source that cannot be read, phrased for the person who has to fix it."""


class CorpusSpecError(ValueError):
    """A corpus entry whose sources cannot be mixed as written."""


class TaskDataError(ValueError):
    """Task data that cannot be read, phrased for the person who has to fix it."""
