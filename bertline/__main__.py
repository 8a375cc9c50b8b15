import sys

from bertline.cli import main

sys.exit(main())
