"""Taehwa (태화): a sovereign, self-hosted industrial AI platform."""

__version__ = "0.1.0"
