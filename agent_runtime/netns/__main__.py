import sys

from agent_runtime.netns.main import main

sys.exit(main())
