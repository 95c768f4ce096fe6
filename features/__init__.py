"""Feature definitions as data; the features job compiles them."""
