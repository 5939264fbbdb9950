"""Entry script of the PyInstaller bundle: the same `voxdesk` command as the console script.

`freeze_support()` must run first: the llama.cpp worker process and the self-test's
probe are started with multiprocessing's spawn method, which re-executes this
bundle's executable; without it the child would start a second VoxDesk.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from app.commands.cli import main

    sys.exit(main())
