"""Shared runtime of the MyData fusion pipeline: configuration, lake paths, Spark, keys, CLI.

Every layer (jobs, schemas, features, models, dags) may import from here; this package imports
none of them except ``schemas`` (the landing contract) for the generator and tokenizer.
"""
__version__ = "0.1.0"
