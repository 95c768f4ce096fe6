"""HTML of the reports, apart from the jobs: each module turns a run's figures (its manifest, the
outcomes it computed) into a page with ``render.html`` and its templates. Named so it is not confused with the
lake's ``reports/`` zone, where the pages are written."""
