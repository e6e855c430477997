"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """--device: cuda, cuda:1, mps, cpu or auto (default: cuda > mps > cpu)."""
    parser.add_argument("--device", default=None, help="torch device: cuda, cuda:N, mps, cpu (default: best available)")


def add_index_argument(parser: argparse.ArgumentParser, positional: bool = True) -> None:
    """INDEX (or --index): an index folder, or an images folder holding .memetui."""
    help_ = "index folder, or an images folder indexed into DIR/.memetui (default: the shipped sample index)"
    if positional:
        parser.add_argument("index", nargs="?", default=None, metavar="INDEX", help=help_)
    else:
        parser.add_argument("--index", default=None, metavar="DIR", help=help_)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {value}")
    return value
