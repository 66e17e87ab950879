"""MemLens: `python main.py` opens the desktop app; `python main.py analyze ...` is the CLI."""
import sys


def main(argv: list[str]) -> int:
    if argv and argv[0] == "analyze":
        from engine.cli import main as cli_main

        return cli_main(argv[1:])
    from gui.app import main as gui_main

    return gui_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
