import sys

from bulksend.cli import main

sys.exit(main())
