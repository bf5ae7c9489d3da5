"""Calls in, results out: the HTTP client, retries, pacing, the online pool and Message Batches."""
