"""python -m ttsctl: the same CLI as the ttsctl console script."""
from ttsctl.cli import main

main(prog_name="ttsctl")
