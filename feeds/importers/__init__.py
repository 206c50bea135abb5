"""Third-party recordings (Databento DBN, Binance captures) into redline Parquet."""
