"""spark-submit entry point (``python -m jobs.ingest``): the settings come from ``MYDATA_*``."""
import sys

from jobs.ingest.job import run
from mydata.config import Settings

if __name__ == "__main__":
    print(run(Settings.load()), file=sys.stdout)
