"""CLI command modules: each ``defectbench/commands/<area>.py`` defines ``register(app: typer.Typer)``
adding its commands; ``defectbench/cli.py`` calls every module's ``register``, so an area adds commands
without editing the core CLI. Commands raise :class:`~defectbench.core.DefectbenchError` for user
errors; the CLI prints it as one line and exits with status 2.
"""
