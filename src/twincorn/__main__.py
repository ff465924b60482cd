import sys

from twincorn.cli import main

sys.exit(main())
