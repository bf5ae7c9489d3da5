"""Facts every stage shares: the error tree, the data types, the model catalogue, prices
and limits."""
