"""Data contracts: the landing form (``landing``), code sets (``codes``), the consent chain
(``consent``); per table the Spark schema, parsing and Great Expectations suite (ingest)."""
