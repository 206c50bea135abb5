"""Replay of recorded Parquet files as one stream merged by `ts_recv`."""
