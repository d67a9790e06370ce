"""Experiments that combine surgery with evaluation: the transplant and destruction maps."""
