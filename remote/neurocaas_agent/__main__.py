import sys

from neurocaas_agent.cli import main

sys.exit(main(sys.argv[1:]))
