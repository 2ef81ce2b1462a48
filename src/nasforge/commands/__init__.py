"""CLI sub-command groups. Each module here defines ``app = typer.Typer(name=..., help=...)``; ``nasforge.cli`` mounts
every one of them, so a capability gets its command line by adding a file here."""
