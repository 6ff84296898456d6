"""Commands added by later modules."""
