"""spark-submit entry point (``python -m jobs.release``): the settings come from ``MYDATA_*``."""
import sys

from jobs.release.gate import run
from mydata.config import Settings

if __name__ == "__main__":
    print(run(Settings.load()), file=sys.stdout)
