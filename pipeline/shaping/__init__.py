"""From documents to requests: token estimates, chunking, prompts, the first round of calls."""
