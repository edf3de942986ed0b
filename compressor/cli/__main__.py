"""``python -m compressor.cli``: the same as the ``compressor`` command."""
from compressor.cli import main

main()
