import sys

from correlator.cli import main

sys.exit(main())
