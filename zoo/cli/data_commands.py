"""Commands added by later modules."""
from zoo.cli.app import app  # noqa: F401
