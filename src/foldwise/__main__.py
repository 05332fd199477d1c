"""``python -m foldwise COMMAND``: the same as the ``foldwise`` console command."""
from .cli import main

main()
