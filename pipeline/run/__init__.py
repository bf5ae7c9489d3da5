"""The top of the flow: one job run end to end, a document at a time, and its dry-run plan."""
