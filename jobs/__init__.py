"""Stage jobs: pure transforms (SQL built for the engine's dialect) plus one thin ``run()`` each."""
