"""Spark jobs: pure DataFrame -> DataFrame transforms plus one thin ``run()`` each."""
