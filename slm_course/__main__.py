import sys

from slm_course.cli import main

sys.exit(main())
