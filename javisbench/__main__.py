import sys

from javisbench.cli import main

sys.exit(main())
