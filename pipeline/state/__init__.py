"""The job's state database: finished documents and calls, objects, batches, runs."""
