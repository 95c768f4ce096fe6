"""spark-submit entry point (``python -m jobs.consent``): the settings come from ``MYDATA_*``."""
import sys

from jobs.consent.job import run
from mydata.config import Settings

if __name__ == "__main__":
    print(run(Settings.load()), file=sys.stdout)
