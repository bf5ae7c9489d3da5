"""What a run leaves: Parquet rows, the report (text, JSON, page) and the progress display."""
