"""A plugin whose module cannot be imported (a dependency missing)."""

import sou_no_such_dependency  # noqa: F401
