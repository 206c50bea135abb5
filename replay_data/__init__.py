"""Bundled recordings (zstd Parquet), made by `redline.feeds.synthetic.generator`."""

from pathlib import Path

DIR = Path(__file__).resolve().parent
