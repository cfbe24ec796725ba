"""`python -m resetlens.batch ARCHIVE_DIR --db FILE.duckdb ...`: the batch command on its own."""

import typer

from resetlens.batch import batch_command

if __name__ == "__main__":
    typer.run(batch_command)
