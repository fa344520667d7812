"""Plugins that go wrong in each way a stranger's might: each must be left out, named, with
the node serving the rest (tests/test_plugins.py)."""
